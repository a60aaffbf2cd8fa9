"""Atomic checkpoint files, and finding the latest complete one of a folder."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import CheckpointSaver
from monai.utils import IgniteInfo, min_version, optional_import

Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.handlers import DiskSaver
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    DiskSaver, _ = optional_import(
        "ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "DiskSaver", as_type="base"
    )

__all__ = [
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "checkpoints_newest_first",
    "latest_checkpoint",
    "remove_partial_checkpoints",
]

_STEP_PATTERN = re.compile(r"(?:epoch|iteration)=(\d+)")
# a checkpoint being written is a hidden file named after it with this suffix: no checkpoint glob (`*.pt`) matches it
_PARTIAL_SUFFIX = ".partial"


def checkpoints_newest_first(checkpoint_dir: str | Path, prefix: str = "checkpoint") -> list[Path]:
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    candidates = []
    for path in folder.glob(f"{prefix}_*.pt"):
        match = _STEP_PATTERN.search(path.name)
        if match:
            candidates.append((int(match.group(1)), path.stat().st_mtime, path))
    return [path for *_, path in sorted(candidates, reverse=True)]


def latest_checkpoint(checkpoint_dir: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The checkpoint of `checkpoint_dir` with the highest epoch/iteration in its name (``<prefix>_epoch=N.pt``).

    Returns None when the folder is absent or holds no checkpoint. The name says nothing about whether the file is
    complete: `AtomicCheckpointSaver` writes nothing under a checkpoint name until the file is whole, but MONAI's
    `CheckpointSaver` writes in place, and files can be copied in by hand. `ResumeFromLatestCheckpoint` therefore
    falls back to older checkpoints when this one does not load.
    """
    candidates = checkpoints_newest_first(checkpoint_dir, prefix)
    return candidates[0] if candidates else None


def remove_partial_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Delete the temporary files that `AtomicDiskSaver` leaves in `checkpoint_dir` when a process dies mid-save.

    Returns:
        the deleted files.
    """
    folder = Path(checkpoint_dir)
    removed = sorted(folder.glob(f".*{_PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class AtomicDiskSaver(DiskSaver):
    """Ignite's `DiskSaver` that writes each checkpoint to a temporary file, syncs it to disk and renames it.

    A process killed or failing at any moment of a save leaves either the complete new file or no file under the
    checkpoint's name, and the previous checkpoints intact. The temporary file is hidden and ends in ``.partial``,
    so no ``*.pt`` pattern matches it; `remove_partial_checkpoints` deletes the ones a killed process left behind.
    The saved file is readable by group and others, like a file `torch.save` creates.

    Args:
        dirname: the folder to write to (created if absent).
        filename: a fixed file name for every save (as MONAI's `CheckpointSaver` uses for its final checkpoint);
            None for the name ignite's `Checkpoint` gives.
        save_on_rank: the rank that writes, in a distributed run.
        kwargs: passed to `torch.save`.
    """

    def __init__(self, dirname: str | Path, filename: str | None = None, save_on_rank: int = 0, **kwargs: Any) -> None:
        super().__init__(
            dirname, atomic=True, create_dir=True, require_empty=False, save_on_rank=save_on_rank, **kwargs
        )
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != self.save_on_rank:
            return
        path = self.dirname / (self.filename or filename)
        descriptor, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_PARTIAL_SUFFIX, dir=self.dirname)
        os.close(descriptor)
        try:
            with open(tmp_name, "wb") as f:
                torch.save(checkpoint, f, **self.kwargs)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp_name, os.stat(tmp_name).st_mode | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def remove(self, filename: str) -> None:
        super().remove(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's `CheckpointSaver` that never leaves a truncated file under a checkpoint name.

    MONAI's saver writes in place (ignite's atomic mode is turned off there), so a run killed while it saves leaves a
    truncated newest checkpoint. This one writes every checkpoint (interval, final, key metric) through an
    `AtomicDiskSaver`, and when attached deletes the temporary files a killed run left in `save_dir`.

    Args:
        save_dir: the folder to write to.
        save_dict: the objects to save, e.g. ``{"network": ..., "optimizer": ..., "trainer": ...}``.
        kwargs: the other arguments of `monai.handlers.CheckpointSaver` (``file_prefix``, ``save_interval``,
            ``n_saved``, ``save_final``, ``final_filename``, ...).
    """

    def __init__(self, save_dir: str, save_dict: dict, **kwargs: Any) -> None:
        super().__init__(save_dir, save_dict, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                fixed_name = getattr(checkpoint.save_handler, "filename", None)
                checkpoint.save_handler = AtomicDiskSaver(self.save_dir, filename=fixed_name)

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        if idist.get_rank() == 0:
            removed = remove_partial_checkpoints(self.save_dir)
            if removed:
                self.logger.info(f"deleted {len(removed)} partial checkpoint file(s) of an interrupted run.")
