from __future__ import annotations

from .classifier import NoiseAwareClassifier, SharedEncoderClassifier, export_classifier, load_classifier
from .denoiser import ConditionedDiffusionUNet
from .latent import LatentDecoder, latent_scale_factor
from .text_encoder import FrozenTextEncoder, default_text_encoder_path

__all__ = [
    "ConditionedDiffusionUNet",
    "FrozenTextEncoder",
    "LatentDecoder",
    "NoiseAwareClassifier",
    "SharedEncoderClassifier",
    "default_text_encoder_path",
    "export_classifier",
    "latent_scale_factor",
    "load_classifier",
]
