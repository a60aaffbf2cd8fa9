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
