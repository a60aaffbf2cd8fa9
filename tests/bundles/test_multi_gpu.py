"""The bundles' multi_gpu_train.yaml and multi_gpu_inference.yaml on two CPU processes (torchrun, gloo), tiny.

Each rank of a training run records what it did through `RankProbe`, a test-only handler added on every rank by a
further config file: the data indices of its shard, the first noise values of each step, the handlers attached to
its trainer and a hash of its weights at the end.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from bundle_workflow import TINY_CLASSIFIER, bundle_workflow, tiny_settings
from ignite.engine import Engine, Events
from torch import nn

REPO = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2
TINY = tiny_settings(num_images=40, batch_size=4)
BUNDLES = {"lesiongen": TINY, "classndiff": {**TINY, **TINY_CLASSIFIER}, "skindualgen": TINY}
ROOT_ONLY = ("CheckpointSaver", "StatsHandler", "TensorBoardStatsHandler", "SampleGridSaver")
EVERY_RANK = ("EMAHandler", "ResumeFromLatestCheckpoint", "DistributedRandomStates", "DistributedStartCheck")


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """A hash of a state dict's names and values."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _handler_name(handler: Callable) -> str:
    handler = inspect.unwrap(handler)  # ignite wraps the handlers of filtered events
    owner = getattr(handler, "__self__", None)
    if owner is not None:
        return type(owner).__name__
    return getattr(handler, "__qualname__", type(handler).__name__)


class RankProbe:
    """Test-only handler: records what one rank of a distributed bundle run did, as JSON at `path`.

    Args:
        path: the JSON file.
        network: the trained network (DistributedDataParallel).
        ema_network: its EMA copy.
        sampler: the rank's DistributedSampler.
    """

    def __init__(self, path: str, network: nn.Module, ema_network: nn.Module, sampler: Any) -> None:
        self.path = Path(path)
        self.network = network
        self.ema_network = ema_network
        self.sampler = sampler
        self.record: dict[str, Any] = {"epochs": [], "noise": []}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def iteration_completed(self, engine: Engine) -> None:
        output = engine.state.output
        target = output[0]["label"] if isinstance(output, list) else output["label"][0]  # the noise, for epsilon
        self.record["noise"].append([round(float(v), 6) for v in target.flatten()[:8]])

    def epoch_completed(self, engine: Engine) -> None:
        self.record["epochs"].append(
            {"epoch": engine.state.epoch, "iteration": engine.state.iteration, "indices": list(iter(self.sampler))}
        )

    def completed(self, engine: Engine) -> None:
        self.record["dataset_size"] = len(self.sampler.dataset)
        self.record["network"] = state_hash(getattr(self.network, "module", self.network).state_dict())
        self.record["ema_network"] = state_hash(self.ema_network.state_dict())
        self.record["handlers"] = sorted(
            {_handler_name(h) for handlers in engine._event_handlers.values() for h, *_ in handlers}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record))


PROBE_CONFIG = {
    "probe": {
        "_target_": "test_multi_gpu.RankProbe",
        "path": "$os.path.join(@output_dir, 'probe', 'rank' + str(@rank) + '_epochs' + str(@num_epochs) + '.json')",
        "network": "@network",
        "ema_network": "@ema_network",
        "sampler": "@train#sampler",
    },
    "train#trainer#train_handlers": "$(@train_handlers if @rank == 0 else [@ema_handler]) + [@probe]",
}


def _torchrun(bundle: str, root: Path, configs: list[str], run_id: str, overrides: Mapping[str, Any]) -> str:
    """Run a bundle with two CPU processes; returns the output, and fails the test with it if the run fails."""
    args = {
        "config_file": [
            str(c if Path(c).is_absolute() else REPO / "bundles" / bundle / "configs" / c) for c in configs
        ],
        "meta_file": str(REPO / "bundles" / bundle / "configs" / "metadata.json"),
        "bundle_root": str(root),
        **overrides,
    }
    args_file = root / f"args_{run_id}_{len(list(root.glob('args_*.json')))}.json"
    args_file.write_text(json.dumps(args))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD_SIZE}",
        "-m", "monai.bundle", "run", run_id, "--args_file", str(args_file),
    ]  # fmt: skip
    tests = REPO / "tests"
    path = os.pathsep.join([str(tests / "bundles"), str(tests), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def _train(bundle: str, root: Path, **overrides: Any) -> list[dict[str, Any]]:
    """Train with two ranks and the probe; returns each rank's record."""
    probe = root / "probe.json"
    probe.write_text(json.dumps(PROBE_CONFIG))
    configs = ["train.yaml", "multi_gpu_train.yaml", str(probe)]
    settings = {**BUNDLES[bundle], **overrides}
    _torchrun(bundle, root, configs, "training", settings)
    folder = root / "outputs" / "probe"
    return [json.loads((folder / f"rank{r}_epochs{settings['num_epochs']}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, list[dict[str, Any]]]]:
    """Train a bundle once per module with two ranks: (its bundle root, the ranks' records)."""
    runs: dict[str, tuple[Path, list[dict[str, Any]]]] = {}

    def run(bundle: str) -> tuple[Path, list[dict[str, Any]]]:
        if bundle not in runs:
            root = tmp_path_factory.mktemp(f"{bundle}_two_ranks")
            runs[bundle] = (root, _train(bundle, root))
        return runs[bundle]

    return run


def _check_shards(records: list[dict[str, Any]], epoch: int) -> None:
    """The ranks' shards of `epoch` cover the data set without overlap (but the sampler's padding)."""
    size = records[0]["dataset_size"]
    shards = [next(e["indices"] for e in r["epochs"] if e["epoch"] == epoch) for r in records]
    assert len(shards[0]) == len(shards[1]) == -(-size // WORLD_SIZE)
    assert set(shards[0]) | set(shards[1]) == set(range(size))
    assert len(set(shards[0]) & set(shards[1])) == len(shards[0]) * WORLD_SIZE - size  # the padding, if any


@pytest.mark.parametrize(
    "bundle",
    [
        "lesiongen",
        pytest.param("classndiff", marks=pytest.mark.slow),
        pytest.param("skindualgen", marks=pytest.mark.slow),
    ],
)
def test_two_ranks_train_one_model_on_disjoint_shards_with_their_own_noise(two_rank_runs, bundle: str) -> None:
    root, records = two_rank_runs(bundle)
    checkpoints = root / "outputs" / "checkpoints"
    names = {p.name for p in checkpoints.iterdir()}
    assert {"checkpoint_epoch=1.pt", "checkpoint_final.pt", "model.pt", "model_ema.pt"} <= names, names
    assert len(list((root / "outputs" / "tensorboard").glob("events.out.tfevents.*"))) == 1  # one log, rank 0's
    assert [p.name for p in (root / "outputs" / "samples").iterdir()] == ["samples_epoch=1.png"]
    assert (root / "data" / "demo" / "HAM10000_metadata.csv").is_file()
    _check_shards(records, epoch=1)
    iterations = records[0]["epochs"][0]["iteration"]
    assert iterations == len(records[0]["epochs"][0]["indices"]) // BUNDLES[bundle]["batch_size"] >= 2
    assert records[1]["epochs"][0]["iteration"] == iterations
    # one model: the ranks end with the same weights, the ones rank 0 saved
    saved = {name: torch.load(checkpoints / f"{name}.pt", weights_only=True) for name in ("model", "model_ema")}
    for record in records:
        assert record["network"] == state_hash(saved["model"])
        assert record["ema_network"] == state_hash(saved["model_ema"])
    # each rank its own noise
    assert len(records[0]["noise"]) == len(records[1]["noise"]) == iterations
    assert all(a != b for a, b in zip(records[0]["noise"], records[1]["noise"], strict=True))
    # rank 0 alone saves, logs and samples; every rank averages, resumes and checks it started in step
    for name in EVERY_RANK:
        assert all(any(name in h for h in record["handlers"]) for record in records), name
    for name in ROOT_ONLY:
        assert any(name in h for h in records[0]["handlers"]), name
        assert not any(name in h for h in records[1]["handlers"]), name


@pytest.mark.slow  # tests/handlers/test_distributed.py checks the per-rank resume in a second
def test_a_second_two_rank_run_resumes_on_every_rank(two_rank_runs) -> None:
    root, first = two_rank_runs("lesiongen")
    records = _train("lesiongen", root, num_epochs=2)
    iterations = first[0]["epochs"][0]["iteration"]
    for record, before in zip(records, first, strict=True):
        assert [(e["epoch"], e["iteration"]) for e in record["epochs"]] == [(2, 2 * iterations)]
        # the noise goes on from where the first run left it, not from the start
        assert record["noise"][0] not in before["noise"]
    _check_shards(records, epoch=2)
    assert records[0]["epochs"][0]["indices"] != first[0]["epochs"][0]["indices"]  # reshuffled for epoch 2
    assert all(a != b for a, b in zip(records[0]["noise"], records[1]["noise"], strict=True))
    model = torch.load(root / "outputs" / "checkpoints" / "model.pt", weights_only=True)
    assert records[0]["network"] == records[1]["network"] == state_hash(model)
    assert (root / "outputs" / "checkpoints" / "checkpoint_epoch=2.pt").is_file()


def test_two_rank_inference_writes_the_files_of_one_process(two_rank_runs) -> None:
    root, _ = two_rank_runs("lesiongen")
    settings = {
        **TINY,
        "num_samples": 2,
        "num_inference_steps": 2,
        "plan_classes": ["mel", "nv"],
        "plan_fitzpatrick_types": [1, 6],
        "inference_sampler#batch_size": 3,
    }
    two = root / "outputs" / "synthetic_two_ranks"
    configs = ["train.yaml", "inference.yaml", "multi_gpu_inference.yaml"]
    _torchrun("lesiongen", root, configs, "inferring", {**settings, "inference_output_dir": str(two)})
    one = root / "outputs" / "synthetic_one_process"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank, so that the arithmetic is the same
    try:
        bundle = REPO / "bundles" / "lesiongen"
        overrides = {**settings, "inference_output_dir": str(one)}
        workflow = bundle_workflow(bundle, root, ["train.yaml", "inference.yaml"], "inferring", "infer", overrides)
        workflow.run()
        workflow.finalize()
    finally:
        torch.set_num_threads(threads)
    rows = list(csv.DictReader(open(two / "manifest.csv")))
    assert len(rows) == 8 and len({r["file"] for r in rows}) == 8
    for name in ["manifest.csv", *(r["file"] for r in rows)]:
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
