"""``benchmarks/condition_fidelity.py``: the real reference set the size of the synthetic one."""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def condition_fidelity(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("condition_fidelity")


def test_same_count_subset_takes_the_synthetic_count_of_each_diagnosis(condition_fidelity: ModuleType) -> None:
    rows = [{"image": f"nv_{i}", "label": 5} for i in range(30)] + [{"image": f"df_{i}", "label": 3} for i in range(2)]
    labels = [5] * 4 + [3] * 4 + [0] * 4  # df asks for more than the real split has, akiec for what it lacks
    subset = condition_fidelity.same_count_subset(rows, labels, seed=0)
    assert Counter(int(row["label"]) for row in subset) == {5: 4, 3: 2}
    assert len({row["image"] for row in subset}) == len(subset)
    assert subset == condition_fidelity.same_count_subset(rows, labels, seed=0)
    draws = {
        tuple(row["image"] for row in condition_fidelity.same_count_subset(rows, labels, seed=s)) for s in range(5)
    }
    assert len(draws) > 1


def _result(**extra: object) -> dict[str, object]:
    per_class = {"akiec": {"recognised": 0.5}, "nv": {"recognised": 1.0}}
    return {
        "recognition": {"recognised": 0.75, "balanced": 0.75, "per_class": per_class, "skin_group_match": 0.9},
        "mean_ita": {"synthetic": {"1": 50.0}, "real": {"1": 48.0}, "synthetic_falls_monotonically": True},
        "domain_fid": 120.0,
        "domain_kid": {"mean": 0.5, "std": 0.1},
        "tstr_balanced_accuracy": 0.6,
        "tstr_ratio_to_real": 0.625,
        "judge": {"real_test_balanced_accuracy": 0.96},
        "train_seconds": 600.0,
        **extra,
    }


def test_table_shows_coverage_and_tstr_recall_when_measured(condition_fidelity: ModuleType) -> None:
    measured = _result(
        domain_precision_recall={"precision": 0.812, "recall": 0.604},
        tstr_per_class_recall={"akiec": 0.2, "nv": 0.95},
    )
    lines = condition_fidelity.table(measured)
    assert "| domain precision / recall (k=3) | 0.812 / 0.604 |" in lines
    assert "| TSTR recall per real diagnosis | akiec 0.20, nv 0.95 |" in lines
    # a result written before these figures existed still renders, without their rows
    older = condition_fidelity.table(_result())
    assert not any("precision" in line or "recall per real" in line for line in older)
    assert len(older) == len(lines) - 2
