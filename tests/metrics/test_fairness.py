from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from monai_lesiongen.metrics import (
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    dice_score,
    group_accuracy,
    jaccard_index,
    mean_ci_over_seeds,
    per_class_recall,
    threshold_jaccard,
    worst_group_accuracy,
)

# recall: class 0 2/3, class 1 1/2, class 2 1/1; class 3 absent
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 0, 2]
GROUPS = ["I", "I", "II", "II", "VI", "VI"]  # correct: I 2/2, II 1/2, VI 1/2


def test_recall_and_balanced_accuracy_by_hand() -> None:
    recall = per_class_recall(Y_TRUE, Y_PRED, num_classes=4)
    np.testing.assert_allclose(recall[:3], [2 / 3, 1 / 2, 1.0])
    assert np.isnan(recall[3])
    assert balanced_accuracy(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    # scores (N, C) and tensors are accepted
    scores = torch.nn.functional.one_hot(torch.tensor(Y_PRED), 4).float()
    assert balanced_accuracy(torch.tensor(Y_TRUE), scores, num_classes=4) == pytest.approx(13 / 18)
    with pytest.raises(ValueError, match="outside"):
        per_class_recall(Y_TRUE, Y_PRED, num_classes=2)
    with pytest.raises(ValueError, match="same length"):
        accuracy(Y_TRUE, Y_PRED[:-1])


def test_group_and_worst_group_accuracy_by_hand() -> None:
    assert group_accuracy(Y_TRUE, Y_PRED, GROUPS) == {"I": 1.0, "II": 0.5, "VI": 0.5}
    assert worst_group_accuracy(Y_TRUE, Y_PRED, GROUPS) == 0.5
    by_type = group_accuracy(Y_TRUE, Y_PRED, np.array([1, 1, 2, 2, 6, 6]))
    assert by_type == {1: 1.0, 2: 0.5, 6: 0.5} and all(type(k) is int for k in by_type)


def test_bootstrap_ci_contains_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 2000):
        y_true = rng.integers(0, 3, n)
        y_pred = np.where(rng.random(n) < 0.7, y_true, (y_true + 1) % 3)
        ci = bootstrap_ci(partial(balanced_accuracy, num_classes=3), y_true, y_pred, num_resamples=200, seed=0)
        assert ci.lower <= ci.estimate <= ci.upper
        assert ci.estimate == pytest.approx(balanced_accuracy(y_true, y_pred, 3))
        widths.append(ci.upper - ci.lower)
    assert widths[1] < widths[0] / 3
    same = bootstrap_ci(accuracy, y_true, y_pred, num_resamples=50, seed=3)
    assert same == bootstrap_ci(accuracy, y_true, y_pred, num_resamples=50, seed=3)


def test_mean_ci_over_seeds_t_interval() -> None:
    ci = mean_ci_over_seeds([0.70, 0.80, 0.75])
    half_width = 4.302652729911275 * 0.05 / np.sqrt(3)  # t(0.975, df=2) * s / sqrt(n)
    assert ci.estimate == pytest.approx(0.75)
    assert ci.lower == pytest.approx(0.75 - half_width) and ci.upper == pytest.approx(0.75 + half_width)
    with pytest.raises(ValueError, match="at least 2"):
        mean_ci_over_seeds([0.7])


def test_jaccard_dice_threshold_by_hand() -> None:
    true = np.zeros((4, 4), dtype=np.uint8)
    true[:2, :2] = 255  # 4 foreground pixels, 8-bit mask as in ISIC
    three_of_four = true.copy()
    three_of_four[1, 1] = 0
    double = np.zeros((4, 4), dtype=bool)
    double[:2, :] = True  # 8 pixels containing the 4 true ones
    assert jaccard_index(true, true) == 1.0
    assert jaccard_index(three_of_four, true) == pytest.approx(0.75)
    assert jaccard_index(double, true) == pytest.approx(0.5)
    assert dice_score(three_of_four, true) == pytest.approx(6 / 7)
    assert jaccard_index(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # ISIC convention for two empty masks
    jaccards = [1.0, 0.75, 0.5]
    assert threshold_jaccard(jaccards) == pytest.approx((1.0 + 0.75 + 0.0) / 3)
    assert threshold_jaccard(jaccards, threshold=0.4) == pytest.approx(0.75)


def test_segmentation_scores_match_isic_scorer() -> None:
    isic_metrics = pytest.importorskip("isic_challenge_scoring.metrics")
    confusion = pytest.importorskip("isic_challenge_scoring.confusion")
    rng = np.random.default_rng(0)
    for _ in range(5):
        pred, true = rng.random((16, 16)) > 0.4, rng.random((16, 16)) > 0.5
        cm = confusion.create_binary_confusion_matrix(true, pred)
        assert jaccard_index(pred, true) == pytest.approx(isic_metrics.binary_jaccard(cm), abs=1e-12)
        assert dice_score(pred, true) == pytest.approx(isic_metrics.binary_dice(cm), abs=1e-12)


@pytest.mark.parametrize("num_samples, drop_class", [(300, None), (60, 6)])
def test_balanced_accuracy_matches_isic_scorer(num_samples: int, drop_class: int | None) -> None:
    isic_metrics = pytest.importorskip("isic_challenge_scoring.metrics")
    pd = pytest.importorskip("pandas")
    categories = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    rng = np.random.default_rng(num_samples)
    y_true = rng.integers(0, 6 if drop_class == 6 else 7, num_samples)
    probabilities = rng.random((num_samples, 7))
    probabilities[np.arange(num_samples), y_true] += rng.random(num_samples)  # better than chance
    truth = pd.DataFrame(np.eye(7)[y_true], columns=categories)
    prediction = pd.DataFrame(probabilities, columns=categories)
    expected = isic_metrics.balanced_multiclass_accuracy(truth, prediction, pd.Series(np.ones(num_samples)))
    assert balanced_accuracy(y_true, probabilities, num_classes=7) == pytest.approx(expected, abs=1e-6)
