"""The evaluation report of a synthetic data set: ``report.json`` (every figure), ``report.md`` (tables a person
reads) and PNG figures (per-group accuracy bars, the real-vs-synthetic ratio curve, class x skin-type sample grids).

The report is a plain dict, as :class:`monai_lesiongen.evaluation.synthetic_data.SyntheticDataEvaluation` builds it;
every key is optional except ``data``:

- ``title``: the Markdown title.
- ``data``: facts about the sets (``dataset``, ``num_real_train``, ``num_real_test``, ``num_synthetic``,
  ``synthetic_dir``, ``image_dim``, ``class_names``, ``group_source``, ``grouping``, ...), listed as they come.
- ``feature_networks``: ``[{"name", "description"}]``, the feature spaces of the generative metrics.
- ``generative_metrics``: feature-network name -> ``{fid, kid_mean, kid_std, precision, recall, num_real,
  num_synthetic}``, and for the domain features ``subgroups``: partition (``diagnosis``, ``skin-type group``) ->
  ``{real_size, synthetic_size, num_draws, groups: {group: SubgroupFrechetDistance fields, real_reference (the
  same against real training images) and excess (the paired difference)}, left_out}``.
- ``diversity``: set name (``synthetic``, ``real``) -> ``{overall, per_class}`` mean pairwise MS-SSIM.
- ``classification``: the result of :func:`monai_lesiongen.evaluation.downstream.compare_training_sets`.
- ``segmentation``: the result of :func:`monai_lesiongen.evaluation.downstream_segmentation.compare_segmentation`.
- ``skipped``: section key -> why it was not run; ``notes``: list of remarks; ``timings``: step -> seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from monai_lesiongen.evaluation.downstream import DIFFERENCE_FIGURES
from monai_lesiongen.utils.image_grid import save_image_grid

__all__ = ["REPORT_SECTIONS", "SampleSet", "write_report", "class_skin_type_grid", "format_interval"]

REPORT_SECTIONS: tuple[str, ...] = (
    "Data and feature networks",
    "Generative metrics",
    "Downstream classification",
    "Segmentation",
    "Sample grids",
)
"""The second-level headings of ``report.md``, in order; each is written, with the reason where a step did not run."""

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}


@dataclass
class SampleSet:
    """
    Images to show in a class x skin-type grid.

    Attributes:
        images: (N, 3, H, W) images in [0, 1].
        labels: N class indices.
        skin_types: N Fitzpatrick types 1-6 (None where unknown).
    """

    images: torch.Tensor
    labels: Sequence[int]
    skin_types: Sequence[int | None]


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, numpy and torch values Python ones, keys strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_interval(summary: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``mean [lower, upper]`` of a :func:`summarize_runs` summary, the mean alone without an interval, ``-`` without
    a mean; `signed` writes a ``+`` before positive numbers (for differences)."""
    if not summary or summary.get("mean") is None:
        return "-"
    sign = "+" if signed else ""
    if summary.get("lower") is None:
        return f"{summary['mean']:{sign}.3f}"
    return f"{summary['mean']:{sign}.3f} [{summary['lower']:{sign}.3f}, {summary['upper']:{sign}.3f}]"


_ci = format_interval


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _error_bars(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[float], np.ndarray]:
    means = [s["mean"] if s.get("mean") is not None else math.nan for s in summaries]
    below = [m - s["lower"] if s.get("lower") is not None else 0.0 for m, s in zip(means, summaries, strict=True)]
    above = [s["upper"] - m if s.get("upper") is not None else 0.0 for m, s in zip(means, summaries, strict=True)]
    return means, np.array([below, above])


def _bar_plot(
    categories: Sequence[str], series: Mapping[str, Sequence[Mapping[str, Any]]], ylabel: str, title: str, path: Path
) -> None:
    """Grouped bars, one group per category and one bar per series, with confidence-interval error bars."""
    figure = Figure(figsize=(max(5.0, 1.2 * len(categories) * max(1, len(series)) ** 0.5), 3.6), layout="tight")
    axes = figure.subplots()
    width = 0.8 / max(1, len(series))
    for index, (name, summaries) in enumerate(series.items()):
        means, errors = _error_bars(summaries)
        positions = np.arange(len(categories)) + (index - (len(series) - 1) / 2) * width
        axes.bar(positions, means, width, yerr=errors, capsize=2, label=name)
    axes.set_xticks(np.arange(len(categories)), list(categories))
    axes.set_ylim(0.0, 1.05)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small", loc="best")
    figure.savefig(path, dpi=120)


def _ratio_plot(classification: Mapping[str, Any], path: Path) -> None:
    """Balanced and worst-group accuracy against the synthetic-to-real ratio actually used; synthetic-only as a
    horizontal band."""
    figure = Figure(figsize=(5.5, 3.6), layout="tight")
    axes = figure.subplots()
    mixed = [c for c in classification["conditions"] if c["ratio"] is not None]
    ratios = [c["num_synthetic"] / max(1, c["num_real"]) for c in mixed]
    curves = (("balanced_accuracy", "balanced accuracy", "o"), ("worst_group_accuracy", "worst group", "s"))
    for key, label, marker in curves:
        means, errors = _error_bars([c[key] for c in mixed])
        axes.errorbar(ratios, means, yerr=errors, marker=marker, capsize=3, label=f"real + synthetic: {label}")
    for condition in classification["conditions"]:
        summary = condition["balanced_accuracy"]
        if condition["ratio"] is None and summary["mean"] is not None:
            axes.axhline(summary["mean"], color="grey", linestyle="--", label="synthetic only: balanced accuracy")
            if summary["lower"] is not None:
                axes.axhspan(summary["lower"], summary["upper"], color="grey", alpha=0.15)
    axes.set_xlabel("synthetic images per real training image")
    axes.set_ylabel("accuracy on the real test set")
    axes.set_ylim(0.0, 1.05)
    axes.set_title("Real vs synthetic training data")
    axes.legend(fontsize="small", loc="best")
    figure.savefig(path, dpi=120)


def class_skin_type_grid(
    samples: SampleSet, class_names: Sequence[str], images_per_cell: int = 2
) -> tuple[torch.Tensor, list[str], int]:
    """
    Arrange images in a grid with one row per skin type present and ``images_per_cell`` columns per class; empty
    cells are white.

    Returns:
        the images in grid order, their captions, and the number of columns (for ``save_image_grid``).
    """
    types = sorted({t for t in samples.skin_types}, key=lambda t: (t is None, t or 0))
    blank = torch.ones_like(samples.images[0]) if len(samples.images) else torch.ones(3, 8, 8)
    cells: list[torch.Tensor] = []
    captions: list[str] = []
    for skin_type in types:
        for label, name in enumerate(class_names):
            chosen = [
                i
                for i, (lab, t) in enumerate(zip(samples.labels, samples.skin_types, strict=True))
                if int(lab) == label and t == skin_type
            ][:images_per_cell]
            for k in range(images_per_cell):
                cells.append(samples.images[chosen[k]].float() if k < len(chosen) else blank)
                captions.append(f"{name} {_ROMAN.get(skin_type, '?') if skin_type else '?'}" if k < len(chosen) else "")
    return torch.stack(cells), captions, len(class_names) * images_per_cell


def _figures(report: Mapping[str, Any], out: Path, samples: Mapping[str, SampleSet] | None) -> dict[str, str]:
    figures: dict[str, str] = {}
    classification = report.get("classification")
    if classification:
        conditions = classification["conditions"]
        groups = list(conditions[0]["per_group_accuracy"])
        _bar_plot(
            groups,
            {c["name"]: [c["per_group_accuracy"][g] for g in groups] for c in conditions},
            "accuracy",
            "Accuracy per skin-type group (real test set)",
            out / "per_group_accuracy.png",
        )
        figures["per_group_accuracy"] = "per_group_accuracy.png"
        _ratio_plot(classification, out / "balanced_accuracy_vs_ratio.png")
        figures["balanced_accuracy_vs_ratio"] = "balanced_accuracy_vs_ratio.png"
        names = classification["class_names"]
        _bar_plot(
            names,
            {c["name"]: [c["per_class_recall"][n] for n in names] for c in conditions},
            "recall",
            "Recall per class (real test set)",
            out / "per_class_recall.png",
        )
        figures["per_class_recall"] = "per_class_recall.png"
    class_names = report["data"].get("class_names", [])
    for name, sample_set in (samples or {}).items():
        if len(sample_set.images) == 0:
            continue
        file = f"samples_{name.replace(' ', '_')}.png"
        images, captions, columns = class_skin_type_grid(sample_set, class_names)
        save_image_grid(images, out / file, num_columns=columns, labels=captions, cell_size=64)
        figures[f"samples_{name}"] = file
    return figures


def _data_section(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Data and feature networks", ""]
    lines += [f"- **{key.replace('_', ' ')}**: {_fmt(value)}" for key, value in report["data"].items()]
    networks = report.get("feature_networks") or []
    lines.append("")
    if networks:
        lines += _table(["feature network", "description"], [[n["name"], n.get("description", "")] for n in networks])
    else:
        lines += ["No feature network was used (generative metrics not run).", ""]
    return lines


def _generative_section(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Generative metrics", ""]
    metrics = report.get("generative_metrics")
    skipped = report.get("skipped", {})
    if metrics:
        lines += [
            "Synthetic images against the real test images. FID and KID: lower is better (KID is unbiased in the "
            "number of samples, FID is not, so compare FIDs only at equal sample counts). Precision (fidelity) and "
            "recall (coverage): improved k-NN manifolds, k = 3.",
            "",
        ]
        rows = [
            [name, m.get("fid"), f"{_fmt(m.get('kid_mean'), 4)} ± {_fmt(m.get('kid_std'), 4)}", m.get("precision"),
             m.get("recall"), m.get("num_real"), m.get("num_synthetic")]
            for name, m in metrics.items()
        ]  # fmt: skip
        lines += _table(["feature network", "FID", "KID", "precision", "recall", "real", "synthetic"], rows)
        for name, m in metrics.items():
            for partition, table in m.get("subgroups", {}).items():
                lines += _subgroup_fid_table(name, partition, table)
    else:
        lines += [f"Not run: {skipped.get('generative_metrics', 'no feature network enabled')}.", ""]
    diversity = report.get("diversity")
    lines += ["### Diversity", ""]
    if diversity:
        lines += ["Mean pairwise MS-SSIM between images of the same class (lower = more diverse).", ""]
        sets = list(diversity)
        classes = sorted({c for d in diversity.values() for c in d["per_class"]}, key=str)
        rows = [[c, *[diversity[s]["per_class"].get(c) for s in sets]] for c in classes]
        rows.append(["**all classes**", *[diversity[s]["overall"] for s in sets]])
        lines += _table(["class", *sets], rows)
    else:
        lines += [f"Not run: {skipped.get('diversity', 'disabled')}.", ""]
    return lines


def _subgroup_fid_table(network: str, partition: str, table: Mapping[str, Any]) -> list[str]:
    lines = [f"### FID per {partition} ({network})", ""]
    if "skipped" in table:
        return [*lines, f"Not measured: {table['skipped']}.", ""]
    lines += [
        f"Every {partition} at the same sizes: {table['real_size']} real test images against {table['synthetic_size']} "
        f"synthetic images, and against {table['synthetic_size']} real training images of the {partition} (what a "
        f"generator that drew the real images would score), per draw without replacement, {table['num_draws']} "
        "draws: mean [2.5, 97.5 percentiles]. The excess is synthetic minus real over paired draws (the same real "
        "test images in both); at these sizes FID is far above the full-set figure, so read the rows against one "
        "another. The largest excess is in bold.",
        "",
    ]

    def interval(v: Mapping[str, Any]) -> str:
        return f"{v['mean']:.1f} [{v['lower']:.1f}, {v['upper']:.1f}]"

    groups = table["groups"]
    worst = max(groups, key=lambda g: groups[g]["excess"]["mean"])
    rows = [
        [f"**{g}**" if g == worst else g, v["num_real"], v["num_synthetic"], interval(v), interval(v["real_reference"]),
         "{mean:+.1f} [{lower:+.1f}, {upper:+.1f}]".format(**v["excess"])]
        for g, v in groups.items()
    ]  # fmt: skip
    lines += _table([partition, "real test", "synthetic", "FID synthetic", "FID real training", "excess"], rows)
    if table.get("left_out"):
        lines += [f"Left out (fewer than two images in one of the sets): {', '.join(table['left_out'])}.", ""]
    return lines


def _classification_section(report: Mapping[str, Any], figures: Mapping[str, str]) -> list[str]:
    lines = ["## Downstream classification", ""]
    result = report.get("classification")
    if not result:
        return [*lines, f"Not run: {report.get('skipped', {}).get('classification', 'disabled')}.", ""]
    settings = result["settings"]
    test = result["test"]
    confidence = round(100 * result.get("confidence", 0.95))
    lines += [
        f"The same classifier ({settings['network']}; {settings['epochs']} epochs, batch {settings['batch_size']}, "
        f"lr {settings['lr']}, class balance by {settings['balance']}) trained on each set and tested on the same "
        f"{test['num_samples']} real test images, seeds {result['seeds']}; mean over seeds with {confidence}% "
        "Student-t intervals (clipped to [0, 1]). Worst-group accuracy is the lowest group accuracy of each run, "
        "averaged over runs; the worst group is the group with the lowest mean accuracy. Test images per skin-type "
        "group: " + ", ".join(f"{g} {n}" for g, n in test["group_counts"].items()) + ".",
        "",
        "### Training conditions",
        "",
    ]
    conditions = result["conditions"]
    rows = [
        [c["name"], c["num_real"], c["num_synthetic"], _ci(c["balanced_accuracy"]), _ci(c["accuracy"]),
         _ci(c["worst_group_accuracy"]), c["worst_group"], _ci(c.get("group_gap"))]
        for c in conditions
    ]  # fmt: skip
    header = ["condition", "real", "synthetic", "balanced accuracy", "accuracy", "worst-group accuracy", "worst group",
              "best-minus-worst gap"]  # fmt: skip
    lines += _table(header, rows)
    compared = [c for c in conditions if c["name"] != "real" and "difference_to_real" in c]
    if compared:
        lines += [
            "### Difference to real",
            "",
            "Each condition minus the real-only run of the same seed (paired), mean over seeds with the "
            f"{confidence}% Student-t interval of the differences: an interval above 0 is a gain that the seeds "
            "bear out (for the gap, below 0 is the gain).",
            "",
        ]
        rows = [
            [c["name"], *[_ci(c["difference_to_real"][key]) for key in DIFFERENCE_FIGURES]] for c in compared
        ]  # fmt: skip
        lines += _table(["condition", "balanced accuracy", "worst-group accuracy", "best-minus-worst gap"], rows)
    names = [c["name"] for c in conditions]
    lines += ["### Per-class recall", ""]
    lines += _table(
        ["class", *names], [[k, *[_ci(c["per_class_recall"][k]) for c in conditions]] for k in result["class_names"]]
    )
    lines += ["### Per-group accuracy", ""]
    groups = list(conditions[0]["per_group_accuracy"])
    rows = [[f"{g} (n={test['group_counts'].get(g, '-')})", *[_ci(c["per_group_accuracy"][g]) for c in conditions]]
            for g in groups]  # fmt: skip
    rows.append(["**worst group**", *[c["worst_group"] for c in conditions]])
    lines += _table(["group", *names], rows)
    for key, caption in (
        ("balanced_accuracy_vs_ratio", "Balanced accuracy vs synthetic ratio"),
        ("per_group_accuracy", "Accuracy per skin-type group"),
        ("per_class_recall", "Recall per class"),
    ):
        if key in figures:
            lines += [f"![{caption}]({figures[key]})", ""]
    return lines


def _segmentation_section(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Segmentation", ""]
    result = report.get("segmentation")
    if not result:
        return [*lines, f"Not run: {report.get('skipped', {}).get('segmentation', 'no paired masks')}.", ""]
    settings = result["settings"]
    lines += [
        f"A 2D MONAI UNet trained with the Dice loss (epochs: {settings['epochs']}) on each set and tested on the same "
        f"{result['test']['num_samples']} real image + mask pairs, seeds {result['seeds']}; per-image means, "
        "threshold Jaccard as the ISIC 2018 Task 1 scorer (per-image Jaccard below 0.65 counts 0).",
        "",
    ]
    rows = [
        [c["name"], c["num_real"], c["num_synthetic"], _ci(c["dice"]), _ci(c["iou"]), _ci(c["threshold_jaccard"])]
        for c in result["conditions"]
    ]
    return lines + _table(["condition", "real", "synthetic", "Dice", "IoU", "threshold Jaccard"], rows)


def write_report(
    report: Mapping[str, Any], output_dir: str | Path, samples: Mapping[str, SampleSet] | None = None
) -> tuple[Path, Path]:
    """
    Write ``report.json``, ``report.md`` and the PNG figures into ``output_dir``.

    Args:
        report: the report dict (see the module docstring); it needs ``data``.
        output_dir: the folder to write into (created).
        samples: set name (e.g. ``synthetic``, ``real test``) -> images shown as a class x skin-type grid
            (``samples_<name>.png``).

    Returns:
        the paths of ``report.json`` and ``report.md``.

    Raises:
        KeyError: when ``report`` has no ``data`` section.
    """
    if "data" not in report:
        raise KeyError("the report needs a 'data' section (the sets evaluated); see monai_lesiongen.evaluation.report.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(report, out, samples)
    content = _jsonable({**report, "figures": figures})
    json_path = out / "report.json"
    json_path.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    lines = [f"# {content.get('title', 'Synthetic data evaluation')}", ""]
    lines += _data_section(content)
    lines += _generative_section(content)
    lines += _classification_section(content, figures)
    lines += _segmentation_section(content)
    lines += ["## Sample grids", ""]
    grids = {k: v for k, v in figures.items() if k.startswith("samples_")}
    lines += [f"![{k[len('samples_') :]}]({v})\n" for k, v in grids.items()] or ["No sample grid was written.", ""]
    if content.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in content["notes"]], ""]
    if content.get("timings"):
        lines += ["## Timings", "", *[f"- {step}: {seconds:.1f} s" for step, seconds in content["timings"].items()], ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return json_path, md_path
