"""Prepare-batch for conditioned diffusion training: noise, timesteps, target and the (dropped-out) condition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from monai.engines.utils import DiffusionPrepareBatch, default_prepare_batch
from monai.networks.schedulers import Scheduler

from monai_lesiongen.networks.text_encoder import FrozenTextEncoder
from monai_lesiongen.schedulers import NoiseProcess, VariancePreservingProcess, noise_process

__all__ = ["ConditionedDiffusionPrepareBatch", "PredictionType"]

PredictionType = Literal["epsilon", "v_prediction", "sample"]


class ConditionedDiffusionPrepareBatch(DiffusionPrepareBatch):
    """MONAI's `DiffusionPrepareBatch` extended with text and class conditions and condition dropout.

    The batch becomes ``(images, target, (), kwargs)`` where `kwargs` holds ``noise`` and ``timesteps`` and, when
    configured, ``condition`` (text context (B, L, D) from `text_encoder`) and ``class_labels`` (B,). With probability
    `condition_dropout` a sample's conditions are all replaced by the null condition (the empty caption's context and
    the null class `num_classes`), which trains the unconditional model that classifier-free guidance needs; the
    sampler uses the same null condition.

    Args:
        num_train_timesteps: number of diffusion steps of the scheduler.
        scheduler: the training scheduler; needed for v-prediction targets and rectified flow, whose timestep draw
            (uniform or logit-normal, with its resolution shift) and velocity target ``x0 - eps`` it then gives.
            Without it, timesteps are uniform integers and the target is the noise or x0.
        prediction_type: what the network predicts: ``epsilon`` (noise), ``v_prediction`` or ``sample`` (x0).
        image_key: key of the images in the batch.
        text_encoder: frozen encoder for the captions under `caption_key`; None for no text condition.
        caption_key: key of the list of captions in the batch.
        class_key: key of the integer class labels in the batch; None for no class condition.
        num_classes: number of classes; the null class is `num_classes`, so the denoiser needs
            ``num_class_embeds=num_classes + 1``.
        condition_dropout: probability of replacing a sample's conditions by the null condition.
        noise_offset: scale of a per-channel constant added to the noise (Guttenberg 2023), which lets the model
            change an image's mean brightness; 0 turns it off.

    Raises:
        ValueError: for an unknown prediction type, a missing scheduler for v-prediction, a class key without
            `num_classes`, or a dropout outside [0, 1].
    """

    def __init__(
        self,
        num_train_timesteps: int,
        scheduler: Scheduler | None = None,
        prediction_type: PredictionType = "epsilon",
        image_key: str = "image",
        text_encoder: FrozenTextEncoder | None = None,
        caption_key: str = "caption",
        class_key: str | None = None,
        num_classes: int | None = None,
        condition_dropout: float = 0.1,
        noise_offset: float = 0.0,
    ) -> None:
        super().__init__(num_train_timesteps=num_train_timesteps)
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}.")
        if prediction_type == "v_prediction" and scheduler is None:
            raise ValueError("prediction_type='v_prediction' needs the scheduler (for its velocity).")
        self.process: NoiseProcess | None = None if scheduler is None else noise_process(scheduler, prediction_type)
        if (
            prediction_type == "epsilon"
            and isinstance(self.process, VariancePreservingProcess)
            and self.process.terminal_snr == 0.0
        ):
            raise ValueError(
                "the scheduler's schedule has zero terminal SNR (alpha_bar_T = 0), where the noise says nothing about "
                "the image: set prediction_type to 'v_prediction' (or 'sample'), not 'epsilon'."
            )
        if class_key is not None and (num_classes is None or num_classes < 1):
            raise ValueError(f"class_key={class_key!r} needs num_classes >= 1, got {num_classes!r}.")
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1], got {condition_dropout}.")
        self.scheduler = scheduler
        self.prediction_type = prediction_type
        self.image_key = image_key
        self.text_encoder = text_encoder
        self.caption_key = caption_key
        self.class_key = class_key
        self.num_classes = num_classes
        self.condition_dropout = condition_dropout
        self.noise_offset = noise_offset

    def get_noise(self, images: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(images)
        if self.noise_offset > 0:
            noise = noise + self.noise_offset * torch.randn(*images.shape[:2], *([1] * (images.ndim - 2))).to(noise)
        return noise

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        if self.process is None:
            return super().get_timesteps(images)
        return self.process.sample_timesteps(images)

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.process is not None:
            return self.process.target(images, noise, timesteps)
        return noise if self.prediction_type == "epsilon" else images

    def get_dropped(self, batch_size: int, device: torch.device | str | None) -> torch.Tensor:
        """Which samples lose their conditions in this batch (a boolean (B,) tensor)."""
        return torch.rand(batch_size).lt(self.condition_dropout).to(device)

    def get_conditions(
        self, batchdata: Mapping[str, Any], batch_size: int, device: torch.device | str | None
    ) -> dict[str, torch.Tensor]:
        """The condition keyword arguments of the inferer for this batch, with dropout applied."""
        conditions: dict[str, torch.Tensor] = {}
        if self.text_encoder is None and self.class_key is None:
            return conditions
        dropped = self.get_dropped(batch_size, device)
        if self.text_encoder is not None:
            if self.caption_key not in batchdata:
                raise KeyError(f"the batch has no '{self.caption_key}' (captions); keys are {sorted(batchdata)}.")
            context = self.text_encoder.encode(list(batchdata[self.caption_key]), device=device)
            null = self.text_encoder.null_context(batch_size, device=device)
            conditions["condition"] = torch.where(dropped[:, None, None], null, context)
        if self.class_key is not None:
            labels = torch.as_tensor(batchdata[self.class_key]).long().view(-1).to(device)
            conditions["class_labels"] = torch.where(dropped, torch.full_like(labels, self.num_classes or 0), labels)
        return conditions

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        images, _ = default_prepare_batch({"image": batchdata[self.image_key]}, device, non_blocking, **kwargs)
        images = torch.as_tensor(images)
        noise = self.get_noise(images)
        timesteps = self.get_timesteps(images)
        target = self.get_target(images, noise, timesteps)
        infer_kwargs: dict[str, Any] = {"noise": noise, "timesteps": timesteps}
        infer_kwargs.update(self.get_conditions(batchdata, images.shape[0], images.device))
        return images, target, (), infer_kwargs
