"""Does a generator draw what it is asked for? An independent classifier (the downstream default, a MONAI
``Classifier``) is trained on the real training split and tested on the real test split; then it classifies every
image of one or more synthetic folders (each with the ``manifest.csv`` that an ``inferring`` run writes), and the
report says how often it recognises the requested diagnosis, per class and against chance. Where the manifest
records the requested skin type (``fitzpatrick`` or ``fitzpatrick_types``), it also says how often the skin type
estimated from the image (ITA) falls in the requested group (I-II, III-IV, V-VI).

    python benchmarks/conditional_accuracy.py --dataset_dir bundles/lesiongen/data/demo \\
        --synthetic bundles/lesiongen/outputs/synthetic
    python benchmarks/conditional_accuracy.py --dataset_dir bundles/classndiff/data/demo --label_column \\
        diagnosis_label --synthetic bundles/classndiff/outputs/synthetic_none bundles/classndiff/outputs/synthetic_both
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_lesiongen.data import HAM10000_CLASSES, load_split
from monai_lesiongen.evaluation.downstream import predict, train_classifier
from monai_lesiongen.evaluation.downstream_data import (
    fitzpatrick_types,
    load_image_tensors,
    read_manifest,
    requested_fitzpatrick,
    skin_type_groups,
)
from monai_lesiongen.metrics.fairness import balanced_accuracy

__all__ = ["requested_skin_groups", "score_synthetic_folder"]


def requested_skin_groups(rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The requested skin-type group of each manifest row (I-II, III-IV, V-VI), or None when not recorded."""
    types = [requested_fitzpatrick(row) for row in rows]
    return skin_type_groups([row_types[0] for row_types in types]) if all(types) else None


def score_synthetic_folder(
    classifier: torch.nn.Module, folder: Path, label_column: str, image_dim: int, class_names: Sequence[str]
) -> dict[str, Any]:
    """How often ``classifier`` recognises the requested class (and the ITA the requested skin group) in a folder."""
    rows = read_manifest(folder)
    missing = [i + 2 for i, row in enumerate(rows) if row.get(label_column) in (None, "")]
    if missing:
        raise ValueError(f"{folder / 'manifest.csv'}: rows {missing[:5]} have no '{label_column}' (--label_column).")
    images = load_image_tensors(rows, image_dim)
    requested = np.array([int(row[label_column]) for row in rows])
    predicted = predict(classifier, images).argmax(1).numpy()
    per_class = {}
    for label, name in enumerate(class_names):
        chosen = requested == label
        if chosen.any():
            seen = np.bincount(predicted[chosen], minlength=len(class_names))
            per_class[name] = {
                "images": int(chosen.sum()),
                "recognised": float((predicted[chosen] == label).mean()),
                "most_often_seen_as": class_names[int(seen.argmax())],
            }
    result: dict[str, Any] = {
        "images": len(rows),
        "guidance_mode": rows[0].get("guidance_mode"),
        "recognised": float((predicted == requested).mean()),
        "balanced": balanced_accuracy(requested, predicted, len(class_names)),
        "per_class": per_class,
    }
    wanted = requested_skin_groups(rows)
    if wanted is not None:
        estimated_types, _ = fitzpatrick_types([{} for _ in rows], images)
        estimated = skin_type_groups(estimated_types)
        result["skin_group_match"] = float(np.mean([w == e for w, e in zip(wanted, estimated, strict=True)]))
        result["recognised_per_skin_group"] = {
            group: float((predicted == requested)[np.array(wanted) == group].mean()) for group in sorted(set(wanted))
        }
    return result


def _markdown(results: Mapping[str, Any], class_names: Sequence[str]) -> list[str]:
    folders = list(results["synthetic"])
    lines = [
        f"| class | {' | '.join(Path(f).name for f in folders)} |",
        f"|---|{'---|' * len(folders)}",
    ]
    for name in class_names:
        cells = []
        for folder in folders:
            entry = results["synthetic"][folder]["per_class"].get(name)
            cells.append("" if entry is None else f"{entry['recognised']:.2f} (n={entry['images']})")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    for row, key in (("**all**", "recognised"), ("balanced", "balanced")):
        cells = " | ".join(f"{results['synthetic'][folder][key]:.2f}" for folder in folders)
        lines.append(f"| {row} | {cells} |")
    if all("skin_group_match" in results["synthetic"][f] for f in folders):
        matches = " | ".join(f"{results['synthetic'][f]['skin_group_match']:.2f}" for f in folders)
        lines.append(f"| skin group as requested (ITA) | {matches} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--synthetic", nargs="+", required=True, help="folders with a manifest.csv")
    parser.add_argument("--label_column", default="label", help="the manifest column of the requested diagnosis")
    parser.add_argument("--image_dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    class_names = list(HAM10000_CLASSES)
    start = time.perf_counter()
    train = load_split(args.dataset, args.dataset_dir, "train")
    test = load_split(args.dataset, args.dataset_dir, "test")
    classifier = train_classifier(
        load_image_tensors(train, args.image_dim), [r["label"] for r in train], len(class_names),
        epochs=args.epochs, seed=args.seed,
    )  # fmt: skip
    real_true = np.array([r["label"] for r in test])
    real_pred = predict(classifier, load_image_tensors(test, args.image_dim)).argmax(1).numpy()
    results: dict[str, Any] = {
        "classifier": {
            "network": type(classifier).__name__,
            "train_images": len(train),
            "test_images": len(test),
            "real_test_accuracy": float((real_pred == real_true).mean()),
            "real_test_balanced_accuracy": balanced_accuracy(real_true, real_pred, len(class_names)),
            "train_seconds": round(time.perf_counter() - start, 1),
        },
        "chance": 1 / len(class_names),
        "synthetic": {
            folder: score_synthetic_folder(classifier, Path(folder), args.label_column, args.image_dim, class_names)
            for folder in args.synthetic
        },
    }
    info = results["classifier"]
    print(
        f"{info['network']} trained on {info['train_images']} real images in {info['train_seconds']} s; on the "
        f"{info['test_images']} real test images: accuracy {info['real_test_accuracy']:.3f}, balanced accuracy "
        f"{info['real_test_balanced_accuracy']:.3f}\n"
    )
    print(f"share of synthetic images recognised as the requested class (chance {results['chance']:.3f}):")
    print("\n".join(_markdown(results, class_names)))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
