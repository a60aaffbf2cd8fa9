"""Validation while training a generator: how well its samples follow their conditions, judged by what is not the
generator, and the best network kept as ``model_best.pt``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from monai_lesiongen.evaluation.downstream import predict
from monai_lesiongen.evaluation.downstream_data import fitzpatrick_types, requested_fitzpatrick, skin_type_groups
from monai_lesiongen.handlers.checkpoint_saver import AtomicDiskSaver
from monai_lesiongen.metrics.fairness import balanced_accuracy

if TYPE_CHECKING:
    from ignite.engine import Engine

    from monai_lesiongen.inferers.generation import ConditionedSampler

__all__ = ["ConditionFidelityValidator"]


class ConditionFidelityValidator:
    """Every `interval` epochs, draw `num_per_row` images for every row of a validation plan with the (EMA) network
    and judge how well they follow their conditions:

    - ``val_recognition``: balanced accuracy of `judge` (a classifier trained on real images only, never on the
      generator's) on the requested diagnosis of each row;
    - ``val_skin_match``: how often the skin-type group (I-II, III-IV, V-VI) estimated from the generated skin (ITA,
      a pixel measure) is the group of the row's ``fitzpatrick`` type (or of the first of its ``fitzpatrick_types``);
    - ``val_score``: the mean of the two (of the one there is).

    The figures go to ``engine.state.metrics`` (so `StatsHandler` and `TensorBoardStatsHandler` log them) and to
    `summary_writer`; when ``val_score`` beats every earlier one, the network's weights are written to `best_path`
    atomically. Put the validator in the checkpoint's objects: `state_dict` holds the best score and epoch, so a
    resumed run keeps comparing with the run's true best.

    A run whose last epoch is not a multiple of `interval` gets one more check at its end.

    Sampling uses the seeds ``seed, seed + 1, ...`` for every check, so two checks differ only by the network.

    Args:
        sampler: the sampler (its guidance scale and steps are those of the check).
        network: the network to draw with (the EMA network by default in the bundles) and to save.
        plan: rows with the conditions (the caption under `caption_key` and/or the class under `class_key`), and for
            the judges the diagnosis index under `diagnosis_key` and ``fitzpatrick`` (1-6) or ``fitzpatrick_types``
            (``"5-6"``).
        judge: a diagnosis classifier on (N, 3, H, W) images in [0, 1]; None to judge the skin type only.
        num_classes: number of diagnoses the judge knows (for the balanced accuracy).
        num_per_row: images per plan row.
        interval: epochs between checks (0: never).
        seed: the first seed.
        caption_key: the plan field holding the caption; None for a model without text condition.
        class_key: the plan field holding the class condition; None for a model without one.
        diagnosis_key: the plan field holding the diagnosis index the judge should see.
        image_channels: the image channels of a sample (a paired mask's channels after them are left out).
        best_path: where to save the best network's weights; None to save nothing.
        summary_writer: a TensorBoard ``SummaryWriter`` (or anything with ``add_scalar``); None for none.

    Raises:
        ValueError: for an empty plan, ``num_per_row < 1``, ``interval < 0``, or rows that lack a conditioning field.
    """

    def __init__(
        self,
        sampler: ConditionedSampler,
        network: nn.Module,
        plan: Sequence[Mapping[str, Any]],
        judge: nn.Module | None = None,
        num_classes: int | None = None,
        num_per_row: int = 1,
        interval: int = 5,
        seed: int = 100_000,
        caption_key: str | None = "caption",
        class_key: str | None = None,
        diagnosis_key: str = "label",
        image_channels: int = 3,
        best_path: str | Path | None = None,
        summary_writer: Any = None,
    ) -> None:
        if not plan:
            raise ValueError("the validation plan is empty: nothing to judge.")
        if num_per_row < 1:
            raise ValueError(f"num_per_row must be >= 1, got {num_per_row}.")
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}.")
        for key in (caption_key, class_key):
            missing = [i for i, row in enumerate(plan) if key is not None and key not in row]
            if missing:
                raise ValueError(
                    f"validation plan rows {missing[:10]} have no '{key}' field, which conditions the model."
                )
        if judge is not None and num_classes is None:
            raise ValueError("a judge needs num_classes, the number of diagnoses it tells apart.")
        self.sampler = sampler
        self.network = network
        self.plan = [dict(row) for row in plan]
        self.judge = judge
        self.num_classes = num_classes
        self.num_per_row = num_per_row
        self.interval = interval
        self.seed = seed
        self.caption_key = caption_key
        self.class_key = class_key
        self.diagnosis_key = diagnosis_key
        self.image_channels = image_channels
        self.best_path = None if best_path is None else Path(best_path)
        self.summary_writer = summary_writer
        self.best_score = -math.inf
        self.best_epoch = 0
        self.history: list[dict[str, float]] = []

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        if self.interval > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
            engine.add_event_handler(Events.COMPLETED, self.final_check)

    def final_check(self, engine: Engine) -> None:
        """A check of the final network when the last epoch was not one of the interval's, so that the run always
        ends with the final network judged (and `best_path` written)."""
        if not self.history or int(self.history[-1]["epoch"]) != int(engine.state.epoch):
            self(engine)

    def rows(self) -> list[dict[str, Any]]:
        """The plan with every row repeated `num_per_row` times, in drawing order."""
        return [row for row in self.plan for _ in range(self.num_per_row)]

    def evaluate(self) -> dict[str, float]:
        """Draw the validation images and return their figures (see the class docstring)."""
        rows = self.rows()
        seeds = list(range(self.seed, self.seed + len(rows)))
        captions = [str(row[self.caption_key]) for row in rows] if self.caption_key is not None else None
        classes = [int(row[self.class_key]) for row in rows] if self.class_key is not None else None
        images = self.sampler(self.network, seeds, captions=captions, class_labels=classes)[:, : self.image_channels]
        figures: dict[str, float] = {}
        if self.judge is not None and all(self.diagnosis_key in row for row in rows):
            requested = np.array([int(row[self.diagnosis_key]) for row in rows])
            predicted = predict(self.judge, images).argmax(1).numpy()
            figures["val_recognition"] = balanced_accuracy(requested, predicted, int(self.num_classes or 0))
        wanted = [requested_fitzpatrick(row) for row in rows]
        if all(wanted):
            estimated, _ = fitzpatrick_types([{} for _ in rows], images)  # from the ITA of every image's skin
            groups = skin_type_groups([types[0] for types in wanted])
            matches = [a == b for a, b in zip(groups, skin_type_groups(estimated), strict=True)]
            figures["val_skin_match"] = float(np.mean(matches))
        if figures:
            figures["val_score"] = float(np.mean(list(figures.values())))
        return figures

    def __call__(self, engine: Engine) -> None:
        figures = self.evaluate()
        epoch = int(engine.state.epoch)
        engine.state.metrics.update(figures)
        self.history.append({"epoch": float(epoch), **figures})
        if self.summary_writer is not None:
            for name, value in figures.items():
                self.summary_writer.add_scalar(name, value, epoch)
        score = figures.get("val_score")
        if score is not None and score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            if self.best_path is not None:
                self.save_best()
        engine.logger.info(
            "validation at epoch %d: %s (best %.3f at epoch %d)",
            epoch,
            ", ".join(f"{k} {v:.3f}" for k, v in figures.items()),
            self.best_score,
            self.best_epoch,
        )

    def save_best(self) -> None:
        """Write the network's weights to `best_path` (temp file + rename, so a crash leaves the old best)."""
        if self.best_path is None:
            return
        self.best_path.parent.mkdir(parents=True, exist_ok=True)
        module: nn.Module = getattr(self.network, "module", self.network)  # a DistributedDataParallel's own network
        AtomicDiskSaver(self.best_path.parent)(module.state_dict(), self.best_path.name)

    def state_dict(self) -> dict[str, Any]:
        """The best score and epoch so far, and the figures of every check."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.history = [dict(entry) for entry in state.get("history", [])]
