"""MONAI dictionary transforms for lesion captions, caption tokens and paired image+mask tensors."""

from __future__ import annotations

from monai_lesiongen.transforms.dictionary import (
    BuildCaptionD,
    BuildCaptiond,
    BuildCaptionDict,
    ConditionClassD,
    ConditionClassd,
    ConditionClassDict,
    MeasureLesionD,
    MeasureLesiond,
    MeasureLesionDict,
    SplitImageMaskD,
    SplitImageMaskd,
    SplitImageMaskDict,
    StackImageMaskD,
    StackImageMaskd,
    StackImageMaskDict,
    TokenizeD,
    Tokenized,
    TokenizeDict,
)
from monai_lesiongen.transforms.latent import (
    EncodeLatentD,
    EncodeLatentd,
    EncodeLatentDict,
    RandMirroredLatentD,
    RandMirroredLatentd,
    RandMirroredLatentDict,
)

__all__ = [
    "EncodeLatentd",
    "EncodeLatentD",
    "EncodeLatentDict",
    "RandMirroredLatentd",
    "RandMirroredLatentD",
    "RandMirroredLatentDict",
    "MeasureLesiond",
    "MeasureLesionD",
    "MeasureLesionDict",
    "BuildCaptiond",
    "BuildCaptionD",
    "BuildCaptionDict",
    "ConditionClassd",
    "ConditionClassD",
    "ConditionClassDict",
    "Tokenized",
    "TokenizeD",
    "TokenizeDict",
    "StackImageMaskd",
    "StackImageMaskD",
    "StackImageMaskDict",
    "SplitImageMaskd",
    "SplitImageMaskD",
    "SplitImageMaskDict",
]
