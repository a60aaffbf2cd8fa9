"""Classifier guidance (Dhariwal & Nichol 2021) as a `SamplingGuidance` term, and a sampler that sets its targets.

At each sampling step the noise prediction is shifted along the gradient of the classifier's log-probability of the
target class at the current sample:

    eps_guided = eps - s * sqrt(1 - alpha_bar_t) * grad_x log p(y | x_t, t)

which samples from ``p(x_t) p(y | x_t)^s``; with rectified flow, sqrt(1 - alpha_bar_t) is its noise scale t / T
(`NoiseProcess.guide`). It composes with classifier-free guidance: the sampler applies guidance
terms to the model output after the conditional/unconditional mix, so "both" is CFG followed by this term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.schedulers import Scheduler
from torch import nn

from monai_lesiongen.engines.prepare_batch import PredictionType
from monai_lesiongen.inferers.generation import ConditionedSampler
from monai_lesiongen.schedulers import NoiseProcess, noise_process

__all__ = ["GUIDANCE_MODES", "ClassifierGuidance", "ClassifierGuidedSampler", "guidance_settings"]

GUIDANCE_MODES: tuple[str, ...] = ("none", "cfg", "classifier", "both")
"""Sampling modes: conditional sampling only, classifier-free guidance, classifier guidance, or CFG + classifier."""


def guidance_settings(mode: str, guidance_scale: float) -> tuple[float, bool]:
    """The classifier-free guidance scale and whether classifier guidance is on, for a guidance `mode`.

    Raises:
        ValueError: for a mode not in `GUIDANCE_MODES`.
    """
    if mode not in GUIDANCE_MODES:
        raise ValueError(f"guidance_mode must be one of {list(GUIDANCE_MODES)}, got {mode!r}.")
    return (guidance_scale if mode in ("cfg", "both") else 1.0), mode in ("classifier", "both")


class ClassifierGuidance:
    """Classifier guidance with a noise-aware classifier, as a `SamplingGuidance` term of the inferer.

    The gradient is taken with ``torch.enable_grad()`` inside the sampler's no-grad loop, through the classifier in
    eval mode; the denoiser gets no gradient. The output is converted to epsilon through the sampling scheduler's
    noise process (DDPM-like or rectified flow), guided, and converted back.

    With a scheduler that clips its x0 estimate (``clip_sample=True``, MONAI's DDIM default), pass the same
    `data_range`: the guided x0 estimate is then clipped here and epsilon re-derived from it. Otherwise a strong
    guidance step pushes the x0 estimate out of range, the scheduler clips that part away, and only the opposite
    shift of the epsilon term reaches x_{t-1}: the guidance turns round. Within the range both are the same.

    Args:
        classifier: ``classifier(x_t, timesteps) -> logits``, trained on noised samples (`NoisyClassifierLoss`).
        target_labels: the class each sample is steered to (B,); or set per batch with `set_targets`.
        scale: the guidance scale s; 0 turns the term off.
        prediction_type: what the denoiser predicts: ``epsilon``, ``v_prediction`` (rectified flow's velocity
            under an `RFlowScheduler`) or ``sample``.
        data_range: (low, high) to clip the guided x0 estimate to, as the sampling scheduler clips; None for none.

    Raises:
        ValueError: for an unknown prediction type, a negative scale or an empty data range.
    """

    def __init__(
        self,
        classifier: nn.Module,
        target_labels: torch.Tensor | None = None,
        scale: float = 1.0,
        prediction_type: PredictionType = "epsilon",
        data_range: tuple[float, float] | None = None,
    ) -> None:
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}.")
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}.")
        if data_range is not None and data_range[0] >= data_range[1]:
            raise ValueError(f"data_range must be (low, high) with low < high, got {tuple(data_range)}.")
        self.data_range = None if data_range is None else (float(data_range[0]), float(data_range[1]))
        self.classifier = classifier
        self.scale = scale
        self.prediction_type = prediction_type
        self.target_labels: torch.Tensor | None = None
        self._process: NoiseProcess | None = None
        if target_labels is not None:
            self.set_targets(target_labels)

    def set_targets(self, labels: torch.Tensor | Sequence[int]) -> None:
        """Set the target class of each sample of the next batch."""
        self.target_labels = torch.as_tensor(labels, dtype=torch.long).view(-1)

    def log_probability_gradient(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """grad_x sum_b log p(y_b | x_b, t_b) at `sample` (B, C, H, W), in float32.

        Raises:
            ValueError: when no targets are set, or their number differs from the batch.
        """
        if self.target_labels is None:
            raise ValueError("ClassifierGuidance has no targets: pass target_labels or call set_targets(labels).")
        if self.target_labels.numel() != sample.shape[0]:
            raise ValueError(f"got {self.target_labels.numel()} target labels for a batch of {sample.shape[0]}.")
        was_training = self.classifier.training
        self.classifier.eval()
        with torch.enable_grad():
            x = sample.detach().float().requires_grad_(True)
            log_probs = F.log_softmax(self.classifier(x, timestep).float(), dim=-1)
            selected = log_probs.gather(1, self.target_labels.to(x.device).view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(selected, x)
        self.classifier.train(was_training)
        return gradient

    def __call__(
        self, model_output: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor, scheduler: Scheduler
    ) -> torch.Tensor:
        if self.scale == 0:
            return model_output
        gradient = self.log_probability_gradient(sample, timestep)
        if self._process is None or self._process.scheduler is not scheduler:
            self._process = noise_process(scheduler, self.prediction_type)  # once per sampling scheduler
        return self._process.guide(model_output, sample, timestep, self.scale * gradient, self.data_range)


class ClassifierGuidedSampler(ConditionedSampler):
    """A `ConditionedSampler` that sets the targets of its classifier guidance for every batch it draws.

    The targets follow the class labels the denoiser is conditioned on, through `target_map` (e.g. the diagnosis of
    a joint diagnosis x skin-type label, then its benign/malignant class), or are given to `__call__`. Without
    `classifier_guidance` it is a plain `ConditionedSampler`. Other arguments are those of `ConditionedSampler`.

    Args:
        args: positional arguments of `ConditionedSampler`.
        classifier_guidance: the guidance term, or None for none; it runs after any other guidance terms.
        target_map: class label(s) -> target label(s), a callable or a sequence indexed by class label; identity
            when None.
        kwargs: keyword arguments of `ConditionedSampler`.
    """

    def __init__(
        self,
        *args: Any,
        classifier_guidance: ClassifierGuidance | None = None,
        target_map: Callable[[torch.Tensor], torch.Tensor] | Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.classifier_guidance = classifier_guidance
        self.target_map = target_map
        if classifier_guidance is not None:
            self.guidance.append(classifier_guidance)

    def targets_of(self, class_labels: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """The guidance targets of a batch of class labels."""
        labels = torch.as_tensor(class_labels, dtype=torch.long).view(-1)
        if self.target_map is None:
            return labels
        if callable(self.target_map):
            return torch.as_tensor(self.target_map(labels), dtype=torch.long).view(-1)
        return torch.as_tensor(list(self.target_map), dtype=torch.long)[labels]

    def __call__(  # type: ignore[override]
        self,
        network: nn.Module,
        seeds: Sequence[int],
        captions: Sequence[str] | None = None,
        class_labels: Sequence[int] | torch.Tensor | None = None,
        target_labels: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Samples (N, C, H, W) in [0, 1], one per seed, steered to `target_labels` (from `class_labels` if None).

        Raises:
            ValueError: when classifier guidance is on and there are neither target nor class labels.
        """
        if self.classifier_guidance is None:
            return super().__call__(network, seeds, captions=captions, class_labels=class_labels)
        if target_labels is None:
            if class_labels is None:
                raise ValueError("classifier guidance needs target_labels, or class_labels to derive them from.")
            target_labels = self.targets_of(class_labels)
        targets = torch.as_tensor(target_labels, dtype=torch.long).view(-1)
        if targets.numel() != len(seeds):
            raise ValueError(f"got {targets.numel()} target labels for {len(seeds)} seeds.")
        outputs = []
        for start in range(0, len(seeds), self.batch_size):
            stop = min(start + self.batch_size, len(seeds))
            self.classifier_guidance.set_targets(targets[start:stop])
            outputs.append(
                super().__call__(
                    network,
                    seeds[start:stop],
                    captions=None if captions is None else captions[start:stop],
                    class_labels=None if class_labels is None else class_labels[start:stop],
                )
            )
        return torch.cat(outputs)
