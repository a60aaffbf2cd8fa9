"""The random states of a run (torch, CUDA, numpy, python, MONAI transforms) as checkpoint state."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["RandomStates"]


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
