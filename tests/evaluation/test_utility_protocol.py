"""The utility protocol's summary: the best real + synthetic condition per arm, its paired gain, and the targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monai_lesiongen.evaluation.downstream import compare_training_sets
from monai_lesiongen.evaluation.downstream_data import ImageSet
from monai_lesiongen.evaluation.utility_protocol import ProtocolArm, summarize_arm, write_protocol_report


def _summary(mean: float, lower: float | None = None, upper: float | None = None) -> dict:
    return {"mean": mean, "lower": lower, "upper": upper, "values": [mean]}


def _condition(name: str, ratio: float, balanced: float, worst: float, gap: float, diff: dict) -> dict:
    return {
        "name": name,
        "ratio": ratio,
        "num_real": 100,
        "num_synthetic": int(100 * ratio),
        "balanced_accuracy": _summary(balanced),
        "worst_group_accuracy": _summary(worst),
        "worst_group": "V-VI",
        "group_gap": _summary(gap),
        "per_group_accuracy": {"I-II": _summary(worst + gap), "V-VI": _summary(worst)},
        "difference_to_real": diff,
    }


def _diff(balanced: tuple[float, float], worst: tuple[float, float], gap: tuple[float, float]) -> dict:
    return {
        "balanced_accuracy": _summary(balanced[0], balanced[1], 2 * balanced[0] - balanced[1]),
        "worst_group_accuracy": _summary(worst[0], worst[1], 2 * worst[0] - worst[1]),
        "group_gap": _summary(gap[0], gap[1], 2 * gap[0] - gap[1]),
    }


ZERO = _diff((0, 0), (0, 0), (0, 0))


def _classification(*augmented: dict) -> dict:
    return {"conditions": [_condition("real", 0.0, 0.70, 0.50, 0.30, ZERO), *augmented]}


def test_under_representation_picks_the_best_worst_group_and_checks_both_targets() -> None:
    classification = _classification(
        _condition("real+synthetic x1", 1.0, 0.80, 0.58, 0.10, _diff((0.10, 0.02), (0.08, 0.01), (-0.2, -0.3))),
        _condition("real+synthetic x2", 2.0, 0.85, 0.54, 0.20, _diff((0.15, 0.05), (0.04, -0.01), (-0.1, -0.2))),
    )
    summary = summarize_arm(ProtocolArm("V-VI at 10%", "under_representation", 0.1, classification))
    assert summary["augmented"]["name"] == "real+synthetic x1"  # chosen by worst-group accuracy, not balanced
    assert summary["gap_ratio"] == pytest.approx(0.10 / 0.30)
    assert summary["targets"] == {
        "worst-group accuracy +5 points, interval above 0": True,
        "best-minus-worst gap halved": True,
    }


def test_scarcity_targets_need_the_gain_and_its_interval() -> None:
    short = _classification(_condition("real+synthetic x4", 4.0, 0.76, 0.5, 0.3, _diff((0.06, -0.01), (0, 0), (0, 0))))
    summary = summarize_arm(ProtocolArm("10% real", "scarcity", 0.1, short))
    assert summary["targets"] == {"balanced accuracy +5 points, interval above 0": False}  # the interval reaches 0
    assert summarize_arm(ProtocolArm("50% real", "scarcity", 0.5, short))["targets"] == {}  # no target above 10%
    with pytest.raises(ValueError, match="needs a 'real' and at least one 'real\\+synthetic'"):
        ProtocolArm("x", "scarcity", 0.1, {"conditions": [_condition("real", 0, 0.7, 0.5, 0.3, ZERO)]})
    with pytest.raises(ValueError, match="kind must be one of"):
        ProtocolArm("x", "thin", 0.1, short)


def _patterns(count: int, seed: int) -> ImageSet:
    """Three classes at 16 px: a faint square in the class's colour channel, at a random place, in strong noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    images = 0.6 * torch.rand(count, 3, 16, 16, generator=generator)
    for i, label in enumerate(labels.tolist()):
        row, column = torch.randint(0, 9, (2,), generator=generator).tolist()
        images[i, label, row : row + 8, column : column + 8] += 0.3
    return ImageSet(images.clamp(0, 1), labels, groups=["I-II" if i % 2 else "V-VI" for i in range(count)])


def test_report_from_real_comparisons(tmp_path: Path) -> None:
    """Three real images cannot teach the task that 96 informative synthetic ones can: the gain shows in the report."""
    real, synthetic, test = _patterns(3, 0), _patterns(96, 1), _patterns(60, 2)
    classification = compare_training_sets(
        real, synthetic, test, 3, ["r", "g", "b"], ratios=(0.0, 32.0), seeds=(0, 1, 2), synthetic_only=False,
        epochs=4, batch_size=16, lr=3e-3,
    )  # fmt: skip
    arms = [
        ProtocolArm("6% real", "scarcity", 0.06, classification),
        ProtocolArm("all", "scarcity", 1.0, classification),
    ]
    report = write_protocol_report(arms, tmp_path)
    arm = report["arms"][0]
    assert arm["augmented"]["num_synthetic"] == 96
    assert arm["difference"]["balanced_accuracy"]["mean"] == pytest.approx(
        arm["augmented"]["balanced_accuracy"]["mean"] - arm["real"]["balanced_accuracy"]["mean"]
    )
    assert arm["difference"]["balanced_accuracy"]["lower"] > 0.05 and arm["targets"] == {
        "balanced accuracy +5 points, interval above 0": True
    }
    assert json.loads((tmp_path / "utility_protocol.json").read_text())["arms"][0]["name"] == "6% real"
    markdown = (tmp_path / "utility_protocol.md").read_text()
    assert "| 6% real | 3 | 96 (real+synthetic x32) |" in markdown and "![Balanced accuracy" in markdown
    for name in ("accuracy_vs_real_fraction.png", "per_group_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 1000
