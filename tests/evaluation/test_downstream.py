"""Tests of the downstream utility tests: loading sets, skin-type groups, the classifier and segmenter comparisons.

Covers `monai_lesiongen/evaluation/downstream.py` and the modules it is split into (`downstream_data.py`,
`downstream_training.py`, `downstream_segmentation.py`).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_lesiongen.data import HAM10000_CLASSES, load_split, write_demo_dataset
from monai_lesiongen.evaluation.downstream import (
    compare_training_sets,
    default_classifier,
    evaluate_predictions,
    predict,
    train_classifier,
)
from monai_lesiongen.evaluation.downstream_data import (
    ImageSet,
    fitzpatrick_types,
    load_image_tensors,
    load_mask_tensors,
    read_manifest,
    requested_fitzpatrick,
    skin_type_groups,
)
from monai_lesiongen.evaluation.downstream_segmentation import compare_segmentation, evaluate_segmentation
from monai_lesiongen.evaluation.downstream_training import summarize_runs

FRACTIONS = (0.7, 0.0, 0.3)


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """A 240-image demo set at 32 px, split 70/30 by lesion."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, num_images=240, image_size=32, seed=0, progress=False)
    return {split: load_split("demo", root, split, fractions=FRACTIONS) for split in ("train", "test")}


def test_load_image_tensors_png_grey_and_nifti(tmp_path: Path) -> None:
    rgb = np.zeros((20, 10, 3), dtype=np.uint8)  # H=20, W=10
    rgb[:10, :, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(np.full((20, 10), 51, dtype=np.uint8)).save(tmp_path / "b.png")
    chw = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255  # as SyntheticDatasetWriter writes NIfTI: (W, H, C)
    nib.save(nib.Nifti1Image(chw.permute(2, 1, 0).numpy(), np.eye(4)), str(tmp_path / "c.nii.gz"))
    items = [{"image": str(tmp_path / name)} for name in ("a.png", "b.png", "c.nii.gz")]
    images = load_image_tensors(items, image_dim=8)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32 and not hasattr(images, "meta")
    assert images.min() >= 0 and images.max() <= 1
    # MONAI's (C, W, H) layout for both: the red top half (H < 10) is the first half of the last axis
    for image in (images[0], images[2]):
        assert image[0, :, :3].mean() > 0.9 and image[0, :, 5:].mean() < 0.1
    torch.testing.assert_close(images[0], images[2])
    torch.testing.assert_close(images[1], torch.full((3, 8, 8), 0.2))
    with pytest.raises(ValueError, match="no 'image' path"):
        load_image_tensors([{"label": 0}], 8)


def test_read_manifest_and_masks(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "synthetic_00000_000.png")
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:12, 4:12] = 255
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "m.png")
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "seed", "guidance_scale", "label", "label_name", "fitzpatrick", "mask"])
        writer.writerow(["synthetic_00000_000.png", 7, 3.0, 4, "mel", "", "masks/m.png"])
    (row,) = read_manifest(tmp_path)
    assert row["image"] == str(tmp_path / "synthetic_00000_000.png") and Path(row["image"]).is_absolute()
    assert (row["label"], row["seed"], row["fitzpatrick"], row["label_name"]) == (4, 7, None, "mel")
    masks = load_mask_tensors([row], image_dim=8)
    assert masks.shape == (1, 1, 8, 8) and set(masks.unique().tolist()) == {0.0, 1.0}
    assert masks.sum() == 16  # the 8x8 square of 16x16, halved

    (tmp_path / "synthetic_00000_000.png").unlink()
    with pytest.raises(FileNotFoundError, match="row 2"):
        read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="inferring"):
        read_manifest(tmp_path / "masks")


def test_skin_type_groups_from_metadata_and_ita() -> None:
    light = torch.tensor([0.95, 0.85, 0.8]).view(3, 1, 1).expand(3, 8, 8)
    dark = torch.tensor([0.25, 0.15, 0.1]).view(3, 1, 1).expand(3, 8, 8)
    types, source = fitzpatrick_types(
        [{"fitzpatrick": 5}, {"fitzpatrick": None}, {}], torch.stack([light, light, dark])
    )
    assert source == "metadata+ita" and types[0] == 5 and types[1] <= 2 and types[2] >= 5
    assert skin_type_groups([1, 2, 3, 4, 5, 6]) == ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI"]
    assert skin_type_groups([4, 6], grouping="type") == ["IV", "VI"]
    with pytest.raises(ValueError, match="1-6"):
        skin_type_groups([7])


def test_evaluate_predictions_worst_group_is_min_of_groups() -> None:
    y_true = [0, 0, 1, 1, 2, 2, 0, 1]
    y_pred = [0, 1, 1, 1, 2, 0, 0, 0]
    groups = ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI", "V-VI", "I-II"]
    probs = torch.nn.functional.one_hot(torch.tensor(y_pred), 4).float()
    result = evaluate_predictions(y_true, probs, groups, num_classes=4, class_names=["a", "b", "c", "d"])
    assert result["per_group_accuracy"] == pytest.approx({"I-II": 1 / 3, "III-IV": 1.0, "V-VI": 2 / 3})
    assert result["worst_group_accuracy"] == min(result["per_group_accuracy"].values())
    assert result["worst_group"] == "I-II" and result["group_counts"] == {"I-II": 3, "III-IV": 2, "V-VI": 3}
    assert result["group_gap"] == pytest.approx(1.0 - 1 / 3)  # best group minus worst
    assert result["per_class_recall"] == pytest.approx({"a": 2 / 3, "b": 2 / 3, "c": 0.5, "d": None})
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 0.5) / 3)
    assert "per_group_accuracy" not in evaluate_predictions(y_true, probs, None, 4)


def test_summarize_runs_interval_and_bounds() -> None:
    summary = summarize_runs([0.9, 0.95, float("nan"), None], bounds=(0.0, 1.0))
    assert summary["mean"] == pytest.approx(0.925) and summary["upper"] == 1.0 and summary["lower"] < 0.925
    assert summary["values"] == [0.9, 0.95, None, None]
    assert summarize_runs([0.5])["lower"] is None


def test_classifier_beats_chance_on_demo(demo_split: dict[str, list]) -> None:
    """Seven classes (chance 1/7): a few seconds of training reach a balanced accuracy above 0.3."""
    train, test = demo_split["train"], demo_split["test"]
    x_train, x_test = load_image_tensors(train, 32), load_image_tensors(test, 32)
    start = time.perf_counter()
    network = train_classifier(x_train, [r["label"] for r in train], 7, epochs=6, seed=0)
    elapsed = time.perf_counter() - start
    probs = predict(network, x_test)
    assert probs.shape == (len(test), 7) and torch.allclose(probs.sum(1), torch.ones(len(test)))
    groups = skin_type_groups(fitzpatrick_types(test, x_test)[0])
    result = evaluate_predictions([r["label"] for r in test], probs, groups, 7, HAM10000_CLASSES)
    assert result["balanced_accuracy"] > 0.3, (result, elapsed)
    # the same seed trains the same network, and leaves the global random state alone
    state = torch.random.get_rng_state()
    again = train_classifier(x_train[:40], [r["label"] for r in train[:40]], 7, epochs=1, seed=3, balance="sampler")
    twice = train_classifier(x_train[:40], [r["label"] for r in train[:40]], 7, epochs=1, seed=3, balance="sampler")
    torch.testing.assert_close(predict(again, x_test), predict(twice, x_test))
    assert torch.equal(state, torch.random.get_rng_state())


def _pattern_set(count: int, seed: int, informative: bool) -> ImageSet:
    """Three classes at 16 px: a bright square in the class's colour channel, or (not informative) noise only."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    images = 0.3 * torch.rand(count, 3, 16, 16, generator=generator)
    if informative:
        for i, label in enumerate(labels.tolist()):
            images[i, label, 4:12, 4:12] += 0.6
    groups = ["I-II" if i % 2 else "V-VI" for i in range(count)]
    return ImageSet(images.clamp(0, 1), labels, groups=groups)


def test_synthetic_only_worse_than_real_when_synthetic_carries_no_signal() -> None:
    real, test = _pattern_set(48, 0, informative=True), _pattern_set(30, 1, informative=True)
    synthetic = _pattern_set(48, 2, informative=False)
    result = compare_training_sets(
        real, synthetic, test, 3, ["r", "g", "b"], ratios=(0.0, 0.5), seeds=(0, 1), epochs=4, batch_size=16, lr=3e-3
    )
    by_name = {c["name"]: c for c in result["conditions"]}
    assert list(by_name) == ["real", "synthetic", "real+synthetic x0.5"]
    assert (by_name["real+synthetic x0.5"]["num_real"], by_name["real+synthetic x0.5"]["num_synthetic"]) == (48, 24)
    assert by_name["synthetic"]["num_synthetic"] == 48 and by_name["synthetic"]["num_real"] == 0
    real_score = by_name["real"]["balanced_accuracy"]
    assert real_score["mean"] > 0.8 and by_name["synthetic"]["balanced_accuracy"]["mean"] < real_score["mean"] - 0.2
    for condition in result["conditions"]:
        assert len(condition["runs"]) == 2 and condition["balanced_accuracy"]["lower"] is not None
        for run in condition["runs"]:
            assert run["worst_group_accuracy"] == min(run["per_group_accuracy"].values())
    assert result["test"]["group_counts"] == {"I-II": 15, "V-VI": 15}
    # each condition's difference to real is paired by seed; the synthetic-only one is a loss the seeds bear out
    for condition in result["conditions"]:
        for key in ("balanced_accuracy", "worst_group_accuracy", "group_gap"):
            paired = [r[key] - real[key] for r, real in zip(condition["runs"], by_name["real"]["runs"], strict=True)]
            assert condition["difference_to_real"][key]["values"] == pytest.approx(paired)
    assert by_name["real"]["difference_to_real"]["balanced_accuracy"]["values"] == [0.0, 0.0]
    assert by_name["synthetic"]["difference_to_real"]["balanced_accuracy"]["upper"] < 0
    with pytest.raises(ValueError, match="groups"):
        compare_training_sets(real, synthetic, ImageSet(test.images, test.labels), 3, seeds=(0,))


def test_segmentation_comparison_on_demo_masks(demo_split: dict[str, list]) -> None:
    """The paired-generation bundle comes later: real demo masks stand in for the synthetic pairs."""
    train, test = demo_split["train"][:60], demo_split["test"][:30]
    real = ImageSet(load_image_tensors(train[:40], 32), masks=load_mask_tensors(train[:40], 32))
    fake = ImageSet(load_image_tensors(train[40:], 32), masks=load_mask_tensors(train[40:], 32))
    real_test = ImageSet(load_image_tensors(test, 32), masks=load_mask_tensors(test, 32))
    result = compare_segmentation(real, fake, real_test, ratios=(0.5,), seeds=(0, 1), epochs=2)
    assert [c["name"] for c in result["conditions"]] == ["real", "real+synthetic x0.5"]
    assert [c["num_synthetic"] for c in result["conditions"]] == [0, 20]
    for condition in result["conditions"]:
        for key in ("dice", "iou", "threshold_jaccard"):
            assert 0.0 <= condition[key]["mean"] <= 1.0
        assert condition["dice"]["mean"] >= condition["iou"]["mean"]


def test_evaluate_segmentation_by_hand() -> None:
    true = torch.zeros(2, 1, 4, 4)
    true[0, 0, :2] = 1  # 8 pixels
    pred = true.clone()
    pred[0, 0, 2, :2] = 1  # 2 false positives: Dice 16/18, IoU 8/10
    result = evaluate_segmentation(pred, true)  # the second pair is empty on both sides: 1, 1
    assert result["dice"] == pytest.approx((16 / 18 + 1) / 2) and result["iou"] == pytest.approx((0.8 + 1) / 2)
    assert result["threshold_jaccard"] == pytest.approx((0.8 + 1) / 2)
    assert default_classifier(7, 16)(torch.rand(2, 3, 16, 16)).shape == (2, 7)


def test_requested_fitzpatrick_one_type_a_pair_none_and_bad() -> None:
    assert requested_fitzpatrick({"fitzpatrick": 4, "fitzpatrick_types": "5-6"}) == [4]
    assert requested_fitzpatrick({"fitzpatrick": "", "fitzpatrick_types": "5-6"}) == [5, 6]
    assert requested_fitzpatrick({"caption": "a lesion"}) == []
    with pytest.raises(ValueError, match="'7'"):
        requested_fitzpatrick({"fitzpatrick": 7})
    with pytest.raises(ValueError, match="'dark'"):
        requested_fitzpatrick({"fitzpatrick_types": "dark"})
