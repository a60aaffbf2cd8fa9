"""The prepare-batch that trains Class-N-Diff's noise-aware classifier alone, on the inputs its loss gives it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.engines.utils import default_prepare_batch
from monai.networks.schedulers import Scheduler

from monai_lesiongen.losses.classifier import batch_labels
from monai_lesiongen.schedulers import noise_process

__all__ = ["NoisyClassificationPrepareBatch"]


class NoisyClassificationPrepareBatch:
    """Prepare-batch that trains a noise-aware classifier alone, on the inputs `NoisyClassifierLoss` gives it.

    The batch becomes ``(images, labels, (), {"timesteps": t})`` with the images noised at timesteps drawn as the
    scheduler's training draws them (uniform for DDPM; rectified flow's own draw) followed (with `include_clean`)
    by the clean images at t = 0, so a `SupervisedTrainer` with a cross-entropy loss and MONAI's `SimpleInferer`
    (which passes ``timesteps`` on to the network) trains the same classifier with the same data and budget as the
    joint run: the baseline the joint training is compared with.

    Args:
        scheduler: the training noise scheduler.
        num_train_timesteps: number of diffusion steps.
        image_key: key of the images in the batch.
        label_key: key of the class labels.
        label_map: maps the batch labels to the classifier's classes.
        include_clean: append the clean images at t = 0.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        num_train_timesteps: int,
        image_key: str = "image",
        label_key: str = "label",
        label_map: Sequence[int] | None = None,
        include_clean: bool = True,
    ) -> None:
        self.scheduler = scheduler
        self.process = noise_process(scheduler)
        self.num_train_timesteps = num_train_timesteps
        self.image_key = image_key
        self.label_key = label_key
        self.label_map = label_map
        self.include_clean = include_clean

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        """The training scheduler's timestep draw (uniform integers for DDPM; rectified flow's own)."""
        return self.process.sample_timesteps(images)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        images, _ = default_prepare_batch({"image": batchdata[self.image_key]}, device, non_blocking, **kwargs)
        images = torch.as_tensor(images)
        labels = batch_labels(batchdata, self.label_key, images.device, self.label_map)
        noise = torch.randn_like(images)
        timesteps = self.get_timesteps(images)
        noisy = self.scheduler.add_noise(original_samples=images, noise=noise, timesteps=timesteps)
        if self.include_clean:
            noisy = torch.cat([noisy, images])
            timesteps = torch.cat([timesteps, torch.zeros_like(timesteps)])
            labels = torch.cat([labels, labels])
        return noisy, labels, (), {"timesteps": timesteps}
