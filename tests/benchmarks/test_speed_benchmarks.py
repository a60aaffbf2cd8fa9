"""The speed benchmarks in ``benchmarks/``: the diffusers counterpart has the MONAI denoiser's size, and each script
runs end to end at tiny settings and writes its JSON."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# tiny settings: one thread, a 16 px image, one or two images, one timed repeat
TINY_RUNS = {
    "train_throughput.py": ["--sizes", "16", "--batch", "1", "--warmup", "0", "--variants", "monai", "diffusers",
                            "--matmul_size", "64"],
    "sampling_speed.py": ["--sizes", "16", "--batch", "1", "--ddpm_steps", "2", "--ddim_steps", "2",
                          "--pndm_steps", "4", "--text_repeats", "1", "--warmup", "0"],
    "fid_features.py": ["--images", "1", "--batch", "1", "--warmup", "0"],
    "cfg_batching.py": ["--sizes", "16", "--batch", "1", "--context_length", "4", "--warmup", "0"],
    "data_pipeline.py": ["--sizes", "16", "--images", "4", "--image_dim", "8", "--latent"],
}  # fmt: skip


@pytest.fixture
def train_throughput(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("train_throughput")


def test_diffusers_counterpart_has_the_denoisers_size(train_throughput: ModuleType) -> None:
    from monai_lesiongen.networks import ConditionedDiffusionUNet

    arguments = train_throughput.DEFAULT_DENOISER
    monai_net = ConditionedDiffusionUNet(**arguments)
    diffusers_net = train_throughput.build_diffusers_unet(arguments)
    count = train_throughput.count_parameters
    assert count(monai_net) == count(diffusers_net)
    assert diffusers_net.config.attention_head_dim == [1, 2, 2]  # heads = channels // num_head_channels


def test_diffusers_counterpart_refuses_a_mask_channel(train_throughput: ModuleType) -> None:
    with pytest.raises(ValueError, match="no mask"):
        train_throughput.diffusers_unet_config({**train_throughput.DEFAULT_DENOISER, "mask_channels": 1})


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_script_runs_and_writes_json(script: str, tmp_path: Path) -> None:
    output = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--threads", "1", "--repeats", "1", "--output", str(output),
         *TINY_RUNS[script]],
        capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "|---|" in result.stdout
    figures = json.loads(output.read_text())
    assert figures["environment"]["torch_threads"] == 1
