"""MONAI dictionary transforms for lesion captions, caption tokens and paired image+mask tensors."""

from __future__ import annotations

from monai_lesiongen.transforms.dictionary import (
    BuildCaptionD,
    BuildCaptiond,
    BuildCaptionDict,
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

__all__ = [
    "BuildCaptiond",
    "BuildCaptionD",
    "BuildCaptionDict",
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
