from __future__ import annotations

from .denoiser import ConditionedDiffusionUNet
from .latent import LatentDecoder, latent_scale_factor
from .text_encoder import FrozenTextEncoder, default_text_encoder_path

__all__ = [
    "ConditionedDiffusionUNet",
    "FrozenTextEncoder",
    "LatentDecoder",
    "default_text_encoder_path",
    "latent_scale_factor",
]
