"""A diagnostic classifier's report on real test images: balanced accuracy, per class, per skin-type group, worst
group, written as ``report.json`` and ``report.md``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_lesiongen.metrics.fairness import (
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    group_accuracy,
    per_class_recall,
    worst_group_accuracy,
)

__all__ = ["ClassifierEvaluation", "classification_report", "predict_classes", "write_classification_report"]


@torch.no_grad()
def predict_classes(
    classifier: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    device: torch.device | str = "cpu",
    image_key: str = "image",
    keys: Sequence[str] = ("label",),
) -> dict[str, np.ndarray]:
    """Run a classifier at timestep 0 over batches; returns ``pred`` (N,), ``probs`` (N, C) and each of `keys`.

    Raises:
        KeyError: when a batch lacks `image_key` or one of `keys`.
    """
    classifier.eval()
    collected: dict[str, list[np.ndarray]] = {"pred": [], "probs": [], **{k: [] for k in keys}}
    for batch in batches:
        missing = [k for k in (image_key, *keys) if k not in batch]
        if missing:
            raise KeyError(f"the evaluation batch lacks {missing}; its keys are {sorted(batch)}.")
        images = torch.as_tensor(batch[image_key]).to(device)
        timesteps = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        probs = torch.softmax(classifier(images, timesteps).float(), dim=-1).cpu()
        collected["probs"].append(probs.numpy())
        collected["pred"].append(probs.argmax(dim=-1).numpy())
        for key in keys:
            value = batch[key]
            collected[key].append(np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value).reshape(-1))
    return {k: np.concatenate(v) for k, v in collected.items()}


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy (with a bootstrap 95% interval), recall per class and, with `groups`, accuracy and
    balanced accuracy per group and the worst group's.

    Args:
        y_true: true class indices (N,).
        y_pred: predicted class indices (N,).
        class_names: class names in index order.
        groups: group index or name of every sample (N,), e.g. the skin-type group.
        group_names: names of integer groups, in index order.
        num_resamples: bootstrap resamples for the interval.
        seed: seed of the bootstrap.
    """
    num_classes = len(class_names)
    balanced = bootstrap_ci(
        partial(balanced_accuracy, num_classes=num_classes), y_true, y_pred, num_resamples=num_resamples, seed=seed
    )
    recalls = per_class_recall(y_true, y_pred, num_classes)
    report: dict[str, Any] = {
        "num_images": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced.estimate,
        "balanced_accuracy_ci95": [balanced.lower, balanced.upper],
        "per_class_recall": {
            name: (None if np.isnan(r) else float(r)) for name, r in zip(class_names, recalls, strict=True)
        },
        "class_support": {name: int((y_true == i).sum()) for i, name in enumerate(class_names)},
    }
    if groups is not None:
        keys = np.asarray(groups)
        if group_names is not None and np.issubdtype(keys.dtype, np.integer):
            keys = np.asarray([group_names[int(k)] for k in keys])
        report["group_accuracy"] = {str(k): v for k, v in group_accuracy(y_true, y_pred, keys).items()}
        report["group_balanced_accuracy"] = {
            str(k): balanced_accuracy(y_true[keys == k], y_pred[keys == k], num_classes) for k in np.unique(keys)
        }
        report["group_support"] = {str(k): int((keys == k).sum()) for k in np.unique(keys)}
        report["worst_group_accuracy"] = worst_group_accuracy(y_true, y_pred, keys)
        report["worst_group"] = min(report["group_accuracy"], key=report["group_accuracy"].get)
    return report


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_classification_report(report: Mapping[str, Any], output_dir: str | Path, title: str) -> tuple[Path, Path]:
    """Write a report as ``report.json`` and a Markdown summary ``report.md`` in `output_dir`; returns both paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    low, high = report["balanced_accuracy_ci95"]
    lines = [
        f"# {title}",
        "",
        f"{report['num_images']} test images.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| accuracy | {_cell(report['accuracy'])} |",
        f"| balanced accuracy (95% bootstrap CI) | {_cell(report['balanced_accuracy'])} ({low:.3f}-{high:.3f}) |",
    ]
    if "worst_group_accuracy" in report:
        lines.append(f"| worst-group accuracy ({report['worst_group']}) | {_cell(report['worst_group_accuracy'])} |")
    lines += ["", "## Per class", "", "| class | images | recall |", "|---|---|---|"]
    for name, recall in report["per_class_recall"].items():
        lines.append(f"| {name} | {report['class_support'][name]} | {_cell(recall)} |")
    if "group_accuracy" in report:
        lines += [
            "",
            "## Per skin-type group",
            "",
            "| group | images | accuracy | balanced accuracy |",
            "|---|---|---|---|",
        ]
        for group, value in report["group_accuracy"].items():
            balanced = report["group_balanced_accuracy"][group]
            lines.append(f"| {group} | {report['group_support'][group]} | {_cell(value)} | {_cell(balanced)} |")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path


class ClassifierEvaluation:
    """Evaluate a classifier on a data loader and write its report (the bundle's ``evaluating`` step).

    Args:
        classifier: ``classifier(x, timesteps) -> logits``.
        dataloader: batches with images, labels and (optionally) groups.
        output_dir: where ``report.json`` and ``report.md`` go.
        class_names: the classifier's class names, in output order.
        group_names: names of the integer groups under `group_key`.
        label_key: key of the class labels.
        group_key: key of the group of each image; None for no groups.
        label_map: maps the batch labels to the classifier's classes (e.g. benign/malignant).
        device: where the classifier runs.
        title: the Markdown report's title.
    """

    def __init__(
        self,
        classifier: nn.Module,
        dataloader: Iterable[Mapping[str, Any]],
        output_dir: str | Path,
        class_names: Sequence[str],
        group_names: Sequence[str] | None = None,
        label_key: str = "label",
        group_key: str | None = "skin_group",
        label_map: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        title: str = "Classifier on the real test split",
    ) -> None:
        self.classifier = classifier
        self.dataloader = dataloader
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.group_names = None if group_names is None else list(group_names)
        self.label_key = label_key
        self.group_key = group_key
        self.label_map = label_map
        self.device = device
        self.title = title

    def run(self) -> dict[str, Any]:
        """Predict, score and write the report; returns it."""
        keys = [self.label_key] + ([self.group_key] if self.group_key is not None else [])
        outputs = predict_classes(self.classifier, self.dataloader, self.device, keys=keys)
        y_true = outputs[self.label_key].astype(np.int64)
        if self.label_map is not None:
            y_true = np.asarray(list(self.label_map), dtype=np.int64)[y_true]
        groups = outputs[self.group_key] if self.group_key is not None else None
        report = classification_report(y_true, outputs["pred"], self.class_names, groups, self.group_names)
        write_classification_report(report, self.output_dir, self.title)
        return report
