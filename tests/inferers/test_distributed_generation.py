"""Generation shared by two gloo processes: each rank draws its share, nothing twice, and the files and the manifest
are byte for byte those of one process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from monai_lesiongen.inferers import (
    ConditionedDiffusionInferer,
    ConditionedSampler,
    PairedDatasetWriter,
    SyntheticDatasetWriter,
)

WORLD_SIZE = 2
PLAN = [{"label": i % 2, "label_name": ["bcc", "mel"][i % 2], "fitzpatrick": 1 + i} for i in range(5)]


class RecordingSampler(ConditionedSampler):
    """A sampler that remembers the seeds it drew, batch by batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[list[int]] = []

    def __call__(self, network: nn.Module, seeds: Sequence[int], **kwargs: Any) -> torch.Tensor:
        self.batches.append([int(s) for s in seeds])
        return super().__call__(network, seeds, **kwargs)


def _writer(kind: str, output_dir: Path, **kwargs: Any) -> SyntheticDatasetWriter:
    """A writer of 5 rows x 2 images in batches of 3 (4 batches): DDIM for single images, DDPM (stochastic, its
    noise seeded per batch) for image + mask pairs."""
    paired = kind == "paired"
    scheduler = DDPMScheduler(50) if paired else DDIMScheduler(50)
    sampler = RecordingSampler(
        ConditionedDiffusionInferer(scheduler), scheduler, (4 if paired else 3, 8, 8), num_inference_steps=3,
        guidance_scale=2.0, null_class_label=2, batch_size=3, progress=False,
    )  # fmt: skip
    cls = PairedDatasetWriter if paired else SyntheticDatasetWriter
    return cls(sampler, PLAN, output_dir, num_per_row=2, seed=7, caption_key=None, label_key="label", **kwargs)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupt(source: Path, target: Path) -> None:
    """A copy of a finished run that lost three images, as an interrupted run would have."""
    shutil.copytree(source, target)
    for name in ("synthetic_00000_001.png", "synthetic_00002_000.png", "synthetic_00004_001.png"):
        (target / name).unlink()


def _worker(rank: int, init_file: str, networks: Mapping[str, nn.Module], root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        drawn = {}
        for kind, network in networks.items():
            writer = _writer(kind, Path(root) / kind)
            manifest = writer.run(network)
            assert manifest.is_file()  # on every rank, once run returns
            drawn[kind] = writer.sampler.batches  # type: ignore[attr-defined]
            if kind == "single":  # an interrupted run, continued by two ranks
                if rank == 0:
                    _interrupt(Path(root) / kind, Path(root) / "resumed")
                dist.barrier()
                resumed = _writer(kind, Path(root) / "resumed")
                resumed.run(network)
                drawn["resumed"] = resumed.sampler.batches  # type: ignore[attr-defined]
        (Path(root) / f"drawn_rank{rank}.json").write_text(json.dumps(drawn))
    finally:
        dist.destroy_process_group()


def test_two_ranks_write_the_files_and_manifest_of_one_process(tiny_denoiser, tmp_path: Path) -> None:
    networks = {"single": tiny_denoiser(num_classes=2), "paired": tiny_denoiser(num_classes=2, mask_channels=1)}
    shared = tmp_path / "two_ranks"
    # forked, the workers need not import torch and MONAI again (seconds each); they compute on one thread
    mp.start_processes(
        _worker, args=(str(tmp_path / "init"), networks, str(shared)), nprocs=WORLD_SIZE, join=True, start_method="fork"
    )
    drawn = [json.loads((shared / f"drawn_rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks, so that the arithmetic is the same
    try:
        for kind, network in networks.items():
            one = _writer(kind, tmp_path / "one" / kind)
            one.run(network)
            assert _files(shared / kind) == _files(tmp_path / "one" / kind), kind
            batches = one.sampler.batches  # type: ignore[attr-defined]
            assert len(batches) == 4 and sum(len(b) for b in batches) == 10
            # the ranks drew the same batches as the one process, alternately, and no image twice
            assert drawn[0][kind] == batches[0::2] and drawn[1][kind] == batches[1::2], kind
        rows = (tmp_path / "one" / "paired" / "manifest.csv").read_text().splitlines()
        assert len(rows) == 11 and rows[0].startswith("file,mask,seed")
        _interrupt(tmp_path / "one" / "single", tmp_path / "one" / "resumed")
        _writer("single", tmp_path / "one" / "resumed").run(networks["single"])
        assert _files(shared / "resumed") == _files(tmp_path / "one" / "resumed")
        # the three missing images are one batch, rank 0's; rank 1 had nothing to do
        assert drawn[0]["resumed"] == [[8, 11, 16]] and drawn[1]["resumed"] == []
    finally:
        torch.set_num_threads(threads)


def test_shards_are_whole_batches_dealt_in_turn(tiny_denoiser, tmp_path: Path) -> None:
    writer = _writer("single", tmp_path)
    jobs = writer.jobs()
    shards = [writer.shard(jobs, rank, 3) for rank in range(3)]
    assert [[e["seed"] for e in shard] for shard in shards] == [
        [7, 8, 9, 16],
        [10, 11, 12],
        [13, 14, 15],
    ]
    assert writer.process_group() == (0, 1)


def test_several_ranks_need_a_process_group(tiny_denoiser, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="init_process_group"):
        _writer("single", tmp_path, rank=1, world_size=2).run(tiny_denoiser(num_classes=2))
    with pytest.raises(ValueError, match="rank must be in"):
        _writer("single", tmp_path, rank=2, world_size=2)
