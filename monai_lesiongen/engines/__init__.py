from __future__ import annotations

from .autoencoder_loss import AutoencoderKLLoss
from .diffusion_step import (
    AuxiliaryLoss,
    DiffusionStepState,
    DiffusionTrainingStep,
    predict_original_sample,
    snr_weights,
)
from .mask_losses import MaskConsistencyLoss, PairedMaskLoss, mask_probability
from .prepare_batch import ConditionedDiffusionPrepareBatch, PredictionType

__all__ = [
    "AutoencoderKLLoss",
    "AuxiliaryLoss",
    "ConditionedDiffusionPrepareBatch",
    "DiffusionStepState",
    "DiffusionTrainingStep",
    "MaskConsistencyLoss",
    "PairedMaskLoss",
    "PredictionType",
    "mask_probability",
    "predict_original_sample",
    "snr_weights",
]
