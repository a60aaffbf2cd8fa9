"""What drives training: the prepare-batches and the training step of conditioned diffusion models."""

from __future__ import annotations

from .classifier_prepare_batch import NoisyClassificationPrepareBatch
from .diffusion_step import DiffusionTrainingStep, predict_original_sample, snr_weights
from .prepare_batch import ConditionedDiffusionPrepareBatch, PredictionType

__all__ = [
    "ConditionedDiffusionPrepareBatch",
    "DiffusionTrainingStep",
    "NoisyClassificationPrepareBatch",
    "PredictionType",
    "predict_original_sample",
    "snr_weights",
]
