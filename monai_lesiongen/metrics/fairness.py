"""Downstream figures: classification accuracy overall, per class and per group, with confidence intervals, and the
ISIC 2018 segmentation scores."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import stats

__all__ = [
    "ConfidenceInterval",
    "accuracy",
    "balanced_accuracy",
    "per_class_recall",
    "group_accuracy",
    "worst_group_accuracy",
    "bootstrap_ci",
    "mean_ci_over_seeds",
    "jaccard_index",
    "dice_score",
    "threshold_jaccard",
]

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]


class ConfidenceInterval(NamedTuple):
    """A point estimate and the bounds of its two-sided confidence interval."""

    estimate: float
    lower: float
    upper: float


def _to_numpy(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _as_labels(values: ArrayLike, name: str) -> np.ndarray:
    """Class indices from indices (N,) or from one-hot / scores / probabilities (N, C) by argmax."""
    array = _to_numpy(values)
    if array.ndim == 2:
        array = array.argmax(axis=1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be class indices (N,) or scores (N, C), got shape {array.shape}.")
    return array.astype(np.int64)


def _check_lengths(*arrays: np.ndarray) -> None:
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"inputs must have the same length, got {[len(a) for a in arrays]}.")
    if 0 in lengths:
        raise ValueError("inputs are empty.")


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """
    Fraction of correct predictions.

    Args:
        y_true: class indices (N,) or one-hot (N, C).
        y_pred: class indices (N,) or scores (N, C).
    """
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _check_lengths(true, pred)
    return float(np.mean(true == pred))


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """
    Recall (sensitivity) of every class.

    Args:
        y_true: class indices (N,) or one-hot (N, C).
        y_pred: class indices (N,) or scores (N, C).
        num_classes: number of classes C.

    Returns:
        (C,) recalls; NaN for classes absent from ``y_true``.

    Raises:
        ValueError: when a label is outside [0, num_classes).
    """
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _check_lengths(true, pred)
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name} has labels outside [0, {num_classes}): {sorted(set(labels.tolist()))}.")
    support = np.bincount(true, minlength=num_classes).astype(np.float64)
    hits = np.bincount(true[true == pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> float:
    """
    Balanced multi-class accuracy the ISIC challenge way: mean recall over the classes present in ``y_true``.

    Args:
        y_true: class indices (N,) or one-hot (N, C).
        y_pred: class indices (N,) or scores (N, C).
        num_classes: number of classes C.
    """
    return float(np.nanmean(per_class_recall(y_true, y_pred, num_classes)))


def _groups_of(groups: ArrayLike, n: int) -> np.ndarray:
    array = _to_numpy(groups)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"groups must hold one entry per sample ({n}), got shape {array.shape}.")
    return array


def group_accuracy(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike) -> dict[Hashable, float]:
    """
    Accuracy within every group (e.g. Fitzpatrick skin type, sex, acquisition site).

    Args:
        y_true: class indices (N,) or one-hot (N, C).
        y_pred: class indices (N,) or scores (N, C).
        groups: N group keys.

    Returns:
        accuracy by group key (Python scalars, sorted).
    """
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _check_lengths(true, pred)
    keys = _groups_of(groups, len(true))
    correct = true == pred
    return {
        group.item() if isinstance(group, np.generic) else group: float(correct[keys == group].mean())
        for group in np.unique(keys)
    }


def worst_group_accuracy(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike) -> float:
    """
    The lowest accuracy over groups (worst-group accuracy, Sagawa et al., ICLR 2020).

    Args:
        y_true: class indices (N,) or one-hot (N, C).
        y_pred: class indices (N,) or scores (N, C).
        groups: N group keys.
    """
    return min(group_accuracy(y_true, y_pred, groups).values())


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    num_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ConfidenceInterval:
    """
    Percentile bootstrap confidence interval of a metric over samples.

    The samples (rows of every array, resampled together) are drawn with replacement ``num_resamples`` times;
    resamples on which the metric is NaN are ignored.

    Args:
        metric_fn: the metric, called as ``metric_fn(*arrays)``, e.g.
            ``functools.partial(balanced_accuracy, num_classes=7)``.
        arrays: per-sample arrays of equal length, e.g. ``y_true, y_pred``.
        num_resamples: bootstrap resamples.
        alpha: one minus the confidence level.
        seed: seed of the resampling.

    Returns:
        the metric on all samples and the ``alpha / 2`` and ``1 - alpha / 2`` percentiles over resamples.

    Raises:
        ValueError: when no array is given, lengths differ, ``alpha`` is not in (0, 1) or ``num_resamples`` < 1.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one per-sample array.")
    if not 0 < alpha < 1 or num_resamples < 1:
        raise ValueError(f"alpha must be in (0, 1) and num_resamples >= 1, got {alpha} and {num_resamples}.")
    data = [_to_numpy(a) for a in arrays]
    _check_lengths(*data)
    n = len(data[0])
    rng = np.random.default_rng(seed)
    estimates = np.array(
        [metric_fn(*(a[idx] for a in data)) for idx in rng.integers(0, n, size=(num_resamples, n))], dtype=np.float64
    )
    lower, upper = np.nanpercentile(estimates, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return ConfidenceInterval(float(metric_fn(*data)), float(lower), float(upper))


def mean_ci_over_seeds(values: ArrayLike, alpha: float = 0.05) -> ConfidenceInterval:
    """
    Mean of a figure over independent runs (seeds) and its Student-t confidence interval.

    Args:
        values: one value per run.
        alpha: one minus the confidence level.

    Raises:
        ValueError: with fewer than two values or ``alpha`` outside (0, 1).
    """
    array = _to_numpy(values).astype(np.float64).ravel()
    if array.size < 2:
        raise ValueError(f"a t-interval needs at least 2 runs, got {array.size}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    mean = float(array.mean())
    half_width = float(stats.t.ppf(1 - alpha / 2, df=array.size - 1) * array.std(ddof=1) / np.sqrt(array.size))
    return ConfidenceInterval(mean, mean - half_width, mean + half_width)


def _binary_counts(pred_mask: ArrayLike, true_mask: ArrayLike, threshold: float) -> tuple[int, int, int]:
    pred = _to_numpy(pred_mask) > threshold
    true = _to_numpy(true_mask) > threshold
    if pred.shape != true.shape:
        raise ValueError(f"pred_mask and true_mask differ in shape: {pred.shape} vs {true.shape}.")
    tp = int(np.logical_and(pred, true).sum())
    return tp, int(pred.sum()) - tp, int(true.sum()) - tp


def jaccard_index(pred_mask: ArrayLike, true_mask: ArrayLike, threshold: float = 0.5) -> float:
    """
    Jaccard index (IoU) of one predicted mask against its ground truth.

    Two empty masks score 1, as in the ISIC challenge scorer.

    Args:
        pred_mask: mask of one image, any shape; pixels above ``threshold`` are foreground.
        true_mask: ground-truth mask of the same shape.
        threshold: binarisation threshold; 0.5 suits {0, 1}, boolean, probability and {0, 255} masks alike.
    """
    tp, fp, fn = _binary_counts(pred_mask, true_mask, threshold)
    return 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)


def dice_score(pred_mask: ArrayLike, true_mask: ArrayLike, threshold: float = 0.5) -> float:
    """
    Dice coefficient of one predicted mask against its ground truth; two empty masks score 1.

    Args:
        pred_mask: mask of one image, any shape; pixels above ``threshold`` are foreground.
        true_mask: ground-truth mask of the same shape.
        threshold: binarisation threshold.
    """
    tp, fp, fn = _binary_counts(pred_mask, true_mask, threshold)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def threshold_jaccard(jaccards: ArrayLike, threshold: float = 0.65) -> float:
    """
    ISIC 2018 Task 1 score: the mean over images of the per-image Jaccard index, with values below ``threshold``
    counted as 0.

    Args:
        jaccards: per-image Jaccard indices (see :func:`jaccard_index`).
        threshold: the challenge's 0.65 by default.
    """
    values = _to_numpy(jaccards).astype(np.float64).ravel()
    if values.size == 0:
        raise ValueError("threshold_jaccard needs at least one per-image Jaccard index.")
    return float(np.where(values >= threshold, values, 0.0).mean())
