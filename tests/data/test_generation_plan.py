from __future__ import annotations

import pytest

from monai_lesiongen.data import HAM10000_CLASSES, check_plan_rows, condition_grid_plan


def test_plan_crosses_classes_and_skin_types_with_captions() -> None:
    plan = condition_grid_plan(
        HAM10000_CLASSES, [1, 6], caption_builder=lambda row: f"{row['label_name']} F{row['fitzpatrick']}"
    )
    assert len(plan) == 14
    assert [row["label_name"] for row in plan[:7]] == list(HAM10000_CLASSES)  # one skin type per grid row
    assert {row["fitzpatrick"] for row in plan[:7]} == {1} and {row["fitzpatrick"] for row in plan[7:]} == {6}
    assert plan[11]["caption"] == "mel F6" and plan[11]["label"] == 4


def test_selected_classes_keep_their_labels() -> None:
    plan = condition_grid_plan(HAM10000_CLASSES, None, selected_classes=["nv", "bcc"], extra_fields={"site": "back"})
    assert [(row["label"], row["label_name"]) for row in plan] == [(1, "bcc"), (5, "nv")]
    assert all(row["site"] == "back" and "fitzpatrick" not in row and "caption" not in row for row in plan)


def test_bad_plans_are_named() -> None:
    with pytest.raises(ValueError, match="1-6"):
        condition_grid_plan(HAM10000_CLASSES, [7])
    with pytest.raises(ValueError, match="xyz"):
        condition_grid_plan(HAM10000_CLASSES, selected_classes=["xyz"])
    with pytest.raises(ValueError, match="empty"):
        condition_grid_plan([])


def test_hand_written_plan_rows_are_checked_against_the_classes() -> None:
    rows = check_plan_rows(
        [{"caption": "a mole", "label_name": "nv", "fitzpatrick": 6}, {"caption": "a lesion"}], ["mel", "nv"]
    )
    assert rows[0]["label"] == 1 and "label" not in rows[1]
    with pytest.raises(ValueError, match=r"row 1: unknown diagnosis 'melanoma'; valid ones: \['mel', 'nv'\]"):
        check_plan_rows([{"label_name": "mel"}, {"label_name": "melanoma"}], ["mel", "nv"])
    with pytest.raises(ValueError, match=r"unknown Fitzpatrick skin type 7; valid ones: \[1, 2, 3, 4, 5, 6\]"):
        check_plan_rows([{"label_name": "mel", "fitzpatrick": 7}], ["mel", "nv"])
    with pytest.raises(ValueError, match="label 1 is 'nv' but label_name is 'mel'"):
        check_plan_rows([{"label_name": "mel", "label": 1}], ["mel", "nv"])
    with pytest.raises(ValueError, match="neither a caption nor a label_name"):
        check_plan_rows([{"caption": " "}], ["mel", "nv"])
    with pytest.raises(ValueError, match="'plan_rows' is empty"):
        check_plan_rows([], ["mel", "nv"])
