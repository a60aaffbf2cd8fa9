"""LesionGen training killed mid-run and started again ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bundle_workflow import bundle_workflow, tiny_settings

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lesiongen"
# the tiny settings of test_lesiongen_bundle.py, over several epochs with a checkpoint after each
TINY = tiny_settings(num_epochs=6)


def _command(root: Path) -> list[str]:
    overrides = [arg for key, value in TINY.items() for arg in (f"--{key}", repr(value))]
    configs = BUNDLE / "configs"
    return [
        sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(configs / "train.yaml"),
        "--meta_file", str(configs / "metadata.json"), "--bundle_root", str(root), *overrides,
    ]  # fmt: skip


def _train(root: Path) -> str:
    """Run the training command to its end; returns its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(_command(root), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _kill_after_checkpoint(root: Path, checkpoint: str) -> None:
    """Start the training command and SIGKILL it as soon as `checkpoint` exists, before the run ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        _command(root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    target = root / "outputs" / "checkpoints" / checkpoint
    deadline = time.monotonic() + 300
    try:
        while not target.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, f"the run ended (exit code {process.returncode}) before it could be killed"
        assert target.exists(), f"no {checkpoint} within 300 s"
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


def _weights(root: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(root / "outputs" / "checkpoints" / name, weights_only=True)


def _assert_same_weights(a: Path, b: Path) -> None:
    for name in ("model.pt", "model_ema.pt"):
        first, second = _weights(a, name), _weights(b, name)
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), f"{name}: {key}"


@pytest.mark.slow  # three training processes: about a minute on two CPU cores; the next test is the fast variant
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    _kill_after_checkpoint(tmp_path / "killed", "checkpoint_epoch=2.pt")
    checkpoints = tmp_path / "killed" / "outputs" / "checkpoints"
    assert not (checkpoints / "model.pt").exists()  # killed before the end
    output = _train(tmp_path / "killed")
    assert "resumed from" in output and "checkpoint_epoch=" in output
    assert "training starts from scratch" not in output
    assert not list(checkpoints.glob(".*.partial"))
    _train(tmp_path / "uninterrupted")
    _assert_same_weights(tmp_path / "killed", tmp_path / "uninterrupted")
    final = torch.load(checkpoints / "checkpoint_final.pt", weights_only=True)["trainer"]
    assert final["iteration"] == TINY["num_epochs"] * final["epoch_length"]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """In-process and faster: the first run stops after an epoch, a new workflow resumes it."""
    short = {**TINY, "num_epochs": 3}
    for root, epochs in [(tmp_path / "uninterrupted", 3), (tmp_path / "resumed", 1), (tmp_path / "resumed", 3)]:
        workflow = bundle_workflow(BUNDLE, root, ["train.yaml"], "training", "train", {**short, "num_epochs": epochs})
        workflow.run()
        workflow.finalize()
    resume = workflow.parser.get_parsed_content("resume_handler")
    assert resume.loaded_from is not None and resume.loaded_from.name == "checkpoint_epoch=1.pt"
    _assert_same_weights(tmp_path / "resumed", tmp_path / "uninterrupted")


def test_handlers_in_another_order_train_and_resume_to_the_same_weights(tmp_path: Path) -> None:
    """The handlers are named items the lists are built from: reversing both lists changes nothing."""
    short = {**TINY, "num_epochs": 2}
    reordered = {
        "train_handlers": "$list(reversed([@ema_handler, @stats_handler, @tensorboard_handler, @sample_grid_handler,"
        " @validator, @lr_handler]))",
        "checkpoint_handlers": "$[@ema_model_saver, @model_saver, @checkpoint_saver, @resume_handler]",
    }
    runs = [
        (tmp_path / "default", 2, {}),
        (tmp_path / "reordered", 1, reordered),
        (tmp_path / "reordered", 2, reordered),
    ]
    for root, epochs, order in runs:
        workflow = bundle_workflow(
            BUNDLE, root, ["train.yaml"], "training", "train", {**short, **order, "num_epochs": epochs}
        )
        workflow.run()
        workflow.finalize()
    resume = workflow.parser.get_parsed_content("resume_handler")
    assert resume.loaded_from is not None and resume.loaded_from.name == "checkpoint_epoch=1.pt"
    _assert_same_weights(tmp_path / "reordered", tmp_path / "default")
