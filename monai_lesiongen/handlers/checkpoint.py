"""Interrupted training: atomic checkpoints, and resuming from the latest complete one, random states included."""

from __future__ import annotations

import logging
import os
import random
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import CheckpointSaver
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Checkpoint, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Checkpoint")
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.handlers import DiskSaver, EMAHandler
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    DiskSaver, _ = optional_import(
        "ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "DiskSaver", as_type="base"
    )
    EMAHandler, _ = optional_import(
        "ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EMAHandler", as_type="base"
    )

__all__ = [
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "RandomStates",
    "ResumableEMAHandler",
    "ResumeFromLatestCheckpoint",
    "latest_checkpoint",
    "remove_partial_checkpoints",
]

_STEP_PATTERN = re.compile(r"(?:epoch|iteration)=(\d+)")
# a checkpoint being written is a hidden file named after it with this suffix: no checkpoint glob (`*.pt`) matches it
_PARTIAL_SUFFIX = ".partial"


def _checkpoints_newest_first(checkpoint_dir: str | Path, prefix: str = "checkpoint") -> list[Path]:
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
    candidates = _checkpoints_newest_first(checkpoint_dir, prefix)
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


def _numpy_state_to_tensors(state: tuple[Any, ...]) -> dict[str, torch.Tensor]:
    return {
        "keys": torch.from_numpy(np.asarray(state[1], dtype=np.int64)),
        "meta": torch.tensor([state[2], state[3]], dtype=torch.float64),
        "gauss": torch.tensor(float(state[4]), dtype=torch.float64),
    }


def _numpy_state_from_tensors(state: Mapping[str, torch.Tensor]) -> tuple[Any, ...]:
    meta = state["meta"].cpu()  # a checkpoint loaded with map_location="cuda" holds CUDA tensors
    return ("MT19937", state["keys"].cpu().numpy().astype(np.uint32), int(meta[0]), int(meta[1]), float(state["gauss"]))


class RandomStates:
    """The torch (CPU and CUDA), NumPy and Python random states, as a stateful object a checkpoint can save and restore.

    With it in the checkpoint, a resumed run draws the same noise, timesteps, condition dropout, captions and data
    order as an uninterrupted run would have. MONAI's random transforms keep their own generators (``R``), and the
    caption builder a NumPy ``Generator`` (``rng``): pass them as `randomizables` to restore them too. States are
    stored as tensors and plain numbers, so the checkpoint loads with ``torch.load(weights_only=True)``. The CUDA state
    is that of the current device (one device per process), saved once CUDA is in use and restored when CUDA is
    available.

    Args:
        randomizables: MONAI `Randomizable` objects, whose ``R`` (a NumPy ``RandomState``) and, if they have one,
            ``rng`` (a NumPy ``Generator``) are saved as well; a MONAI `Compose` stands for itself and every transform
            in it, a transform with a ``builder`` (`BuildCaptiond`) for itself and its builder.
    """

    def __init__(self, randomizables: Sequence[Any] = ()) -> None:
        self.randomizables: list[Any] = []
        pending = list(randomizables)
        while pending:
            item = pending.pop(0)
            if hasattr(item, "R") and item not in self.randomizables:
                self.randomizables.append(item)
            pending.extend(getattr(item, "transforms", ()))
            if hasattr(item, "builder"):
                pending.append(item.builder)

    def state_dict(self) -> dict[str, Any]:
        numpy_state = _numpy_state_to_tensors(tuple(np.random.get_state()))
        transforms = {
            f"transform_{i}_{k}": v
            for i, item in enumerate(self.randomizables)
            for k, v in _numpy_state_to_tensors(tuple(item.R.get_state())).items()
        }
        generators = {
            f"generator_{i}": item.rng.bit_generator.state
            for i, item in enumerate(self.randomizables)
            if isinstance(getattr(item, "rng", None), np.random.Generator)
        }
        python_state = random.getstate()
        state = {
            **transforms,
            **generators,
            "torch": torch.get_rng_state(),
            **{f"numpy_{k}": v for k, v in numpy_state.items()},
            "python": torch.tensor(python_state[1], dtype=torch.int64),
            "python_gauss": torch.tensor(
                float("nan") if python_state[2] is None else python_state[2], dtype=torch.float64
            ),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # no CUDA context created just for this
            state["cuda"] = torch.cuda.get_rng_state().cpu()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"].cpu())
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"].cpu())
        np.random.set_state(_numpy_state_from_tensors({k: state[f"numpy_{k}"] for k in ("keys", "meta", "gauss")}))
        for i, item in enumerate(self.randomizables):
            item.R.set_state(
                _numpy_state_from_tensors({k: state[f"transform_{i}_{k}"] for k in ("keys", "meta", "gauss")})
            )
            if f"generator_{i}" in state:
                item.rng.bit_generator.state = state[f"generator_{i}"]
        gauss = float(state["python_gauss"])
        python_state = tuple(int(v) for v in state["python"].cpu().tolist())
        random.setstate((3, python_state, None if np.isnan(gauss) else gauss))


class ResumableEMAHandler(EMAHandler):
    """Ignite's `EMAHandler` whose momentum warm-up survives a resume.

    Ignite counts the warm-up iterations in a scheduler of its own that no checkpoint holds, so a resumed run would
    warm up again from `momentum_warmup` and wash out the averaged weights. Here the momentum follows the trainer's
    iteration, which the checkpoint restores; an uninterrupted run gets the same momenta as with ignite's handler.
    Put the EMA network (``ema_model``) into the checkpoint as well.

    Args:
        model: the network to average.
        momentum: the weight of the network in the average, once warmed up.
        momentum_warmup: the momentum at the first iteration; None for no warm-up.
        warmup_iters: the iterations over which the momentum goes linearly from `momentum_warmup` to `momentum`.
        handle_buffers: ``"copy"``, ``"update"`` or ``"ema_train"``, as in ignite.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        momentum: float = 0.0002,
        momentum_warmup: float | None = None,
        warmup_iters: int | None = None,
        handle_buffers: str = "copy",
    ) -> None:
        super().__init__(model, momentum, handle_buffers=handle_buffers)
        if (momentum_warmup is None) != (warmup_iters is None):
            raise ValueError("give momentum_warmup and warmup_iters together, or neither for no warm-up.")
        self.momentum_warmup = momentum_warmup
        self.warmup_iters = warmup_iters

    def momentum_at(self, iteration: int) -> float:
        """The momentum of the update after trainer iteration `iteration` (counted from 1)."""
        if self.momentum_warmup is None or self.warmup_iters is None:
            return self.momentum
        fraction = (iteration - 1) / max(1, self.warmup_iters - 1)
        value = self.momentum_warmup + (self.momentum - self.momentum_warmup) * fraction
        return min(self.momentum, value) if self.momentum >= self.momentum_warmup else max(self.momentum, value)

    def attach(
        self, engine: Engine, name: str = "ema_momentum", warn_if_exists: bool = True, event: Any = None
    ) -> None:
        """Update the EMA network after every `event` (each iteration by default), the momentum first.

        Args:
            engine: the trainer.
            name: the ``engine.state`` attribute holding the current momentum.
            warn_if_exists: warn when ``engine.state`` already has `name`.
            event: the update event; None for ``Events.ITERATION_COMPLETED``.
        """
        event = Events.ITERATION_COMPLETED if event is None else event
        engine.add_event_handler(event, self._set_momentum, name)  # before the update that the parent attaches
        super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event)

    def _set_momentum(self, engine: Engine, name: str) -> None:
        setattr(engine.state, name, self.momentum_at(engine.state.iteration))


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
        candidates = _checkpoints_newest_first(self.checkpoint_dir, self.prefix)
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
