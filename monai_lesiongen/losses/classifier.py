"""Classifier losses for joint diffusion + classifier training (Class-N-Diff), as auxiliary terms of
`DiffusionTrainingStep` (the prepare-batch that trains the same classifier alone on the same inputs is
`monai_lesiongen.engines.NoisyClassificationPrepareBatch`).

- `NoisyClassifierLoss` trains a noise-aware classifier on the noised images x_t at their timestep and on the clean
  images at t = 0, detached from the denoiser: the classifier that classifier guidance and evaluation use.
- `ClassifierInducedLoss` is Class-N-Diff's term: on a random share of the steps the model's estimate of x0 goes
  through the classifier and ``weight x cross-entropy`` is added, with the gradient flowing into the denoiser, so
  the denoiser learns to produce images the classifier recognises as the class it was asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from monai.networks.schedulers import Scheduler
from torch import nn
from torch.func import functional_call

from monai_lesiongen.losses.auxiliary import DiffusionStepState
from monai_lesiongen.schedulers import noise_process

__all__ = ["ClassifierInducedLoss", "NoisyClassifierLoss", "batch_labels"]


def batch_labels(
    batchdata: Mapping[str, Any], label_key: str, device: torch.device, label_map: Sequence[int] | None = None
) -> torch.Tensor:
    """The integer labels (B,) of a batch under `label_key`, mapped through `label_map` (e.g. to benign/malignant).

    Raises:
        KeyError: when the batch has no `label_key`.
    """
    if label_key not in batchdata:
        raise KeyError(f"the batch has no '{label_key}' (class labels); keys are {sorted(batchdata)}: set label_key.")
    labels = torch.as_tensor(batchdata[label_key]).long().view(-1).to(device)
    if label_map is not None:
        labels = torch.as_tensor(list(label_map), dtype=torch.long, device=device)[labels]
    return labels


class NoisyClassifierLoss:
    """Cross-entropy of a noise-aware classifier on x_t at t and on x0 at t = 0, detached from the denoiser.

    Both halves go through the classifier as one batch of 2B. Only the classifier (its own parameters, or the shared
    encoder and head of a `SharedEncoderClassifier`) receives gradients; the inputs are the data and the noise, not
    the denoiser's output.

    Args:
        classifier: ``classifier(x, timesteps) -> logits``.
        weight: the factor of the term in the total loss.
        label_key: key of the class labels in the batch.
        label_map: maps the batch labels to the classifier's classes (e.g. `benign_malignant_label_map()`).
        include_clean: also train on the clean images at t = 0.
        name: the term's name in the logs (``loss_<name>``).

    Raises:
        ValueError: for a negative weight.
    """

    def __init__(
        self,
        classifier: nn.Module,
        weight: float = 1.0,
        label_key: str = "label",
        label_map: Sequence[int] | None = None,
        include_clean: bool = True,
        name: str = "classifier",
    ) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}.")
        self.classifier = classifier
        self.weight = weight
        self.label_key = label_key
        self.label_map = label_map
        self.include_clean = include_clean
        self.name = name

    def __call__(self, state: DiffusionStepState) -> torch.Tensor:
        labels = batch_labels(state.batchdata, self.label_key, state.inputs.device, self.label_map)
        images, timesteps = state.noisy.detach(), state.timesteps
        if self.include_clean:
            images = torch.cat([images, state.inputs.detach()])
            timesteps = torch.cat([timesteps, torch.zeros_like(timesteps)])
            labels = torch.cat([labels, labels])
        self.classifier.train()
        logits = self.classifier(images, timesteps)
        return self.weight * F.cross_entropy(logits.float(), labels)


class ClassifierInducedLoss:
    """Class-N-Diff's classifier-induced term: ``weight x CE(classifier(clamp(x0_hat), t=0), label)`` on some steps.

    On a random `probability` share of the training steps (drawn from torch's generator, so a resumed run with its
    random states draws the same steps) the model's estimate x0_hat of each sample is clamped to the data range and
    classified as a clean image. Samples whose class condition was dropped (the null class, which trains the
    unconditional model) and samples noised beyond `max_timestep` (whose x0_hat is too blurred to classify) are left
    out. The gradient flows through x0_hat into the denoiser.

    With ``weighting="alpha_bar"`` each sample's cross-entropy is multiplied by the signal fraction of its x_t
    (alpha_bar_t for DDPM; a_t^2 / (a_t^2 + s_t^2) for rectified flow). Without it (Class-N-Diff), the gradient
    reaching an epsilon-predicting denoiser is dCE/dx0_hat times sqrt((1 - alpha_bar_t) / alpha_bar_t), about 100 at
    the last timesteps of a 1000-step schedule: measured on the demo bundle, 10-150 times the gradient norm of the
    diffusion loss, which then dominates Adam's step sizes. With the weighting the factor is
    sqrt(alpha_bar_t (1 - alpha_bar_t)) <= 1/2.

    Args:
        classifier: ``classifier(x, timesteps) -> logits``.
        weight: lambda, the factor of the term (0.2 in Class-N-Diff).
        probability: the share of steps with the term (0.25 in Class-N-Diff).
        label_key: key of the class labels in the batch (the diagnosis, not the joint label the denoiser sees).
        label_map: maps the batch labels to the classifier's classes (e.g. `benign_malignant_label_map()`).
        null_class_label: the denoiser's null class; the network's ``null_class_label`` when None.
        max_timestep: leave out samples with t above it; None keeps all.
        data_range: the (low, high) range the images were scaled to.
        update_classifier: whether the classifier's own parameters also learn from the denoised samples, as in
            Class-N-Diff; False keeps them fixed here (only the denoiser adapts, and cannot co-adapt with the
            classifier).
        weighting: ``none`` (Class-N-Diff) or ``alpha_bar`` (each sample weighted by alpha_bar_t).
        scheduler: the training noise scheduler, for ``weighting="alpha_bar"``.
        name: the term's name in the logs (``loss_<name>``).

    Raises:
        ValueError: for a negative weight, a probability outside [0, 1], an empty data range, an unknown weighting,
            or ``alpha_bar`` weighting without the scheduler.
    """

    def __init__(
        self,
        classifier: nn.Module,
        weight: float = 0.2,
        probability: float = 0.25,
        label_key: str = "label",
        label_map: Sequence[int] | None = None,
        null_class_label: int | None = None,
        max_timestep: int | None = None,
        data_range: tuple[float, float] = (-1.0, 1.0),
        update_classifier: bool = True,
        weighting: Literal["none", "alpha_bar"] = "none",
        scheduler: Scheduler | None = None,
        name: str = "classifier_induced",
    ) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}.")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}.")
        if data_range[0] >= data_range[1]:
            raise ValueError(f"data_range must be (low, high) with low < high, got {tuple(data_range)}.")
        if weighting not in ("none", "alpha_bar"):
            raise ValueError(f"weighting must be 'none' or 'alpha_bar', got {weighting!r}.")
        if weighting == "alpha_bar" and scheduler is None:
            raise ValueError("weighting='alpha_bar' needs the training scheduler: pass scheduler=.")
        self.classifier = classifier
        self.weight = weight
        self.probability = probability
        self.label_key = label_key
        self.label_map = label_map
        self.null_class_label = null_class_label
        self.max_timestep = max_timestep
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.update_classifier = update_classifier
        self.weighting = weighting
        self.scheduler = scheduler
        self.process = None if scheduler is None else noise_process(scheduler)
        self.name = name

    def selected(self, state: DiffusionStepState) -> torch.Tensor:
        """Which samples of the step the term uses (a boolean (B,) tensor), before the per-step draw."""
        keep = torch.ones_like(state.timesteps, dtype=torch.bool)
        null = self.null_class_label
        if null is None:
            null = getattr(getattr(state.network, "module", state.network), "null_class_label", None)
        if null is not None and "class_labels" in state.conditions:
            keep &= state.conditions["class_labels"].view(-1) != null
        if self.max_timestep is not None:
            keep &= state.timesteps <= self.max_timestep
        return keep

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of clean-image estimates at t = 0, with the classifier's parameters detached unless it is updated."""
        timesteps = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        if self.update_classifier:
            logits: torch.Tensor = self.classifier(images, timesteps)
            return logits
        frozen = {k: v.detach() for k, v in [*self.classifier.named_parameters(), *self.classifier.named_buffers()]}
        output: torch.Tensor = functional_call(self.classifier, frozen, (images, timesteps))
        return output

    def __call__(self, state: DiffusionStepState) -> torch.Tensor:
        zero = torch.zeros((), device=state.inputs.device)
        if self.weight == 0 or float(torch.rand(())) >= self.probability:
            return zero
        keep = self.selected(state)
        if not bool(keep.any()):
            return zero
        labels = batch_labels(state.batchdata, self.label_key, state.inputs.device, self.label_map)[keep]
        estimate = state.original_estimate[keep].float().clamp(*self.data_range)
        self.classifier.train()
        per_sample = F.cross_entropy(self.classify(estimate).float(), labels, reduction="none")
        if self.weighting == "alpha_bar" and self.process is not None:
            weights = self.process.signal_fraction(state.timesteps[keep].to(per_sample.device))
            per_sample = per_sample * weights
        return self.weight * per_sample.mean()
