from __future__ import annotations

from .autoencoder_loss import AutoencoderKLLoss
from .classifier_losses import ClassifierInducedLoss, NoisyClassificationPrepareBatch, NoisyClassifierLoss
from .diffusion_step import (
    AuxiliaryLoss,
    DiffusionStepState,
    DiffusionTrainingStep,
    predict_original_sample,
    snr_weights,
)
from .downstream import compare_training_sets, train_classifier
from .downstream_segmentation import compare_segmentation, train_segmenter
from .evaluation_workflow import SyntheticDataEvaluation
from .mask_losses import MaskConsistencyLoss, PairedMaskLoss, mask_probability
from .prepare_batch import ConditionedDiffusionPrepareBatch, PredictionType

__all__ = [
    "AutoencoderKLLoss",
    "AuxiliaryLoss",
    "ClassifierInducedLoss",
    "ConditionedDiffusionPrepareBatch",
    "DiffusionStepState",
    "DiffusionTrainingStep",
    "MaskConsistencyLoss",
    "NoisyClassificationPrepareBatch",
    "NoisyClassifierLoss",
    "PairedMaskLoss",
    "PredictionType",
    "SyntheticDataEvaluation",
    "compare_segmentation",
    "compare_training_sets",
    "mask_probability",
    "predict_original_sample",
    "snr_weights",
    "train_classifier",
    "train_segmenter",
]
