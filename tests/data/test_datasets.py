from __future__ import annotations

import csv
from pathlib import Path

import pytest

from monai_lesiongen.data import DatasetFormatError, load_records, load_split, to_datalist


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    load_records("demo", folder, demo_kwargs={"num_images": 40, "image_size": 16, "seed": 1, "progress": False})
    return folder


def test_demo_is_written_on_first_use_and_read_back(demo_dir: Path) -> None:
    records = load_records("demo", demo_dir)
    assert len(records) == 40
    assert all(r["source"] == "demo" and r["mask"] and r["fitzpatrick"] in range(1, 7) for r in records)


def test_splits_partition_without_lesion_leaks(demo_dir: Path) -> None:
    splits = {name: load_split("demo", demo_dir, name, seed=3) for name in ("train", "valid", "test")}
    ids = [r["id"] for part in splits.values() for r in part]
    assert sorted(ids) == sorted(r["id"] for r in load_records("demo", demo_dir))
    groups = [{r["group_id"] for r in part} for part in splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_datalist_leaves_out_missing_values() -> None:
    record = {"id": "a", "image": "a.jpg", "mask": None, "age": None, "label": 2}
    assert to_datalist([record]) == [{"id": "a", "image": "a.jpg", "label": 2}]  # type: ignore[list-item]


def test_bad_rows_raise_or_are_skipped_and_listed(demo_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ham"
    copy.mkdir()
    for item in demo_dir.iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "HAM10000_metadata.csv").unlink()
    rows = list(csv.DictReader(open(demo_dir / "HAM10000_metadata.csv")))
    rows[3]["dx"] = "tumour"
    with open(copy / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DatasetFormatError, match=r"row 5.*'dx'"):
        load_records("ham10000", copy)
    records = load_records("ham10000", copy, on_error="skip")
    assert len(records) == 39
    assert "tumour" in (copy / "skipped.txt").read_text()
    for row in rows:
        row["dx"] = "tumour"
    with open(copy / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match=r"every row was skipped \(40, listed in .*skipped.txt\)"):
        load_records("ham10000", copy, on_error="skip")


def test_unknown_dataset_and_missing_folder() -> None:
    with pytest.raises(ValueError, match="ham10000"):
        load_records("imagenet", "/nowhere")
    with pytest.raises(FileNotFoundError, match="dataset_dir"):
        load_records("ham10000", "/nowhere/at/all")
