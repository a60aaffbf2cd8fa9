"""LesionGen generation killed mid-run and started again: finished images kept, the rest as an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bundle_workflow import bundle_workflow, tiny_settings

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lesiongen"
TINY = tiny_settings()
# 7 diagnoses x 6 skin types x 2 = 84 images in 21 batches: long enough to be killed part-way
GENERATION = {"num_samples": 2, "num_inference_steps": 10, "inference_sampler#batch_size": 4}
NUM_IMAGES = 84


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lesiongen")
    workflow = bundle_workflow(BUNDLE, root, ["train.yaml"], "training", "train", TINY)
    workflow.run()
    workflow.finalize()
    return root


def _command(root: Path, output_dir: Path) -> list[str]:
    overrides = {**TINY, **GENERATION, "inference_output_dir": str(output_dir)}
    configs = [str(BUNDLE / "configs" / name) for name in ("train.yaml", "inference.yaml")]
    return [
        sys.executable, "-m", "monai.bundle", "run", "inferring", "--config_file", repr(configs),
        "--meta_file", str(BUNDLE / "configs" / "metadata.json"), "--bundle_root", str(root),
        *(arg for key, value in overrides.items() for arg in (f"--{key}", repr(value))),
    ]  # fmt: skip


def _generate(root: Path, output_dir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = _command(root, output_dir)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _kill_part_way(root: Path, output_dir: Path, after_images: int) -> None:
    """Start generation and SIGKILL it once `after_images` images exist, before all do."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        _command(root, output_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if output_dir.is_dir() and len(list(output_dir.glob("*.png"))) >= after_images:
                break
            time.sleep(0.01)
        assert process.poll() is None, f"generation ended (exit code {process.returncode}) before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _manifest_files(folder: Path) -> list[str]:
    with open(folder / "manifest.csv", newline="") as f:
        return sorted(row["file"] for row in csv.DictReader(f))


@pytest.mark.slow  # three generation processes: about a minute on two CPU cores; tests/inferers has a fast variant
def test_killed_generation_resumes_without_touching_finished_images(trained_bundle: Path) -> None:
    folder = trained_bundle / "outputs" / "interrupted"
    _kill_part_way(trained_bundle, folder, after_images=8)
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.png")}
    assert 8 <= len(done) < NUM_IMAGES
    if (folder / "manifest.csv").is_file():  # written after each batch: it lists no file that is not on disk
        assert set(_manifest_files(folder)) <= set(done)
    # what kills between writing a temporary file and renaming it leave: for an image still to draw, for one of a
    # larger plan (42 rows here), and for the manifest
    for name in [".synthetic_00041_001.png.tmp", ".synthetic_00050_000.png.tmp", ".manifest.csv.tmp"]:
        (folder / name).write_bytes(b"\x89PNG\r\n")

    _generate(trained_bundle, folder)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.png") if p.name in done}
    assert kept == done  # neither regenerated nor overwritten
    full = trained_bundle / "outputs" / "uninterrupted"
    _generate(trained_bundle, full)
    names = sorted(p.name for p in full.glob("*.png"))
    assert len(names) == NUM_IMAGES and sorted(p.name for p in folder.glob("*.png")) == names
    for name in names:
        assert (folder / name).read_bytes() == (full / name).read_bytes(), name
    assert _manifest_files(folder) == names
    assert (folder / "manifest.csv").read_bytes() == (full / "manifest.csv").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "manifest.csv"])  # no temporary file left
