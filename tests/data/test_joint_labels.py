from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_lesiongen.data.joint_labels import JointLabelEncoder, skin_group_of_fitzpatrick
from monai_lesiongen.engines import ConditionedDiffusionPrepareBatch


def test_encoding_round_trips_and_groups_follow_fitzpatrick() -> None:
    encoder = JointLabelEncoder()
    assert (encoder.num_joint_labels, encoder.null_label) == (21, 21)
    joint = encoder.encode(torch.arange(7).repeat(3), torch.arange(3).repeat_interleave(7))
    assert torch.equal(joint, torch.arange(21))
    assert torch.equal(encoder.diagnosis_of(joint), torch.arange(7).repeat(3))
    assert torch.equal(encoder.group_of(joint), torch.arange(3).repeat_interleave(7))
    assert [skin_group_of_fitzpatrick(f) for f in range(1, 7)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="Fitzpatrick"):
        skin_group_of_fitzpatrick(7)


def test_records_get_joint_labels_and_missing_skin_types_are_estimated(tmp_path: Path) -> None:
    dark = tmp_path / "dark.png"
    Image.fromarray(np.full((16, 16, 3), (60, 40, 30), dtype=np.uint8)).save(dark)
    encoder = JointLabelEncoder()
    records = [
        {"id": "a", "image": "unused.png", "label": 4, "fitzpatrick": 2},
        {"id": "b", "image": str(dark), "label": 1},
    ]
    labelled = encoder.label_records(records)
    assert [r["joint_label"] for r in labelled] == [4, 2 * 7 + 1]
    assert [r["skin_group_name"] for r in labelled] == ["lighter", "darker"]
    assert labelled[1]["fitzpatrick_estimated"] and "fitzpatrick" not in records[1]
    with pytest.raises(ValueError, match="estimate_missing"):
        encoder.label_records(records[1:], estimate_missing=False)


def test_plan_can_ask_for_the_rare_skin_type_only() -> None:
    encoder = JointLabelEncoder()
    rows = encoder.plan(["darker"])
    assert [r["label"] for r in rows] == list(range(14, 21))
    assert {r["skin_group"] for r in rows} == {"darker"} and rows[4]["label_name"] == "mel"
    assert len(encoder.plan()) == 21
    with pytest.raises(ValueError, match="darkest"):
        encoder.plan(["darkest"])


def test_label_dropout_drops_diagnosis_and_skin_type_together_at_the_set_rate() -> None:
    encoder = JointLabelEncoder()
    prepare = ConditionedDiffusionPrepareBatch(
        100, class_key="joint_label", num_classes=encoder.num_joint_labels, condition_dropout=0.1
    )
    torch.manual_seed(0)
    joint = torch.randint(0, 21, (20000,))
    labels = prepare({"image": torch.zeros(20000, 1, 1, 1), "joint_label": joint})[3]["class_labels"]
    dropped = labels == encoder.null_label
    assert abs(float(dropped.float().mean()) - 0.1) < 0.01
    assert torch.equal(labels[~dropped], joint[~dropped])  # kept samples keep both diagnosis and skin type


def test_relabel_plan_gives_gap_and_csv_rows_their_joint_label() -> None:
    encoder = JointLabelEncoder()
    rows = encoder.relabel_plan([{"label": 4, "skin_group": "darker", "count": 3}, {"label": 1, "fitzpatrick": 3}])
    assert [(r["label"], r["diagnosis_label"], r["skin_group"]) for r in rows] == [(18, 4, "darker"), (8, 1, "brown")]
    assert rows[0]["count"] == 3
    with pytest.raises(ValueError, match="row 1 has no diagnosis"):
        encoder.relabel_plan([{"label": 0, "fitzpatrick": 1}, {"caption": "a mole", "fitzpatrick": 2}])
    with pytest.raises(ValueError, match="row 0 has no skin type"):
        encoder.relabel_plan([{"label": 0}])
    with pytest.raises(ValueError, match="unknown skin-type group 'dark'"):
        encoder.relabel_plan([{"label": 0, "skin_group": "dark"}])
