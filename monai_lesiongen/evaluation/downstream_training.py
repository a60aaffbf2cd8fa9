"""The training loop that the downstream classifier and segmenter share, and the summary of figures over seeds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.handlers import LrScheduleHandler, from_engine
from monai.transforms import Compose, EnsureTyped, RandFlipd, RandRotate90d
from monai.utils import optional_import
from torch import nn
from torch.utils.data import WeightedRandomSampler

from monai_lesiongen.metrics.fairness import mean_ci_over_seeds

ProgressBar, has_progress_bar = optional_import("ignite.handlers", name="ProgressBar")
tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = [
    "UNIT_INTERVAL",
    "fit_network",
    "flip_rotate_augmentation",
    "new_network",
    "run_conditions",
    "seeded",
    "summarize_runs",
]


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for a block and restore the global random state after it, so runs are repeatable and the
    caller's random streams are left as they were."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def new_network(
    network_factory: Callable[[], nn.Module] | None, seed: int, device: str | torch.device
) -> nn.Module | None:
    """A fresh untrained network from `network_factory`, its initial weights set by `seed`; None without a factory."""
    if network_factory is None:
        return None
    with seeded(seed, torch.device(device)):
        return network_factory()


def run_conditions(
    conditions: Sequence[tuple[str, float | None]],
    seeds: Sequence[int],
    run: Callable[[str, float | None, int], Mapping[str, Any]],
    desc: str = "downstream runs",
    progress: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """
    One run per training condition and seed, condition by condition: the loop of the downstream comparisons.

    Args:
        conditions: ``(name, ratio)`` of each training condition.
        seeds: one run per seed and condition.
        run: ``run(name, ratio, seed)`` trains and tests once; returns that run's figures.
        desc: the progress bar's label.
        progress: show a progress bar over the runs.

    Returns:
        ``{name: [{"seed": seed, **figures}, ...]}`` in the order of `conditions` and `seeds`.

    Raises:
        ValueError: when `seeds` is empty.
    """
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed (two or more for confidence intervals).")
    runs = [(name, ratio, seed) for name, ratio in conditions for seed in seeds]
    iterator = tqdm(runs, desc=desc, leave=False) if progress and has_tqdm else runs
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in conditions}
    for name, ratio, seed in iterator:
        results[name].append({"seed": seed, **run(name, ratio, seed)})
    return results


def fit_network(
    network: nn.Module,
    data: Sequence[Mapping[str, Any]],
    loss_function: Callable,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    sample_weights: torch.Tensor | None = None,
    weight_decay: float = 1e-4,
    progress: bool = False,
) -> nn.Module:
    """
    Train a network on in-memory ``{"image", "label"}`` items with a MONAI ``SupervisedTrainer``: AdamW, a cosine
    learning-rate decay over all iterations (so the final weights do not depend on where a noisy step left them),
    and a seeded data order and augmentation.

    Args:
        network: the network, trained in place.
        data: items with ``image`` and ``label`` (a class index or a mask) tensors.
        loss_function: ``loss(network_output, label)``.
        epochs: passes over ``data`` (or ``len(data)`` draws with ``sample_weights``).
        batch_size: items per step.
        lr: peak learning rate.
        seed: seed of the data order, the augmentation and anything random inside the network.
        device: where to train.
        transform: augmentation applied to every item, e.g. random flips.
        sample_weights: per-item sampling weights (drawn with replacement); ``None`` shuffles.
        weight_decay: AdamW weight decay.
        progress: show a progress bar per epoch.

    Returns:
        the trained network, in eval mode.

    Raises:
        ValueError: when ``data`` is empty or ``epochs`` / ``batch_size`` is not positive.
    """
    if not data:
        raise ValueError("no training items: the training set is empty.")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}.")
    device = torch.device(device)
    with seeded(seed, device):
        generator = torch.Generator().manual_seed(seed)
        sampler = None
        if sample_weights is not None:
            sampler = WeightedRandomSampler(
                sample_weights.double().tolist(), len(data), replacement=True, generator=generator
            )
        loader = DataLoader(
            Dataset(list(data), transform=transform),
            batch_size=batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            drop_last=len(data) > batch_size,
        )
        optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(loader)))
        trainer = SupervisedTrainer(
            device=device,
            max_epochs=epochs,
            train_data_loader=loader,
            network=network.to(device),
            optimizer=optimizer,
            loss_function=loss_function,
            train_handlers=[LrScheduleHandler(schedule, print_lr=False, epoch_level=False)],  # type: ignore[arg-type]
            decollate=False,
        )
        if progress and has_progress_bar:
            ProgressBar(persist=False).attach(trainer, output_transform=from_engine(["loss"], first=True))
        trainer.run()
    return network.eval()


def flip_rotate_augmentation(keys: Sequence[str]) -> Compose:
    """Dermoscopy has no canonical orientation: random flips and quarter turns (applied alike to ``keys``)."""
    return Compose(
        [
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandRotate90d(keys=keys, prob=0.5, max_k=3),
            EnsureTyped(keys=keys, track_meta=False),
        ]
    )


UNIT_INTERVAL: tuple[float, float] = (0.0, 1.0)
"""Bounds of accuracies, recalls, Dice and IoU: their confidence intervals are clipped to it."""


def summarize_runs(
    values: Sequence[float | None], alpha: float = 0.05, bounds: tuple[float, float] | None = None
) -> dict[str, Any]:
    """
    Mean and Student-t confidence interval of a figure over seeds (:func:`mean_ci_over_seeds`).

    Args:
        values: one value per seed; None or NaN (undefined in that run) is left out.
        alpha: one minus the confidence level.
        bounds: the range of the figure (e.g. ``(0, 1)`` for accuracies); the interval is clipped to it, since with
            few seeds a t-interval easily reaches past it.

    Returns:
        ``mean``, ``lower``, ``upper`` (None with fewer than two values) and the ``values`` (NaN as None).
    """
    cleaned = [None if v is None or not np.isfinite(v) else float(v) for v in values]
    kept = [v for v in cleaned if v is not None]
    if len(kept) < 2:
        return {"mean": kept[0] if kept else None, "lower": None, "upper": None, "values": cleaned}
    ci = mean_ci_over_seeds(kept, alpha=alpha)
    lower, upper = (ci.lower, ci.upper) if bounds is None else (max(ci.lower, bounds[0]), min(ci.upper, bounds[1]))
    return {"mean": ci.estimate, "lower": lower, "upper": upper, "values": cleaned}
