"""The utility protocol's summary: does synthetic data help a classifier where the real data is thin or scarce?

Each arm of the protocol is one downstream comparison (:func:`compare_training_sets`: the same classifier trained on
the arm's real training images alone and with synthetic images added, >= 3 seeds, tested on the untouched real test
split) for one way of cutting the real training split:

- *under-representation*: the lesions of the darker skin types thinned to a fraction (`thin_skin_types`), the
  generator trained on the thinned split, a synthetic top-up filling the cells;
- *scarcity*: a fraction of every diagnosis's lesions (`scarce_subset`), the generator trained on that fraction.

The summary picks, per arm, the real + synthetic condition that does best on the arm's figure (worst-group accuracy
for under-representation, balanced accuracy for scarcity), reports its paired difference to real alone with the
interval over seeds, and checks the targets of issue 17: under-representation raises worst-group accuracy by >= 5
points with the interval above 0 and halves the best-minus-worst gap; scarcity at <= 10% real raises balanced
accuracy by >= 5 points with the interval above 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from monai_lesiongen.evaluation.report import format_interval as _ci

__all__ = ["PROTOCOL_ARM_KINDS", "ProtocolArm", "summarize_arm", "write_protocol_report"]

PROTOCOL_ARM_KINDS: tuple[str, ...] = ("under_representation", "scarcity")
"""The kinds of protocol arm."""

MIN_GAIN = 0.05
"""The gain (in accuracy, 0-1) the targets ask of real + synthetic over real alone."""

SCARCE_FRACTION = 0.1
"""Scarcity arms at or below this real fraction carry the scarcity target."""


@dataclass
class ProtocolArm:
    """One arm of the protocol.

    Attributes:
        name: the arm's name in the report, e.g. ``"V-VI kept at 10%"``.
        kind: one of `PROTOCOL_ARM_KINDS`.
        real_fraction: the share of the training split's lesions its real set keeps (scarcity), or of the thinned
            group's (under-representation).
        classification: its :func:`compare_training_sets` result (the ``classification`` section of an evaluation
            report).
    """

    name: str
    kind: str
    real_fraction: float
    classification: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in PROTOCOL_ARM_KINDS:
            raise ValueError(f"arm {self.name!r}: kind must be one of {list(PROTOCOL_ARM_KINDS)}, got {self.kind!r}.")
        names = [c["name"] for c in self.classification.get("conditions", [])]
        if "real" not in names or not any(n.startswith("real+synthetic") for n in names):
            raise ValueError(
                f"arm {self.name!r} needs a 'real' and at least one 'real+synthetic' condition, got {names}: "
                "evaluate it with eval_ratios holding 0 and a ratio > 0."
            )


def _condition(classification: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return next(c for c in classification["conditions"] if c["name"] == name)


def summarize_arm(arm: ProtocolArm) -> dict[str, Any]:
    """The arm's real condition, its best real + synthetic one, their paired differences and the targets met.

    Returns:
        ``name``, ``kind``, ``real_fraction``, ``figure`` (the one the best condition is chosen by), ``real`` and
        ``augmented`` (``name``, ``num_real``, ``num_synthetic``, ``balanced_accuracy``, ``worst_group_accuracy``,
        ``worst_group``, ``group_gap``, ``per_group_accuracy``: mean summaries), ``difference`` (the augmented
        condition's ``difference_to_real``), ``gap_ratio`` (augmented gap / real gap; None for a real gap of 0) and
        ``targets`` (each target's name -> met, or None where the arm carries none).
    """
    figure = "worst_group_accuracy" if arm.kind == "under_representation" else "balanced_accuracy"
    real = _condition(arm.classification, "real")
    augmented_conditions = [c for c in arm.classification["conditions"] if c["name"].startswith("real+synthetic")]
    best = max(augmented_conditions, key=lambda c: (c[figure]["mean"], -float(c["ratio"] or 0)))

    def view(condition: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("name", "num_real", "num_synthetic", "balanced_accuracy", "worst_group_accuracy", "worst_group")
        return {
            **{k: condition[k] for k in keys},
            "group_gap": condition.get("group_gap"),
            "per_group_accuracy": condition["per_group_accuracy"],
        }

    difference = best["difference_to_real"]
    real_gap = (real.get("group_gap") or {}).get("mean")
    best_gap = (best.get("group_gap") or {}).get("mean")
    gap_ratio = best_gap / real_gap if real_gap else None

    def gain_met(key: str) -> bool:
        summary = difference[key]
        return bool(summary["mean"] >= MIN_GAIN and summary["lower"] is not None and summary["lower"] > 0)

    targets: dict[str, bool | None] = {}
    if arm.kind == "under_representation":
        targets["worst-group accuracy +5 points, interval above 0"] = gain_met("worst_group_accuracy")
        targets["best-minus-worst gap halved"] = None if gap_ratio is None else bool(gap_ratio <= 0.5)
    elif arm.real_fraction <= SCARCE_FRACTION:
        targets["balanced accuracy +5 points, interval above 0"] = gain_met("balanced_accuracy")
    return {
        "name": arm.name,
        "kind": arm.kind,
        "real_fraction": arm.real_fraction,
        "figure": figure,
        "real": view(real),
        "augmented": view(best),
        "difference": difference,
        "gap_ratio": gap_ratio,
        "targets": targets,
    }


def _markdown(summaries: Sequence[Mapping[str, Any]], figures: Mapping[str, str], title: str) -> str:
    lines = [f"# {title}", ""]
    lines += [
        "Each arm: the same downstream classifier trained on the arm's real images alone and with the synthetic "
        "images added (the best real + synthetic condition by the arm's figure), seeds paired, 95% Student-t "
        "intervals over seeds; tested on the untouched real test split.",
        "",
        "| arm | real images | + synthetic | balanced accuracy, real -> + synthetic | difference | worst-group "
        "accuracy, real -> + synthetic | difference | best-minus-worst gap, real -> + synthetic |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        real, aug, diff = s["real"], s["augmented"], s["difference"]
        lines.append(
            f"| {s['name']} | {real['num_real']} | {aug['num_synthetic']} ({aug['name']}) | "
            f"{_ci(real['balanced_accuracy'])} -> {_ci(aug['balanced_accuracy'])} | "
            f"{_ci(diff['balanced_accuracy'], True)} | {_ci(real['worst_group_accuracy'])} ({real['worst_group']}) "
            f"-> {_ci(aug['worst_group_accuracy'])} ({aug['worst_group']}) | {_ci(diff['worst_group_accuracy'], True)} "
            f"| {_ci(real['group_gap'])} -> {_ci(aug['group_gap'])} |"
        )
    lines += ["", "## Targets", "", "| arm | target | met |", "|---|---|---|"]
    for s in summaries:
        for target, met in s["targets"].items():
            lines.append(f"| {s['name']} | {target} | {'-' if met is None else 'yes' if met else 'no'} |")
    lines.append("")
    for key, caption in (
        ("accuracy_vs_real_fraction", "Balanced accuracy against the real fraction"),
        ("per_group_accuracy", "Accuracy per skin-type group, per arm"),
    ):
        if key in figures:
            lines += [f"![{caption}]({figures[key]})", ""]
    return "\n".join(lines)


def _fraction_plot(summaries: Sequence[Mapping[str, Any]], path: Path) -> bool:
    scarcity = sorted((s for s in summaries if s["kind"] == "scarcity"), key=lambda s: s["real_fraction"])
    if not scarcity:
        return False
    figure = Figure(figsize=(5.5, 3.8))
    axes = figure.subplots()
    x = [100 * s["real_fraction"] for s in scarcity]
    for key, label, marker in (("real", "real alone", "o"), ("augmented", "real + synthetic", "s")):
        summaries_ = [s[key]["balanced_accuracy"] for s in scarcity]
        means = np.array([m["mean"] for m in summaries_])
        lower = np.array([m["lower"] if m["lower"] is not None else m["mean"] for m in summaries_])
        upper = np.array([m["upper"] if m["upper"] is not None else m["mean"] for m in summaries_])
        axes.errorbar(x, means, yerr=[means - lower, upper - means], marker=marker, capsize=3, label=label)
    axes.set_xscale("log")
    axes.minorticks_off()  # the log axis's minor labels (2 x 10^1, ...) would crowd the fractions' own
    axes.set_xticks(x, [f"{v:g}%" for v in x])
    axes.set_xlabel("real training lesions kept")
    axes.set_ylabel("balanced accuracy (real test)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def _group_plot(summaries: Sequence[Mapping[str, Any]], path: Path) -> None:
    groups = list(summaries[0]["real"]["per_group_accuracy"])
    figure = Figure(figsize=(max(5.0, 2.4 * len(summaries)), 4.6))
    axes = figure.subplots()
    width = 0.8 / (2 * len(groups))
    for a, s in enumerate(summaries):
        for g, group in enumerate(groups):
            for k, key in enumerate(("real", "augmented")):
                value = s[key]["per_group_accuracy"].get(group, {}).get("mean")
                offset = a + (2 * g + k - len(groups)) * width + width / 2
                label = f"{group}, {'real' if key == 'real' else '+ synthetic'}" if a == 0 else None
                axes.bar(offset, value or 0.0, width, color=f"C{g}", alpha=0.45 if key == "real" else 1.0, label=label)
    axes.set_xticks(range(len(summaries)), [s["name"].replace(", ", ",\n") for s in summaries], fontsize=8)
    axes.set_ylabel("accuracy (real test)")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7, ncol=len(groups), loc="upper center", bbox_to_anchor=(0.5, -0.2))
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_protocol_report(
    arms: Sequence[ProtocolArm], output_dir: str | Path, title: str = "Utility protocol"
) -> dict[str, Any]:
    """Summarise the arms and write ``utility_protocol.json``, ``utility_protocol.md`` and the PNG figures.

    Returns:
        ``arms`` (one :func:`summarize_arm` each, in order) and ``figures`` (name -> file name in `output_dir`).

    Raises:
        ValueError: for no arms.
    """
    if not arms:
        raise ValueError("the protocol report needs at least one arm.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize_arm(arm) for arm in arms]
    figures = {}
    if _fraction_plot(summaries, out / "accuracy_vs_real_fraction.png"):
        figures["accuracy_vs_real_fraction"] = "accuracy_vs_real_fraction.png"
    _group_plot(summaries, out / "per_group_accuracy.png")
    figures["per_group_accuracy"] = "per_group_accuracy.png"
    report = {"arms": summaries, "figures": figures}
    (out / "utility_protocol.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "utility_protocol.md").write_text(_markdown(summaries, figures, title), encoding="utf-8")
    return report
