"""Auxiliary losses for generating an image and its lesion mask together (SkinDualGen)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import DiceLoss
from monai.networks.schedulers import Scheduler

from monai_lesiongen.losses.auxiliary import DiffusionStepState
from monai_lesiongen.schedulers import noise_process

__all__ = ["MaskConsistencyLoss", "PairedMaskLoss", "mask_probability"]


def mask_probability(mask_channels: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Map mask channels in `value_range` (background, lesion) to lesion probabilities in [0, 1]."""
    low, high = value_range
    return ((mask_channels - low) / (high - low)).clamp(0.0, 1.0)


class PairedMaskLoss:
    """Dice and BCE between the model's denoised mask estimate and the true mask, weighted towards low noise.

    The mask channels are the last `mask_channels` channels of the denoised estimate x0-hat (the image + mask layout
    of `StackImageMaskd`). Each sample's term is weighted by its signal fraction (alpha_bar_t for DDPM), so the loss
    speaks where the estimate is meaningful and stays quiet at high noise. Gradients flow through x0-hat into the
    denoiser.

    Args:
        scheduler: the training scheduler (for the signal fraction): DDPM-like or rectified flow.
        mask_channels: how many trailing channels are mask channels.
        dice_weight: lambda_dice.
        bce_weight: lambda_bce.
        value_range: the (background, lesion) values of the mask channels.
    """

    name = "mask"

    def __init__(
        self,
        scheduler: Scheduler,
        mask_channels: int = 1,
        dice_weight: float = 0.1,
        bce_weight: float = 0.1,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        if mask_channels < 1:
            raise ValueError(f"mask_channels must be >= 1, got {mask_channels}.")
        if dice_weight < 0 or bce_weight < 0:
            raise ValueError(f"dice_weight and bce_weight must be >= 0, got {dice_weight}, {bce_weight}.")
        self.scheduler = scheduler
        self.process = noise_process(scheduler)
        self.mask_channels = mask_channels
        self.dice_weight = dice_weight
        self.bce_weight = bce_weight
        self.value_range = value_range
        self.dice = DiceLoss(reduction="none")

    def __call__(self, state: DiffusionStepState) -> torch.Tensor:
        estimate = mask_probability(state.original_estimate[:, -self.mask_channels :].float(), self.value_range)
        target = (mask_probability(state.inputs[:, -self.mask_channels :].float(), self.value_range) > 0.5).float()
        weights = self.process.signal_fraction(state.timesteps)
        dice = self.dice(estimate, target).flatten(1).mean(1)
        bce = torch.nn.functional.binary_cross_entropy(estimate.clamp(1e-4, 1 - 1e-4), target, reduction="none")
        per_sample = self.dice_weight * dice + self.bce_weight * bce.flatten(1).mean(1)
        return (weights * per_sample).mean()


class MaskConsistencyLoss:
    """The generated mask should agree with the lesion in the generated image: Dice between the denoised mask
    estimate and a frozen segmenter's segmentation of the denoised image, weighted towards low noise.

    Args:
        scheduler: the training scheduler.
        segmenter: a lesion segmenter trained on real data, mapping images in [0, 1] (B, C, H, W) to lesion logits
            (B, 1, H, W); its parameters are frozen, gradients reach the denoiser through the image estimate.
        mask_channels: how many trailing channels are mask channels.
        weight: the term's weight.
        value_range: the intensity range of image and mask channels.
    """

    name = "consistency"

    def __init__(
        self,
        scheduler: Scheduler,
        segmenter: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        mask_channels: int = 1,
        weight: float = 0.05,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        self.scheduler = scheduler
        self.process = noise_process(scheduler)
        self.segmenter = segmenter
        if isinstance(segmenter, torch.nn.Module):
            segmenter.requires_grad_(False)
            segmenter.eval()
        self.mask_channels = mask_channels
        self.weight = weight
        self.value_range = value_range
        self.dice = DiceLoss(reduction="none")

    def __call__(self, state: DiffusionStepState) -> torch.Tensor:
        image = mask_probability(state.original_estimate[:, : -self.mask_channels].float(), self.value_range)
        mask = mask_probability(state.original_estimate[:, -self.mask_channels :].float(), self.value_range)
        segmentation = torch.sigmoid(self.segmenter(image))
        per_sample = self.dice(mask, segmentation).flatten(1).mean(1)
        return self.weight * (self.process.signal_fraction(state.timesteps) * per_sample).mean()
