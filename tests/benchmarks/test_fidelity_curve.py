"""``benchmarks/fidelity_curve.py``: the stages of a resumed run become one curve against training minutes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def fidelity_curve(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("fidelity_curve")


def _result(seconds: float | None, overrides: list[str], recognised: dict[str, float], fid: float) -> dict[str, Any]:
    per_class = {name: {"images": 24, "recognised": value} for name, value in recognised.items()}
    balanced = sum(recognised.values()) / len(recognised)
    return {
        "run_dir": "/runs/a",
        "overrides": overrides,
        "train_seconds": seconds,
        "recognition": {"balanced": balanced, "per_class": per_class, "skin_group_match": 0.9},
        "domain_fid": fid,
        "tstr_ratio_to_real": 0.5,
    }


def test_stage_points_add_up_the_minutes_and_read_the_epochs(fidelity_curve: ModuleType) -> None:
    stages = [
        _result(600.0, ['inference_output_dir="/x"'], {"mel": 0.9, "df": 0.1}, 250.0),
        _result(300.0, ["num_epochs=40", 'inference_output_dir="/y"'], {"mel": 1.0, "df": 0.4}, 200.0),
    ]
    points = fidelity_curve.stage_points(stages, default_epochs=20)
    assert [p["epochs"] for p in points] == [20.0, 40.0]
    assert [p["minutes"] for p in points] == pytest.approx([10.0, 15.0])
    assert [p["worst_diagnosis"] for p in points] == pytest.approx([0.1, 0.4])
    assert [p["recognised"] for p in points] == pytest.approx([0.5, 0.7])
    with pytest.raises(ValueError, match="no train_seconds"):
        fidelity_curve.stage_points([_result(None, [], {"mel": 1.0}, 1.0)], default_epochs=20)


def test_the_script_writes_the_curve_with_the_validation_history(tmp_path: Path) -> None:
    files = []
    for index, (seconds, epochs) in enumerate([(600.0, None), (660.0, 40)]):
        overrides = [] if epochs is None else [f"num_epochs={epochs}"]
        path = tmp_path / f"stage{index}.json"
        path.write_text(json.dumps(_result(seconds, overrides, {"mel": 0.8, "nv": 0.2 * (index + 1)}, 300.0)))
        files.append(str(path))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    history = [{"epoch": 5.0 * k, "val_recognition": 0.1 * k, "val_skin_match": 0.2, "val_score": 0.3} for k in (1, 2)]
    torch.save({"validator": {"history": history}}, tmp_path / "run" / "checkpoints" / "checkpoint_final.pt")
    output = tmp_path / "curve"
    command = [sys.executable, str(BENCHMARKS / "fidelity_curve.py"), "--bundle", "lesiongen"]
    command += ["--run_dir", str(tmp_path / "run"), "--results", *files, "--output", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    written = json.loads(output.with_suffix(".json").read_text())
    assert [p["minutes"] for p in written["stages"]] == pytest.approx([10.0, 21.0])
    assert written["validation"] == history
    assert output.with_suffix(".png").stat().st_size > 1000
    assert "| 40 | 21.0 |" in completed.stdout
