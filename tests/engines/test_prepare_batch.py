from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from monai_lesiongen.engines import ConditionedDiffusionPrepareBatch


def _batch(size: int = 8) -> dict:
    return {
        "image": torch.rand(size, 3, 8, 8) * 2 - 1,
        "caption": [f"dermoscopy image of melanoma number {i}" for i in range(size)],
        "label": torch.arange(size) % 7,
    }


def test_condition_dropout_rate_and_null_class() -> None:
    torch.manual_seed(0)
    prepare = ConditionedDiffusionPrepareBatch(100, class_key="label", num_classes=7, condition_dropout=0.1)
    dropped = total = 0
    for _ in range(400):
        batch = _batch()
        _, _, _, kwargs = prepare(batch)
        labels = kwargs["class_labels"]
        is_null = labels == 7
        assert torch.equal(labels[~is_null], batch["label"][~is_null])
        dropped += int(is_null.sum())
        total += labels.numel()
    assert abs(dropped / total - 0.1) < 0.02


def test_dropped_captions_get_the_null_context(text_encoder) -> None:
    torch.manual_seed(1)
    prepare = ConditionedDiffusionPrepareBatch(
        100, text_encoder=text_encoder, class_key="label", num_classes=7, condition_dropout=0.5
    )
    batch = _batch()
    images, target, args, kwargs = prepare(batch)
    null = text_encoder.null_context(1)[0]
    context = text_encoder.encode(batch["caption"])
    for i in range(len(images)):
        dropped = bool(kwargs["class_labels"][i] == 7)
        # text and class are dropped together, as classifier-free guidance needs
        assert torch.allclose(kwargs["condition"][i], null if dropped else context[i])
    assert 0 < int((kwargs["class_labels"] == 7).sum()) < len(images)
    assert torch.equal(target, kwargs["noise"])
    assert args == ()


def test_targets_for_each_prediction_type() -> None:
    scheduler = DDPMScheduler(100)
    batch = _batch()
    torch.manual_seed(2)
    images, target, _, kwargs = ConditionedDiffusionPrepareBatch(100, scheduler, "v_prediction")(batch)
    assert torch.allclose(target, scheduler.get_velocity(images, kwargs["noise"], kwargs["timesteps"]))
    _, target, _, _ = ConditionedDiffusionPrepareBatch(100, scheduler, "sample")(batch)
    assert torch.equal(target, batch["image"])
    assert "condition" not in kwargs and "class_labels" not in kwargs


def test_noise_offset_shifts_channel_means() -> None:
    torch.manual_seed(3)
    images = torch.zeros(256, 3, 16, 16)
    plain = ConditionedDiffusionPrepareBatch(100).get_noise(images).mean(dim=(2, 3))
    offset = ConditionedDiffusionPrepareBatch(100, noise_offset=0.5).get_noise(images).mean(dim=(2, 3))
    assert offset.std() > 3 * plain.std()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="v_prediction"):
        ConditionedDiffusionPrepareBatch(100, prediction_type="v_prediction")
    with pytest.raises(ValueError, match="num_classes"):
        ConditionedDiffusionPrepareBatch(100, class_key="label")
    with pytest.raises(ValueError, match="condition_dropout"):
        ConditionedDiffusionPrepareBatch(100, condition_dropout=1.5)
    with pytest.raises(KeyError, match="caption"):
        ConditionedDiffusionPrepareBatch(100, text_encoder=object())({"image": torch.zeros(1, 3, 4, 4)})  # type: ignore
