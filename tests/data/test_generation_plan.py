from __future__ import annotations

import pytest

from monai_lesiongen.data import HAM10000_CLASSES, check_plan_rows, condition_grid_plan, select_plan


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


def test_select_plan_takes_one_source(tmp_path) -> None:
    grid = select_plan(HAM10000_CLASSES, fitzpatrick_types=[2])
    assert grid == condition_grid_plan(HAM10000_CLASSES, [2])
    rows = select_plan(HAM10000_CLASSES, plan_rows=[{"label_name": "mel", "count": 2}])
    assert rows == [{"label_name": "mel", "count": 2, "label": 4}]
    path = tmp_path / "plan.csv"
    path.write_text("diagnosis,fitzpatrick,count\nnv,5,3\n", encoding="utf-8")
    assert select_plan(HAM10000_CLASSES, lambda row: "a nevus", plan_csv=path) == [
        {"fitzpatrick": 5, "count": 3, "label_name": "nv", "label": 5, "caption": "a nevus"}
    ]
    records = [{"id": f"r{k}", "label_name": "nv", "fitzpatrick": 1} for k in range(3)]
    gaps = select_plan(("mel", "nv"), plan_gaps={"mode": "top_up", "target": 3}, gap_records=records)
    assert {(row["gap_cell"], row["fitzpatrick"]): row["count"] for row in gaps} == {
        ("mel/lighter", 1): 2, ("mel/lighter", 2): 1, ("mel/brown", 3): 2, ("mel/brown", 4): 1,
        ("mel/darker", 5): 2, ("mel/darker", 6): 1, ("nv/brown", 3): 2, ("nv/brown", 4): 1,
        ("nv/darker", 5): 2, ("nv/darker", 6): 1,
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"one plan source, not \['plan_rows', 'plan_gaps'\]"):
        select_plan(HAM10000_CLASSES, plan_rows=[{"label_name": "mel"}], plan_gaps={"mode": "uniform"})
    with pytest.raises(ValueError, match=r"'plan_gaps' keys \['goal'\] are unknown"):
        select_plan(HAM10000_CLASSES, plan_gaps={"mode": "top_up", "goal": 3}, gap_records=records)
