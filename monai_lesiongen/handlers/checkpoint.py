"""Resuming a training run: load the latest checkpoint of a folder, random states included."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import CheckpointLoader
from monai.utils import optional_import

Events, _ = optional_import("ignite.engine", name="Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", name="Engine")

__all__ = ["RandomStates", "ResumeFromLatestCheckpoint", "latest_checkpoint"]

_STEP_PATTERN = re.compile(r"(?:epoch|iteration)=(\d+)")


def latest_checkpoint(checkpoint_dir: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The checkpoint of `checkpoint_dir` with the highest epoch/iteration in its name (``<prefix>_epoch=N.pt``).

    Returns None when the folder is absent or holds no checkpoint. Partial files (ignite writes to a temporary file
    and renames it) never match.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    candidates = []
    for path in folder.glob(f"{prefix}_*.pt"):
        match = _STEP_PATTERN.search(path.name)
        if match:
            candidates.append((int(match.group(1)), path.stat().st_mtime, path))
    return max(candidates)[2] if candidates else None


def _numpy_state_to_tensors(state: tuple[Any, ...]) -> dict[str, torch.Tensor]:
    return {
        "keys": torch.from_numpy(np.asarray(state[1], dtype=np.int64)),
        "meta": torch.tensor([state[2], state[3]], dtype=torch.float64),
        "gauss": torch.tensor(float(state[4]), dtype=torch.float64),
    }


def _numpy_state_from_tensors(state: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    return (
        "MT19937",
        state["keys"].numpy().astype(np.uint32),
        int(state["meta"][0]),
        int(state["meta"][1]),
        float(state["gauss"]),
    )


class RandomStates:
    """The torch, NumPy and Python random states, as a stateful object a checkpoint can save and restore.

    With it in the checkpoint, a resumed run draws the same noise, timesteps, condition dropout and data order as
    an uninterrupted run would have. MONAI's random transforms keep their own generators (``R``): pass them as
    `randomizables` (e.g. the caption builder) to restore them too. States are stored as tensors, so the checkpoint
    loads with ``torch.load(weights_only=True)``.

    Args:
        randomizables: objects with a NumPy ``RandomState`` attribute ``R`` whose state is saved as well; a MONAI
            `Compose` stands for itself and every transform in it.
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
        numpy_state: tuple[Any, ...] = tuple(np.random.get_state())
        transforms = {
            f"transform_{i}_{k}": v
            for i, item in enumerate(self.randomizables)
            for k, v in _numpy_state_to_tensors(tuple(item.R.get_state())).items()
        }
        return {
            **transforms,
            "torch": torch.get_rng_state(),
            "numpy_keys": torch.from_numpy(np.asarray(numpy_state[1], dtype=np.int64)),
            "numpy_meta": torch.tensor([numpy_state[2], numpy_state[3]], dtype=torch.float64),
            "numpy_gauss": torch.tensor(float(numpy_state[4]), dtype=torch.float64),
            "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
            "python_gauss": torch.tensor(
                float("nan") if random.getstate()[2] is None else random.getstate()[2], dtype=torch.float64
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(
            (
                "MT19937",
                state["numpy_keys"].numpy().astype(np.uint32),
                int(state["numpy_meta"][0]),
                int(state["numpy_meta"][1]),
                float(state["numpy_gauss"]),
            )
        )
        for i, item in enumerate(self.randomizables):
            item.R.set_state(
                _numpy_state_from_tensors({k: state[f"transform_{i}_{k}"] for k in ("keys", "meta", "gauss")})
            )
        gauss = float(state["python_gauss"])
        random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None if np.isnan(gauss) else gauss))


class ResumeFromLatestCheckpoint:
    """Ignite handler: when the run starts, load the latest checkpoint of `checkpoint_dir`, if there is one.

    A killed run started again with the same command continues where its last complete checkpoint left it: weights,
    optimizer, EMA weights, the trainer's epoch and iteration, and (with a `RandomStates` in `load_dict`) the random
    states. With no checkpoint, or ``enabled=False``, training starts from scratch.

    Args:
        checkpoint_dir: the folder `CheckpointSaver` writes to.
        load_dict: the objects to restore, as saved (``{"network": ..., "optimizer": ..., "trainer": ...}``).
        prefix: the checkpoint file prefix.
        enabled: whether to resume at all.
        map_location: passed to `torch.load`.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        load_dict: dict[str, Any],
        prefix: str = "checkpoint",
        enabled: bool = True,
        map_location: Any = None,
    ) -> None:
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
        if not self.enabled:
            return
        path = latest_checkpoint(self.checkpoint_dir, self.prefix)
        if path is None:
            self.logger.info(f"no checkpoint in {self.checkpoint_dir}: training starts from scratch.")
            return
        CheckpointLoader(str(path), self.load_dict, map_location=self.map_location)(engine)
        self.loaded_from = path
        self.logger.info(f"resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}.")
