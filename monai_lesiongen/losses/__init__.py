"""Auxiliary losses of diffusion training (Class-N-Diff's classifier terms, SkinDualGen's mask terms) and the
stage-1 autoencoder loss of latent diffusion."""

from __future__ import annotations

from .autoencoder import AutoencoderKLLoss
from .auxiliary import AuxiliaryLoss, DiffusionStepState
from .classifier import ClassifierInducedLoss, NoisyClassifierLoss, batch_labels
from .mask import MaskConsistencyLoss, PairedMaskLoss, mask_probability

__all__ = [
    "AutoencoderKLLoss",
    "AuxiliaryLoss",
    "ClassifierInducedLoss",
    "DiffusionStepState",
    "MaskConsistencyLoss",
    "NoisyClassifierLoss",
    "PairedMaskLoss",
    "batch_labels",
    "mask_probability",
]
