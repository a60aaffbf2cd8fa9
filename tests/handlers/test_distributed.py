"""Resuming on two gloo processes: each rank restores its own random states from rank 0's checkpoint, and a rank
that starts from other weights or another step is stopped."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine
from torch import nn

from monai_lesiongen.data import CaptionBuilder
from monai_lesiongen.handlers import DistributedRandomStates, DistributedStartCheck, RandomStates

WORLD_SIZE = 2


def _draw() -> tuple[list[float], list[float], float]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def _run(tmp_path: Path, check: Callable[[int, Path], None]) -> None:
    """Run `check(rank, tmp_path)` on two processes of a gloo group; a failed assertion in either fails the test."""
    # forked, the workers need not import torch and MONAI again (seconds each); they compute on one thread
    mp.start_processes(_worker, args=(str(tmp_path), check), nprocs=WORLD_SIZE, join=True, start_method="fork")


def _worker(rank: int, folder: str, check: Callable[[int, Path], None]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=WORLD_SIZE)
    try:
        check(rank, Path(folder))
    finally:
        dist.destroy_process_group()


def _share(value: Any) -> Any:
    """Rank 0's `value` on every rank."""
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def _each_rank_resumes_its_own_states(rank: int, folder: Path) -> None:
    torch.manual_seed(10 + rank)
    np.random.seed(10 + rank)
    random.seed(10 + rank)
    states = DistributedRandomStates()
    _draw()
    states.gather()  # at the end of an epoch, on every rank
    checkpoint = _share(states.state_dict())  # rank 0 saves it
    expected = _draw()
    assert _share(expected) != expected or rank == 0  # the ranks draw different numbers
    _draw()  # the run goes on, and is killed
    torch.manual_seed(0)  # a new process
    states.load_state_dict(checkpoint)
    assert _draw() == expected  # every rank continues with its own numbers


def _a_smaller_run_is_reseeded_per_rank(rank: int, folder: Path) -> None:
    torch.manual_seed(3)
    builder = CaptionBuilder(field_dropout=0.5, seed=0)
    checkpoint = RandomStates([builder]).state_dict()  # one process, no other ranks' states
    states = DistributedRandomStates([builder])
    states.load_state_dict(checkpoint)
    captions = builder.rng.random(3).tolist()
    first = _draw()
    states.load_state_dict(checkpoint)
    assert _draw() == first and builder.rng.random(3).tolist() == captions  # reproducible
    other_captions = [None] * WORLD_SIZE
    dist.all_gather_object(other_captions, captions)
    assert other_captions[0] != other_captions[1]  # the ranks drop different caption fields
    torch.set_rng_state(checkpoint["torch"])
    saved = torch.rand(3).tolist()
    others = [None] * WORLD_SIZE
    dist.all_gather_object(others, first)
    assert others[0] != others[1]  # the ranks differ
    assert (first[0] == saved) == (rank == 0)  # rank 0 keeps the saved states


def _the_start_check_stops_ranks_out_of_step(rank: int, folder: Path) -> None:
    torch.manual_seed(0)
    network = nn.Linear(4, 2)
    engine = Engine(lambda engine, batch: None)
    DistributedStartCheck({"network": network})(engine)  # the same weights and step: no error
    engine.state.iteration = 10 * rank
    with pytest.raises(RuntimeError, match="rank 1 starts at epoch 0, iteration 10"):
        DistributedStartCheck({"network": network})(engine)
    engine.state.iteration = 0
    with torch.no_grad():
        network.weight[0, 0] += rank
    with pytest.raises(RuntimeError, match="rank 1 has other 'network' weights.*ckpt_dir"):
        DistributedStartCheck({"network": network})(engine)


@pytest.mark.parametrize(
    "check",
    [_each_rank_resumes_its_own_states, _a_smaller_run_is_reseeded_per_rank, _the_start_check_stops_ranks_out_of_step],
)
def test_on_two_ranks(check: Callable[[int, Path], None], tmp_path: Path) -> None:
    _run(tmp_path, check)


def test_outside_a_distributed_run_they_are_plain() -> None:
    states = DistributedRandomStates()
    states.gather()
    saved = states.state_dict()
    assert int(saved["rank"]) == 0 and not any(k.startswith("rank0_") for k in saved)
    expected = _draw()
    _draw()
    states.load_state_dict(saved)
    assert _draw() == expected
    DistributedStartCheck({"network": nn.Linear(2, 2)})(Engine(lambda engine, batch: None))
