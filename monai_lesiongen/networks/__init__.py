from __future__ import annotations

from .denoiser import ConditionedDiffusionUNet
from .text_encoder import FrozenTextEncoder, default_text_encoder_path

__all__ = ["ConditionedDiffusionUNet", "FrozenTextEncoder", "default_text_encoder_path"]
