"""Ignite handler that saves a grid of samples from fixed prompts and seeds during training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monai.utils import optional_import
from torch import nn

from monai_lesiongen.inferers.generation import ConditionedSampler
from monai_lesiongen.utils.image_grid import save_image_grid

Events, _ = optional_import("ignite.engine", name="Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", name="Engine")

__all__ = ["SampleGridSaver"]


class SampleGridSaver:
    """Every `interval` epochs and when training completes, sample fixed captions/classes with fixed seeds and save
    the grid as ``<output_dir>/samples_epoch=<N>.png``.

    The same prompts and seeds every time make the grids comparable across epochs: a person sees the model learn.

    Args:
        sampler: the sampler (its scheduler, steps and guidance set the look of the grid).
        network: the network to sample from (the EMA copy, usually).
        output_dir: folder of the PNGs.
        seeds: one seed per grid cell.
        captions: one caption per cell, for a text-conditioned model.
        class_labels: one class per cell, for a class-conditioned model.
        labels: short text under each cell (the diagnosis, say).
        interval: epochs between grids; 0 for only the final grid.
        num_columns: grid columns.
    """

    def __init__(
        self,
        sampler: ConditionedSampler,
        network: nn.Module,
        output_dir: str | Path,
        seeds: Sequence[int],
        captions: Sequence[str] | None = None,
        class_labels: Sequence[int] | None = None,
        labels: Sequence[str] | None = None,
        interval: int = 1,
        num_columns: int | None = None,
    ) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}.")
        self.sampler = sampler
        self.network = network
        self.output_dir = Path(output_dir)
        self.seeds = list(seeds)
        self.captions = None if captions is None else list(captions)
        self.class_labels = None if class_labels is None else list(class_labels)
        self.labels = None if labels is None else list(labels)
        self.interval = interval
        self.num_columns = num_columns
        self.saved: list[Path] = []

    def attach(self, engine: Engine) -> None:
        if self.interval > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        path = self.output_dir / f"samples_epoch={engine.state.epoch}.png"
        if path in self.saved:
            return
        images = self.sampler(self.network, self.seeds, captions=self.captions, class_labels=self.class_labels)
        self.saved.append(save_image_grid(images, path, labels=self.labels, num_columns=self.num_columns))
