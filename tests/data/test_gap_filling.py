"""Gap-filling plans on a constructed record list: exact counts per cell for each mode."""

from __future__ import annotations

from collections import Counter

import pytest

from monai_lesiongen.data.gap_filling import cell_targets, count_cells, gap_filling_plan

CLASSES = ("bcc", "mel", "nv")
GROUPS = {"lighter": (1, 2), "darker": (5, 6)}


def _records(counts: dict[tuple[str, int], int]) -> list[dict]:
    records = []
    for (code, skin_type), n in counts.items():
        for k in range(n):
            records.append({"id": f"{code}_{skin_type}_{k}", "label_name": code, "fitzpatrick": skin_type})
    return records


# real cells: bcc/lighter 3, bcc/darker 1, mel/lighter 4, mel/darker 0, nv/lighter 10, nv/darker 2
RECORDS = _records({("bcc", 1): 2, ("bcc", 2): 1, ("bcc", 6): 1, ("mel", 1): 4, ("nv", 2): 10, ("nv", 5): 2})


def _per_cell(rows: list[dict]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts[row["gap_cell"]] += row["count"]
    return dict(counts)


def test_count_cells_lists_every_cell_and_type() -> None:
    counts = count_cells(RECORDS, CLASSES, GROUPS, estimate_missing=False)
    assert len(counts) == 6
    assert counts[("bcc", "lighter")] == {1: 2, 2: 1}
    assert counts[("mel", "darker")] == {5: 0, 6: 0}
    assert counts[("nv", "darker")] == {5: 2, 6: 0}


def test_uniform_brings_every_cell_to_the_largest() -> None:
    rows = gap_filling_plan(RECORDS, CLASSES, "uniform", groups=GROUPS, estimate_missing=False)
    assert _per_cell(rows) == {"bcc/lighter": 7, "bcc/darker": 9, "mel/lighter": 6, "mel/darker": 10, "nv/darker": 8}
    assert all(row["cell_target_count"] == 10 for row in rows)
    # a cell's images go to its types so that real + synthetic end as even as possible
    nv_darker = {row["fitzpatrick"]: row["count"] for row in rows if row["gap_cell"] == "nv/darker"}
    assert nv_darker == {5: 3, 6: 5}
    bcc_lighter = {row["fitzpatrick"]: row["count"] for row in rows if row["gap_cell"] == "bcc/lighter"}
    assert bcc_lighter == {1: 3, 2: 4}
    row = next(r for r in rows if r["gap_cell"] == "mel/darker")
    assert (row["label"], row["label_name"], row["skin_group"], row["cell_real_count"]) == (1, "mel", "darker", 0)


def test_top_up_leaves_full_cells_alone() -> None:
    rows = gap_filling_plan(RECORDS, CLASSES, "top_up", target=4, groups=GROUPS, estimate_missing=False)
    assert _per_cell(rows) == {"bcc/lighter": 1, "bcc/darker": 3, "mel/darker": 4, "nv/darker": 2}
    assert {row["fitzpatrick"]: row["count"] for row in rows if row["gap_cell"] == "nv/darker"} == {6: 2}


def test_match_a_reference_over_groups_keeps_the_diagnosis_mix() -> None:
    # the data: 20 images, diagnosis shares bcc 4/20, mel 4/20, nv 12/20; reference: half the images on darker skin
    rows = gap_filling_plan(
        RECORDS, CLASSES, "match", reference={"lighter": 1, "darker": 1}, groups=GROUPS, estimate_missing=False
    )
    # the smallest total keeping every real image is set by mel/lighter: 4 = T * 0.5 * 0.2, T = 40
    targets = {row["gap_cell"]: row["cell_target_count"] for row in rows}
    assert targets == {"bcc/lighter": 4, "bcc/darker": 4, "mel/darker": 4, "nv/lighter": 12, "nv/darker": 12}
    assert _per_cell(rows) == {"bcc/lighter": 1, "bcc/darker": 3, "mel/darker": 4, "nv/lighter": 2, "nv/darker": 10}
    # a reference over diagnoses keeps the data's skin-type mix (17 lighter : 3 darker); nv/darker sets T = 40
    rows = gap_filling_plan(
        RECORDS, CLASSES, "match", reference={"bcc": 1, "mel": 1, "nv": 1}, groups=GROUPS, estimate_missing=False
    )
    assert _per_cell(rows) == {"bcc/lighter": 9, "bcc/darker": 1, "mel/lighter": 8, "mel/darker": 2, "nv/lighter": 2}


def test_match_cells_with_a_total() -> None:
    totals = {("bcc", "lighter"): 3, ("bcc", "darker"): 1}
    assert cell_targets(totals, "match", reference={"bcc/lighter": 1, "bcc/darker": 3}) == {
        ("bcc", "lighter"): 3,
        ("bcc", "darker"): 9,
    }
    assert cell_targets(totals, "match", target=20, reference={"bcc/lighter": 1, "bcc/darker": 3}) == {
        ("bcc", "lighter"): 5,
        ("bcc", "darker"): 15,
    }
    with pytest.raises(ValueError, match="smallest total that keeps every real image is 12"):
        cell_targets(totals, "match", target=8, reference={"bcc/lighter": 1, "bcc/darker": 3})
    # a cell without a share keeps its real images and gets none
    assert cell_targets(totals, "match", reference={"bcc/darker": 1}) == {("bcc", "lighter"): 3, ("bcc", "darker"): 1}


def test_captions_and_extra_fields_reach_the_rows() -> None:
    rows = gap_filling_plan(
        RECORDS,
        CLASSES,
        "top_up",
        target=2,
        groups=GROUPS,
        caption_builder=lambda row: f"{row['label_name']} on type {row['fitzpatrick']}",
        extra_fields={"site": "back"},
        estimate_missing=False,
    )
    assert [row["caption"] for row in rows] == ["bcc on type 5", "mel on type 5", "mel on type 6"]
    assert all(row["site"] == "back" for row in rows)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="one of"):
        gap_filling_plan(RECORDS, CLASSES, "balanced", groups=GROUPS, estimate_missing=False)
    with pytest.raises(ValueError, match="needs a target"):
        gap_filling_plan(RECORDS, CLASSES, "top_up", groups=GROUPS, estimate_missing=False)
    with pytest.raises(ValueError, match="give no target"):
        gap_filling_plan(RECORDS, CLASSES, "uniform", target=3, groups=GROUPS, estimate_missing=False)
    with pytest.raises(ValueError, match="needs a reference"):
        gap_filling_plan(RECORDS, CLASSES, "match", groups=GROUPS, estimate_missing=False)
    with pytest.raises(ValueError, match="must all be cells"):
        gap_filling_plan(RECORDS, CLASSES, "match", reference={"mel": 1, "darker": 1}, groups=GROUPS)
    with pytest.raises(ValueError, match="nothing to generate"):
        gap_filling_plan(RECORDS, CLASSES, "top_up", target=0, groups=GROUPS, estimate_missing=False)
    with pytest.raises(ValueError, match="'akiec'"):
        gap_filling_plan([{"id": "x", "label_name": "akiec", "fitzpatrick": 1}], CLASSES, groups=GROUPS)
    with pytest.raises(ValueError, match="'x' has no 'fitzpatrick'"):
        gap_filling_plan(
            [{"id": "x", "label_name": "mel", "label": 1, "fitzpatrick": None}],
            CLASSES,
            groups=GROUPS,
            estimate_missing=False,
        )
