"""Resuming an interrupted training from the latest complete checkpoint, random states included."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_lesiongen.handlers.checkpoint_saver import checkpoints_newest_first

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["ResumeFromLatestCheckpoint"]


def _summary(error: BaseException) -> str:
    """The error's type and the start of its message's first line (torch's load errors run to a paragraph)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


class ResumeFromLatestCheckpoint:
    """Ignite handler: when the run starts, load the latest complete checkpoint of `checkpoint_dir`, if there is one.

    A killed run started again with the same command continues where its last complete checkpoint left it: the
    objects of `load_dict`, typically the weights, optimizer, EMA weights, the trainer's epoch and iteration, and
    (with a `RandomStates`) the random states. Whatever else changes during training must be in `load_dict` too:
    a learning-rate scheduler, if one is used, has to be added (``"lr_scheduler": ...``) to both the saved and the
    loaded objects, or a resumed run restarts its schedule. A checkpoint that does not load (truncated by a killed
    non-atomic save, or corrupt) is skipped with a warning naming it, for the next older one; when none loads, the
    run stops with an error rather than start from scratch. With no checkpoint, or ``enabled=False``, training
    starts from scratch.

    Args:
        checkpoint_dir: the folder the checkpoint saver writes to.
        load_dict: the objects to restore, as saved (``{"network": ..., "optimizer": ..., "trainer": ...}``).
        prefix: the checkpoint file prefix.
        enabled: whether to resume at all.
        map_location: passed to `torch.load`.

    Raises:
        ValueError: when `load_dict` is empty.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        load_dict: dict[str, Any],
        prefix: str = "checkpoint",
        enabled: bool = True,
        map_location: Any = None,
    ) -> None:
        if not load_dict:
            raise ValueError("load_dict is empty: give the objects the checkpoints hold, e.g. {'network': ...}.")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.load_dict = load_dict
        self.prefix = prefix
        self.enabled = enabled
        self.map_location = map_location
        self.loaded_from: Path | None = None
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        """Restore the objects from the newest checkpoint that loads.

        Raises:
            RuntimeError: when there are checkpoints but none of them loads.
        """
        if not self.enabled:
            return
        candidates = checkpoints_newest_first(self.checkpoint_dir, self.prefix)
        if not candidates:
            self.logger.info(f"no checkpoint in {self.checkpoint_dir}: training starts from scratch.")
            return
        failures = []
        for path in candidates:
            try:
                checkpoint = torch.load(path, map_location=self.map_location, weights_only=True)
            except Exception as error:  # a truncated or corrupt file fails in many ways (zip, pickle, EOF, ...)
                reason = _summary(error)
                failures.append(f"{path.name} ({reason})")
                self.logger.warning(f"checkpoint {path} does not load ({reason}): trying the next older one.")
                continue
            self._restore(engine, checkpoint, path)
            self.loaded_from = path
            self.logger.info(f"resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}.")
            return
        raise RuntimeError(
            f"none of the checkpoints in {self.checkpoint_dir} loads: {'; '.join(failures)}. To start from scratch, "
            "move these files out of the folder or set resume to false; to resume, restore a complete checkpoint."
        )

    def _restore(self, engine: Engine, checkpoint: dict[str, Any], path: Path) -> None:
        """Load `checkpoint` (read from `path`) into the objects, as MONAI's `CheckpointLoader` does: a file saved
        from a single object is its state dict, and the trainer keeps its own `max_epochs`.

        Raises:
            ValueError: when the checkpoint lacks objects of `load_dict` (saved by a config without them), or is at
                an epoch past the trainer's `max_epochs`.
        """
        key = next(iter(self.load_dict))
        if len(self.load_dict) == 1 and key not in checkpoint:
            checkpoint = {key: checkpoint}
        missing = [name for name in self.load_dict if name not in checkpoint]
        if missing:
            raise ValueError(
                f"{path} has no {missing} (it holds {sorted(checkpoint)}): it was saved by a configuration without "
                "them. Resume with that configuration, or start this one in a new output_dir (or with resume false)."
            )
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=self.load_dict, checkpoint=checkpoint)
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise ValueError(
                f"the checkpoint is at epoch {engine.state.epoch}, past the trainer's max_epochs ({max_epochs}): "
                "raise num_epochs to train further."
            )
        engine.state.max_epochs = max_epochs
