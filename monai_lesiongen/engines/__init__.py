from __future__ import annotations

from .diffusion_step import (
    AuxiliaryLoss,
    DiffusionStepState,
    DiffusionTrainingStep,
    predict_original_sample,
    snr_weights,
)
from .prepare_batch import ConditionedDiffusionPrepareBatch, PredictionType

__all__ = [
    "AuxiliaryLoss",
    "ConditionedDiffusionPrepareBatch",
    "DiffusionStepState",
    "DiffusionTrainingStep",
    "PredictionType",
    "predict_original_sample",
    "snr_weights",
]
