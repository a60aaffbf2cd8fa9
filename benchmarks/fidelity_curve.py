"""Quality against training minutes: where does a bundle's default run reach the fidelity targets of issue 14?

One training run, resumed in stages (``--override num_epochs=40``, then ``60``: the same run continued, with the
same constant learning rate and EMA), scored by ``condition_fidelity.py`` after every stage; this script puts the
stages' JSON files and the run's own validation history (the ``ConditionFidelityValidator`` figures every
``val_interval`` epochs, kept in the run's last checkpoint) into one table and one figure, with the targets drawn in.

    python benchmarks/fidelity_curve.py --bundle lesiongen --run_dir /tmp/runs/lg_curve \\
        --results benchmarks/results/condition_fidelity_lesiongen_curve_e20_best.json \\
                  benchmarks/results/condition_fidelity_lesiongen_curve_e40.json

The stages' training minutes add up (each JSON holds the wall time of its own stage); the epochs of a stage are its
``num_epochs`` override, else the bundle's default. Writes ``benchmarks/results/fidelity_curve_<bundle>.json`` and
``.png``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
import yaml
from condition_fidelity import BUNDLES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# issue 14's targets, one per panel: recognition (of every diagnosis) and ITA match at least 0.85, TSTR at
# least 0.85 x train-on-real, domain FID at most 134
TARGETS = {"recognised": 0.85, "skin_group_match": 0.85, "tstr_ratio": 0.85, "fid": 134.0}


def stage_epochs(result: Mapping[str, Any], default_epochs: int) -> int:
    """The epochs a stage trained to: its ``num_epochs`` override, else the bundle default."""
    for override in result.get("overrides", []):
        key, _, value = str(override).partition("=")
        if key == "num_epochs":
            return int(value)
    return default_epochs


def stage_points(results: Sequence[Mapping[str, Any]], default_epochs: int) -> list[dict[str, float]]:
    """One point per stage: epochs, cumulative training minutes and the fidelity figures."""
    points, minutes = [], 0.0
    for result in results:
        if result.get("train_seconds") is None:
            raise ValueError(
                f"the result of {result.get('run_dir')} has no train_seconds: score stages run with --train."
            )
        minutes += float(result["train_seconds"]) / 60
        per_class = result["recognition"]["per_class"]
        points.append(
            {
                "epochs": float(stage_epochs(result, default_epochs)),
                "minutes": minutes,
                "recognised": float(result["recognition"]["balanced"]),
                "worst_diagnosis": float(min(entry["recognised"] for entry in per_class.values())),
                "skin_group_match": float(result["recognition"].get("skin_group_match", float("nan"))),
                "fid": float(result["domain_fid"]),
                "tstr_ratio": float(result["tstr_ratio_to_real"]),
            }
        )
    return points


def validation_history(run_dir: Path) -> list[dict[str, float]]:
    """The validator's figures per validated epoch, from the run's last checkpoint (empty without one)."""
    path = run_dir / "checkpoints" / "checkpoint_final.pt"
    if not path.is_file():
        return []
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return [dict(entry) for entry in checkpoint.get("validator", {}).get("history", [])]


def plot(points: Sequence[Mapping[str, float]], history: Sequence[Mapping[str, float]], path: Path, title: str) -> None:
    """Four panels against training minutes, the targets as dashed lines."""
    # a validated epoch's training minutes, read off the stages (piecewise linear through the origin)
    stage_epochs_axis = [0.0] + [p["epochs"] for p in points]
    stage_minutes_axis = [0.0] + [p["minutes"] for p in points]
    panels = [
        ("recognised", "val_recognition", "requested diagnosis recognised (balanced)"),
        ("skin_group_match", "val_skin_match", "ITA skin-group match"),
        ("fid", None, "domain FID (lower is better)"),
        ("tstr_ratio", None, "TSTR / train-on-real"),
    ]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for axis, (key, val_key, label) in zip(axes, panels, strict=True):
        axis.plot([p["minutes"] for p in points], [p[key] for p in points], "o-", label="benchmark (168 images)")
        if key == "recognised":
            axis.plot(
                [p["minutes"] for p in points], [p["worst_diagnosis"] for p in points], "s:", label="worst diagnosis"
            )
        if val_key and history:
            axis.plot(
                np.interp([h["epoch"] for h in history if val_key in h], stage_epochs_axis, stage_minutes_axis),
                [h[val_key] for h in history if val_key in h],
                ".--",
                alpha=0.6,
                label="validator (42 images)",
            )
        axis.axhline(TARGETS[key], color="grey", linestyle="--", linewidth=1, label="target")
        axis.set_xlabel("training minutes (2 CPU cores)")
        axis.set_title(label, fontsize=9)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", choices=BUNDLES, required=True)
    parser.add_argument("--run_dir", type=Path, required=True, help="the staged run (for its validation history)")
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="the stages' JSON files, in order")
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/results/fidelity_curve_<bundle>")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "bundles" / args.bundle / "configs" / "train.yaml").read_text(encoding="utf-8"))
    results = [json.loads(path.read_text(encoding="utf-8")) for path in args.results]
    points = stage_points(results, int(config["num_epochs"]))
    history = validation_history(args.run_dir)
    output = args.output or RESULTS / f"fidelity_curve_{args.bundle}"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({"stages": points, "validation": history}, indent=2))
    plot(points, history, output.with_suffix(".png"), f"{args.bundle}: default run resumed in stages")
    print("| epochs | training min | recognised | worst diagnosis | ITA match | domain FID | TSTR / real |")
    print("|---|---|---|---|---|---|---|")
    for p in points:
        print(
            f"| {p['epochs']:.0f} | {p['minutes']:.1f} | {p['recognised']:.3f} | {p['worst_diagnosis']:.2f} | "
            f"{p['skin_group_match']:.3f} | {p['fid']:.1f} | {p['tstr_ratio']:.2f} |"
        )
    if history:
        print("\nvalidator: " + ", ".join(f"e{h['epoch']:.0f} {h.get('val_score', float('nan')):.2f}" for h in history))
    print(f"\nwrote {output.with_suffix('.json')} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
