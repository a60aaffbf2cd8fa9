"""Data-parallel training (torchrun): each rank's own random states in rank 0's checkpoints, and a check that every
rank starts from the same weights and step."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import
from torch import nn

from monai_lesiongen.handlers.random_states import RandomStates

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["DistributedRandomStates", "DistributedStartCheck", "rank_and_world_size"]


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the world size of the initialised torch.distributed process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class DistributedRandomStates(RandomStates):
    """`RandomStates` for data-parallel training, where each rank draws its own noise and rank 0 alone saves.

    Seeded with ``seed + rank``, the ranks draw different noise, timesteps and condition dropout for their different
    images. Rank 0's checkpoints must then hold every rank's states, or all ranks would resume with rank 0's and draw
    the same noise from there on. Attached to the trainer on every rank (before the checkpoint savers, which then see
    this epoch's states), it gathers the ranks' states at the end of every epoch; `state_dict` gives this process's
    states plus the others' under ``rank<r>_<key>``, and each rank restores its own. A rank that finds none of its
    own (in a checkpoint of a run with fewer processes) restores the saved ones and reseeds them with its rank:
    reproducible, and different on every rank. Outside a distributed run it is a `RandomStates`.

    Args:
        randomizables: as `RandomStates`.
    """

    def __init__(self, randomizables: Sequence[Any] = ()) -> None:
        super().__init__(randomizables)
        self.peer_states: dict[int, dict[str, Any]] = {}

    def attach(self, engine: Engine) -> None:
        """Gather the ranks' states at the end of every epoch (a collective call: attach it on every rank)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.gather)

    def gather(self, engine: Engine | None = None) -> None:
        """Collect the other ranks' current states into `peer_states`; does nothing outside a distributed run.

        Every rank must call it at the same point, as any torch.distributed collective.
        """
        rank, world_size = rank_and_world_size()
        if world_size == 1:
            return
        states: list[Any] = [None] * world_size
        dist.all_gather_object(states, super().state_dict())
        self.peer_states = {r: state for r, state in enumerate(states) if r != rank}

    def state_dict(self) -> dict[str, Any]:
        """This process's states, its ``rank``, and each other rank's (as of the last `gather`) under ``rank<r>_``."""
        peers = {f"rank{r}_{key}": value for r, state in self.peer_states.items() for key, value in state.items()}
        return {**super().state_dict(), "rank": torch.tensor(rank_and_world_size()[0]), **peers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        rank = rank_and_world_size()[0]
        prefix = f"rank{rank}_"
        own = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        super().load_state_dict(own or state)
        if not own and int(state.get("rank", 0)) != rank:
            self.reseed(rank)

    def reseed(self, rank: int) -> None:
        """Reseed every generator from the current torch state and `rank` (the same on every rank before)."""
        base = int(torch.randint(0, 2**31 - 1, ()))
        words = np.random.SeedSequence([base, rank]).generate_state(3 + len(self.randomizables))
        torch.manual_seed(int(words[0]))  # the CPU and every CUDA device
        np.random.seed(int(words[1]))
        random.seed(int(words[2]))
        for item, word in zip(self.randomizables, words[3:], strict=True):
            # a MONAI transform reseeds R; the caption builder reseeds its own Generator (rng) as well
            if hasattr(item, "set_random_state"):
                item.set_random_state(seed=int(word))
            else:
                item.R.seed(int(word))


class DistributedStartCheck:
    """Ignite handler: when a distributed run starts (after resuming), check that every rank is at the same epoch
    and iteration with the same weights, and stop with an error naming the fix if not.

    DistributedDataParallel copies rank 0's weights to the others only when it wraps the network; a rank that then
    resumes from another checkpoint, or finds none (a checkpoint folder that is not shared), would silently train
    other weights. Attach it on every rank, after the resume handler. Outside a distributed run it does nothing.

    Args:
        networks: the networks to compare, by name (the trained network, its EMA copy, ...).
        rtol: the tolerance of the per-tensor sums compared, relative to the sum of the absolute values.
    """

    def __init__(self, networks: Mapping[str, nn.Module], rtol: float = 1e-6) -> None:
        if not networks:
            raise ValueError("networks is empty: give the networks every rank must share, e.g. {'network': ...}.")
        self.networks = dict(networks)
        self.rtol = rtol

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def fingerprint(self) -> dict[str, np.ndarray]:
        """The sum and the sum of absolute values of every parameter and buffer of each network, (N, 2)."""
        return {
            name: np.array(
                [
                    [float(t.detach().double().sum()), float(t.detach().double().abs().sum())]
                    for t in (*network.parameters(), *network.buffers())
                ]
            ).reshape(-1, 2)
            for name, network in self.networks.items()
        }

    def __call__(self, engine: Engine) -> None:
        """Compare this rank's step and weights with rank 0's.

        Raises:
            RuntimeError: naming the ranks, the networks that differ and what to change.
        """
        rank, world_size = rank_and_world_size()
        if world_size == 1:
            return
        states: list[Any] = [None] * world_size
        dist.all_gather_object(states, (engine.state.epoch, engine.state.iteration, self.fingerprint()))
        (epoch, iteration, reference) = states[0]
        problems = []
        for other, (other_epoch, other_iteration, sums) in enumerate(states[1:], start=1):
            if (other_epoch, other_iteration) != (epoch, iteration):
                problems.append(f"rank {other} starts at epoch {other_epoch}, iteration {other_iteration}")
            for name, values in sums.items():
                ref = reference[name]
                if values.shape != ref.shape or np.any(np.abs(values[:, 0] - ref[:, 0]) > self.rtol * ref[:, 1]):
                    problems.append(f"rank {other} has other '{name}' weights")
        if problems:
            raise RuntimeError(
                f"the ranks do not start from the same state (rank 0: epoch {epoch}, iteration {iteration}): "
                + "; ".join(problems)
                + ". Every rank must resume from the checkpoint rank 0 wrote: put the checkpoint folder (ckpt_dir) "
                "on a file system that every rank shares, or set resume to false."
            )
