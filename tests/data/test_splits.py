"""Tests of `split_records` and `check_no_group_leak`: whole groups per split, stratified, deterministic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from monai_lesiongen.data.readers import read_derm7pt
from monai_lesiongen.data.records import LesionRecord
from monai_lesiongen.data.splits import SPLIT_NAMES, check_no_group_leak, split_records


def record(index: int, group: str, label: int, split: str | None = None) -> LesionRecord:
    return LesionRecord(
        id=f"img{index:03d}",
        image=f"/data/img{index:03d}.jpg",
        mask=None,
        label=label,
        label_name=str(label),
        concepts={},
        fitzpatrick=None,
        age=None,
        sex=None,
        site=None,
        source="test",
        group_id=group,
        split=split,
    )


def dataset(num_groups: int = 40) -> list[LesionRecord]:
    """60 records in 40 groups: label 0 in 20 one-image groups, labels 1 and 2 in 10 two-image groups each."""
    records: list[LesionRecord] = []
    for g in range(num_groups):
        label = 0 if g % 2 == 0 else (1 if g % 4 == 1 else 2)
        for _ in range(2 if g % 2 else 1):
            records.append(record(len(records), f"lesion{g}", label))
    return records


def ids(splits: dict[str, list[LesionRecord]]) -> dict[str, list[str]]:
    return {name: [r["id"] for r in records] for name, records in splits.items()}


def test_dataset_shape() -> None:
    records = dataset()
    groups = {r["group_id"]: r["label"] for r in records}
    assert len(records) == 60 and len(groups) == 40
    assert Counter(groups.values()) == {0: 20, 1: 10, 2: 10}


def test_groups_not_leaked_and_all_records_kept() -> None:
    records = dataset()
    for stratify in (True, False):
        splits = split_records(records, seed=3, stratify=stratify)
        assert list(splits) == list(SPLIT_NAMES)
        check_no_group_leak(splits)
        assert sorted(r["id"] for s in splits.values() for r in s) == sorted(r["id"] for r in records)
        groups_per_split = [{r["group_id"] for r in splits[name]} for name in SPLIT_NAMES]
        assert not (groups_per_split[0] & groups_per_split[1] or groups_per_split[0] & groups_per_split[2])
        assert not groups_per_split[1] & groups_per_split[2]


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    records = dataset()
    assert ids(split_records(records, seed=0)) == ids(split_records(list(records), seed=0))
    assert ids(split_records(records, seed=0)) != ids(split_records(records, seed=1))


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.5, 0.0)])
def test_fractions_respected(fractions: tuple[float, float, float]) -> None:
    records = dataset()
    for seed in range(5):
        splits = split_records(records, fractions=fractions, seed=seed)
        for name, fraction in zip(SPLIT_NAMES, fractions, strict=True):
            assert abs(len(splits[name]) / len(records) - fraction) <= 0.05, (seed, name, len(splits[name]))
    assert split_records(records, fractions=(0.5, 0.5, 0.0))["test"] == []


def test_stratified_by_label() -> None:
    records = dataset()
    for seed in range(5):
        splits = split_records(records, fractions=(0.6, 0.2, 0.2), seed=seed)
        for label, count in Counter(r["label"] for r in records).items():
            for name, fraction in zip(SPLIT_NAMES, (0.6, 0.2, 0.2), strict=True):
                share = sum(r["label"] == label for r in splits[name]) / count
                assert abs(share - fraction) <= 0.1, (seed, label, name, share)


def test_official_split_used(derm7pt_root: Path) -> None:
    records = read_derm7pt(derm7pt_root)
    splits = split_records(records, fractions=(0.34, 0.33, 0.33), seed=5)
    assert ids(splits) == {"train": ["1", "3"], "valid": ["2"], "test": ["4"]}
    records[1]["split"] = None
    assert ids(split_records(records, seed=5)) != {"train": ["1", "3"], "valid": ["2"], "test": ["4"]}


def test_invalid_official_split_and_fractions() -> None:
    with pytest.raises(ValueError, match="'validation'.*one of"):
        split_records([record(0, "a", 0, "train"), record(1, "b", 0, "validation")])
    with pytest.raises(ValueError, match="sum to 1"):
        split_records(dataset(), fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="3 non-negative"):
        split_records(dataset(), fractions=(0.9, 0.1))
    assert split_records([]) == {"train": [], "valid": [], "test": []}


def test_check_no_group_leak_names_group() -> None:
    splits = {"train": [record(0, "lesion7", 0)], "valid": [record(1, "lesion8", 0)], "test": [record(2, "lesion7", 1)]}
    with pytest.raises(ValueError, match="group 'lesion7' leaks.*'train' and 'test'"):
        check_no_group_leak(splits)
