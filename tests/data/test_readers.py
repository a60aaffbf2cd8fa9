"""Tests of the dataset readers on tiny data sets written in each official layout (see conftest.py)."""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from reader_helpers import edit, where

from monai_lesiongen.data.readers import (
    DDI_CLASSES,
    DERM7PT_DIAGNOSES,
    HAM10000_CLASSES,
    ISIC2019_CLASSES,
    PAD_UFES20_CLASSES,
    READERS,
    fitzpatrick17k_classes,
    read_dataset,
    read_ddi,
    read_derm7pt,
    read_fitzpatrick17k,
    read_ham10000,
    read_isic2018_task1,
    read_isic2018_task3,
    read_isic2019,
    read_pad_ufes20,
)
from monai_lesiongen.data.records import RECORD_KEYS, DatasetFormatError, SkipReport

# reader name, fixture, the main CSV (or folder), one image of the fixture, number of records
CASES = [
    ("ham10000", "ham_root", "HAM10000_metadata.csv", "HAM10000_images_part_2/ISIC_0026769.jpg", 3),
    (
        "isic2018_task1",
        "isic_task1_root",
        "ISIC2018_Task1_Training_GroundTruth",
        "ISIC2018_Task1-2_Training_Input/ISIC_0000001.jpg",
        2,
    ),
    (
        "isic2018_task3",
        "isic_task3_root",
        "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
        "ISIC2018_Task3_Training_Input/ISIC_0024310.jpg",
        3,
    ),
    ("isic2019", "isic2019_root", "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Input/ISIC_0073247.jpg", 3),
    ("derm7pt", "derm7pt_root", "meta/meta.csv", "images/NEL/Nel029.jpg", 4),
    (
        "fitzpatrick17k",
        "fitzpatrick17k_root",
        "fitzpatrick17k.csv",
        "images/d2bac3c9e4499032ca8e9b07c7d3bc40.jpg",
        3,
    ),
    ("ddi", "ddi_root", "ddi_metadata.csv", "000003.png", 3),
    ("pad_ufes20", "pad_root", "metadata.csv", "images/imgs_part_2/PAT_46_882_940.png", 3),
]
CASE_IDS = [c[0] for c in CASES]


def add_columns(path: Path, columns: dict[str, list[str]]) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[0] += list(columns)
    for i, row in enumerate(rows[1:]):
        row += [values[i] for values in columns.values()]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def drop_column(path: Path, column: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    index = rows[0].index(column)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([r[:index] + r[index + 1 :] for r in rows])


def test_readers_registry() -> None:
    assert set(READERS) == set(CASE_IDS)
    with pytest.raises(ValueError, match="unknown dataset 'ham'.*ham10000"):
        read_dataset("ham", ".")


@pytest.mark.parametrize("name, fixture, main, image, count", CASES, ids=CASE_IDS)
def test_records_complete(
    name: str, fixture: str, main: str, image: str, count: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    records = read_dataset(name, root)
    assert len(records) == count
    assert len({r["id"] for r in records}) == count
    for record in records:
        assert tuple(record) == RECORD_KEYS
        assert Path(record["image"]).is_absolute() and Path(record["image"]).is_file()
        assert record["source"] == name
        assert isinstance(record["label"], int) and isinstance(record["concepts"], dict)
    assert str((root / image).resolve()) in {r["image"] for r in records}


@pytest.mark.parametrize("name, fixture, main, image, count", CASES, ids=CASE_IDS)
def test_unreadable_image(
    name: str, fixture: str, main: str, image: str, count: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    (root / image).write_bytes(b"this is not an image")
    with pytest.raises(DatasetFormatError, match=f"cannot read image file .*{re.escape(Path(image).name)}"):
        read_dataset(name, root)
    report = SkipReport()
    records = read_dataset(name, root, on_error="skip", report=report)
    assert len(report) == 1 and len(records) == count - 1
    assert str((root / image).resolve()) not in {r["image"] for r in records}
    assert len(read_dataset(name, root, check_images=False)) == count


@pytest.mark.parametrize("name, fixture, main, image, count", CASES, ids=CASE_IDS)
def test_missing_image(
    name: str, fixture: str, main: str, image: str, count: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    (root / image).unlink()
    with pytest.raises(DatasetFormatError, match=re.escape(Path(image).stem)):
        read_dataset(name, root)
    report = SkipReport()
    assert len(read_dataset(name, root, on_error="skip", report=report)) == count - 1
    assert len(report) == 1


@pytest.mark.parametrize("name, fixture, main, image, count", CASES, ids=CASE_IDS)
def test_missing_root_or_csv(
    name: str, fixture: str, main: str, image: str, count: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="no_such_folder.*expected"):
        read_dataset(name, tmp_path / "no_such_folder")
    root = request.getfixturevalue(fixture)
    target = root / main
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(FileNotFoundError, match=f"{re.escape(Path(main).name)}.*expected"):
        read_dataset(name, root)


def test_skip_needs_report(ham_root: Path) -> None:
    with pytest.raises(ValueError, match="SkipReport"):
        read_ham10000(ham_root, on_error="skip")


# HAM10000


def test_ham10000_records(ham_root: Path) -> None:
    records = read_ham10000(ham_root)
    base = ham_root.resolve()
    common: dict[str, Any] = {"concepts": {}, "fitzpatrick": None, "source": "ham10000", "split": None}
    assert records == [
        {
            "id": "ISIC_0027419",
            "image": str(base / "HAM10000_images_part_1" / "ISIC_0027419.jpg"),
            "mask": str(base / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0027419_segmentation.png"),
            "label": HAM10000_CLASSES.index("bkl"),
            "label_name": "bkl",
            "age": 80.0,
            "sex": "male",
            "site": "scalp",
            "group_id": "HAM_0000118",
            **common,
        },
        {
            "id": "ISIC_0025030",
            "image": str(base / "HAM10000_images_part_1" / "ISIC_0025030.jpg"),
            "mask": None,
            "label": 2,
            "label_name": "bkl",
            "age": 80.0,
            "sex": "male",
            "site": "scalp",
            "group_id": "HAM_0000118",
            **common,
        },
        {
            "id": "ISIC_0026769",
            "image": str(base / "HAM10000_images_part_2" / "ISIC_0026769.jpg"),
            "mask": None,
            "label": 4,
            "label_name": "mel",
            "age": None,
            "sex": None,
            "site": None,
            "group_id": "HAM_0002730",
            **common,
        },
    ]


def test_ham10000_alternative_folders(ham_root: Path) -> None:
    (ham_root / "HAM10000_images_part_1").rename(ham_root / "images")
    (ham_root / "HAM10000_segmentations_lesion_tschandl").rename(ham_root / "masks")
    shutil.move(ham_root / "HAM10000_images_part_2" / "ISIC_0026769.jpg", ham_root / "ISIC_0026769.jpg")
    records = read_ham10000(ham_root)
    assert [Path(r["image"]).parent.name for r in records] == ["images", "images", ham_root.name]
    assert records[0]["mask"] == str((ham_root / "masks" / "ISIC_0027419_segmentation.png").resolve())


def test_ham10000_demo_columns(ham_root: Path) -> None:
    add_columns(
        ham_root / "HAM10000_metadata.csv",
        {"fitzpatrick": ["2", "", "6"], "pigment_network": ["atypical", "", "typical"], "streaks": ["", "", "absent"]},
    )
    records = read_ham10000(ham_root)
    assert [r["fitzpatrick"] for r in records] == [2, None, 6]
    assert [r["concepts"] for r in records] == [
        {"pigment_network": "atypical"},
        {},
        {"pigment_network": "typical", "streaks": "absent"},
    ]


@pytest.mark.parametrize(
    "column, values, row",
    [("pigment_network", ["atypical", "wavy", ""], 3), ("fitzpatrick", ["2", "", "7"], 4)],
    ids=["concept", "fitzpatrick"],
)
def test_ham10000_bad_demo_value(ham_root: Path, column: str, values: list[str], row: int) -> None:
    add_columns(ham_root / "HAM10000_metadata.csv", {column: values})
    with pytest.raises(DatasetFormatError, match=where("HAM10000_metadata.csv", row, column)):
        read_ham10000(ham_root)


def _garbage(root: Path) -> None:
    (root / "HAM10000_images_part_2" / "ISIC_0026769.jpg").write_bytes(b"\x00garbage")


def _small_mask(root: Path) -> None:
    Image.new("L", (16, 8)).save(root / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0027419_segmentation.png")


@pytest.mark.parametrize(
    "mutate, row, field, message, kept",
    [
        (lambda r: edit(r / "HAM10000_metadata.csv", ",mel,", ",xyz,"), 4, "dx", "unknown diagnosis 'xyz'", 2),
        (
            lambda r: (r / "HAM10000_images_part_2" / "ISIC_0026769.jpg").unlink(),
            4,
            "image_id",
            "image ISIC_0026769.jpg not found",
            2,
        ),
        (_garbage, 4, "image_id", "cannot read image file .*ISIC_0026769.jpg", 2),
        (_small_mask, 2, "mask", "mask .*ISIC_0027419_segmentation.png is 16x8 but its image .* is 8x8", 2),
        (
            lambda r: edit(r / "HAM10000_metadata.csv", "ISIC_0025030", "ISIC_0027419"),
            3,
            "image_id",
            "duplicate image id 'ISIC_0027419' \\(first in row 2\\)",
            2,
        ),
        (lambda r: edit(r / "HAM10000_metadata.csv", "80.0,male", "old,male"), 2, "age", "age 'old'", 2),
        (lambda r: edit(r / "HAM10000_metadata.csv", "unknown,unknown", "x,unknown"), 4, "sex", "sex 'x'", 2),
    ],
    ids=["unknown_label", "missing_image", "unreadable_image", "mask_size", "duplicate_id", "bad_age", "bad_sex"],
)
def test_ham10000_bad_row(
    ham_root: Path, mutate: Callable[[Path], None], row: int, field: str, message: str, kept: int
) -> None:
    mutate(ham_root)
    with pytest.raises(DatasetFormatError, match=where("HAM10000_metadata.csv", row, field) + ": " + message):
        read_ham10000(ham_root)
    report = SkipReport()
    records = read_ham10000(ham_root, on_error="skip", report=report)
    assert len(report) == 1 and len(records) == kept
    assert re.search(where("HAM10000_metadata.csv", row, field), report.skipped[0])


def test_missing_column_cannot_be_skipped(ham_root: Path) -> None:
    drop_column(ham_root / "HAM10000_metadata.csv", "dx")
    with pytest.raises(DatasetFormatError, match=where("HAM10000_metadata.csv", 1, "dx") + ": missing column"):
        read_ham10000(ham_root, on_error="skip", report=SkipReport())


# ISIC 2018 / 2019


def test_isic2018_task1_records(isic_task1_root: Path) -> None:
    records = read_isic2018_task1(isic_task1_root)
    truth = isic_task1_root.resolve() / "ISIC2018_Task1_Training_GroundTruth"
    assert [r["id"] for r in records] == ["ISIC_0000000", "ISIC_0000001"]
    assert [r["mask"] for r in records] == [str(truth / f"ISIC_000000{i}_segmentation.png") for i in (0, 1)]
    assert {(r["label"], r["label_name"], r["group_id"] == r["id"], r["split"]) for r in records} == {
        (0, "lesion", True, None)
    }


def test_isic2018_task1_pairing(isic_task1_root: Path) -> None:
    truth = isic_task1_root / "ISIC2018_Task1_Training_GroundTruth"
    (truth / "ISIC_0000000_segmentation.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"ISIC_0000000\.jpg, field 'mask': image without its mask"):
        read_isic2018_task1(isic_task1_root)
    write = Image.new("L", (8, 8))
    write.save(truth / "ISIC_0000000_segmentation.png")
    write.save(truth / "ISIC_0000009_segmentation.png")
    with pytest.raises(DatasetFormatError, match=r"ISIC_0000009_segmentation\.png, field 'image': mask without"):
        read_isic2018_task1(isic_task1_root)
    Image.new("L", (9, 8)).save(truth / "ISIC_0000001_segmentation.png")
    report = SkipReport()
    assert read_isic2018_task1(isic_task1_root, on_error="skip", report=report)[0]["id"] == "ISIC_0000000"
    assert len(report) == 2 and "is 9x8 but its image" in report.skipped[0]


def test_isic2018_task1_subset(isic_task1_root: Path) -> None:
    for old, new in (("Task1-2_Training_Input", "Task1-2_Validation_Input"), ("Task1_Training", "Task1_Validation")):
        folder = next(isic_task1_root.glob(f"ISIC2018_{old}*"))
        folder.rename(isic_task1_root / folder.name.replace(old, new))
    assert len(read_isic2018_task1(isic_task1_root, subset="Validation")) == 2
    with pytest.raises(FileNotFoundError, match="ISIC2018_Task1-2_Training_Input"):
        read_isic2018_task1(isic_task1_root)
    with pytest.raises(ValueError, match="subset must be one of"):
        read_isic2018_task1(isic_task1_root, subset="train")


def test_isic2018_task3_records(isic_task3_root: Path) -> None:
    records = read_isic2018_task3(isic_task3_root)
    assert [(r["label_name"], r["label"]) for r in records] == [("nv", 5), ("nv", 5), ("mel", 4)]
    assert [r["group_id"] for r in records] == ["HAM_0000550", "HAM_0000550", "ISIC_0024310"]
    (isic_task3_root / "ISIC2018_Task3_Training_LesionGroupings.csv").unlink()
    assert [r["group_id"] for r in read_isic2018_task3(isic_task3_root)] == [r["id"] for r in records]


def test_isic2018_task3_bad_one_hot(isic_task3_root: Path) -> None:
    truth = isic_task3_root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    edit(truth, "ISIC_0024307,0.0,1.0,0.0", "ISIC_0024307,1.0,1.0,0.0")
    with pytest.raises(DatasetFormatError, match=where(truth.name, 3, "MEL,NV,BCC,AKIEC,BKL,DF,VASC") + ".*sum to 2"):
        read_isic2018_task3(isic_task3_root)
    report = SkipReport()
    assert [r["id"] for r in read_isic2018_task3(isic_task3_root, on_error="skip", report=report)] == [
        "ISIC_0024306",
        "ISIC_0024310",
    ]
    assert len(report) == 1
    edit(truth, "ISIC_0024306,0.0,1.0", "ISIC_0024306,0.0,yes")
    with pytest.raises(DatasetFormatError, match=where(truth.name, 2, "NV")):
        read_isic2018_task3(isic_task3_root)
    drop_column(truth, "DF")
    with pytest.raises(DatasetFormatError, match=where(truth.name, 1, "DF")):
        read_isic2018_task3(isic_task3_root)


def test_isic2019_records(isic2019_root: Path) -> None:
    records = read_isic2019(isic2019_root)
    assert [r["id"] for r in records] == ["ISIC_0000000", "ISIC_0000002_downsampled", "ISIC_0073247"]
    assert records[1]["image"].endswith("ISIC_0000002_downsampled.jpg")
    assert [(r["label_name"], r["label"]) for r in records] == [
        ("NV", 1),
        ("MEL", 0),
        ("SCC", ISIC2019_CLASSES.index("SCC")),
    ]
    assert [(r["age"], r["sex"], r["site"]) for r in records] == [
        (55.0, "female", "anterior torso"),
        (60.0, "male", "upper extremity"),
        (None, None, None),
    ]
    assert [r["group_id"] for r in records] == ["ISIC_0000000", "BCN_0000001", "BCN_0000002"]


def test_isic2019_metadata_optional_and_checked(isic2019_root: Path) -> None:
    meta = isic2019_root / "ISIC_2019_Training_Metadata.csv"
    drop_column(meta, "lesion_id")
    assert [r["group_id"] for r in read_isic2019(isic2019_root)][1] == "ISIC_0000002_downsampled"
    edit(meta, "60.0,upper extremity,male", "60.0,upper extremity,other")
    with pytest.raises(DatasetFormatError, match=where(meta.name, 3, "sex")):
        read_isic2019(isic2019_root)
    meta.unlink()
    records = read_isic2019(isic2019_root)
    assert {(r["age"], r["sex"], r["site"]) for r in records} == {(None, None, None)}
    assert [r["group_id"] for r in records] == [r["id"] for r in records]


# derm7pt


def test_derm7pt_records(derm7pt_root: Path) -> None:
    records = read_derm7pt(derm7pt_root)
    assert [r["id"] for r in records] == ["1", "2", "3", "4"]
    assert [r["group_id"] for r in records] == ["1", "2", "3", "4"]
    assert [r["split"] for r in records] == ["train", "valid", "train", "test"]
    assert [r["label_name"] for r in records] == [
        "basal cell carcinoma",
        "melanoma (in situ)",
        "clark nevus",
        "reed or spitz nevus",
    ]
    assert [r["label"] for r in records] == [DERM7PT_DIAGNOSES.index(r["label_name"]) for r in records]
    assert records[0]["image"] == str(derm7pt_root.resolve() / "images" / "NEL" / "Nel026.jpg")
    assert records[0]["concepts"] == {
        "pigment_network": "typical",
        "streaks": "absent",
        "pigmentation": "diffuse regular",
        "regression_structures": "blue areas",
        "dots_and_globules": "irregular",
        "blue_whitish_veil": "absent",
        "vascular_structures": "within regression",
    }
    assert (records[0]["site"], records[0]["sex"], records[0]["age"], records[0]["mask"]) == (
        "lower limbs",
        "female",
        None,
        None,
    )


def test_derm7pt_bad_rows(derm7pt_root: Path) -> None:
    meta = derm7pt_root / "meta" / "meta.csv"
    edit(meta, "2,melanoma (in situ),1,typical,absent,diffuse regular", "2,melanoma (in situ),1,typical,absent,diffuse")
    with pytest.raises(DatasetFormatError, match=where("meta.csv", 3, "pigmentation") + ": 'diffuse' is not one of"):
        read_derm7pt(derm7pt_root)
    edit(meta, "clark nevus", "clark's nevus")
    report = SkipReport()
    assert [r["id"] for r in read_derm7pt(derm7pt_root, on_error="skip", report=report)] == ["1", "4"]
    assert len(report) == 2 and re.search(where("meta.csv", 4, "diagnosis"), report.skipped[1])


def test_derm7pt_index_files(derm7pt_root: Path) -> None:
    meta = derm7pt_root / "meta"
    (meta / "valid_indexes.csv").write_text("indexes\n1\n7\n")
    with pytest.raises(DatasetFormatError, match=where("valid_indexes.csv", 3, "indexes") + ": '7' is not a row"):
        read_derm7pt(derm7pt_root)
    (meta / "valid_indexes.csv").unlink()
    with pytest.raises(FileNotFoundError, match="valid_indexes.csv"):
        read_derm7pt(derm7pt_root)
    (meta / "train_indexes.csv").unlink()
    (meta / "test_indexes.csv").unlink()
    assert {r["split"] for r in read_derm7pt(derm7pt_root)} == {None}


# Fitzpatrick17k, DDI, PAD-UFES-20


def test_fitzpatrick17k_records(fitzpatrick17k_root: Path) -> None:
    records = read_fitzpatrick17k(fitzpatrick17k_root)
    assert fitzpatrick17k_classes(fitzpatrick17k_root) == ("acne", "melanoma", "psoriasis")
    assert [(r["label_name"], r["label"]) for r in records] == [("psoriasis", 2), ("melanoma", 1), ("acne", 0)]
    assert [r["fitzpatrick"] for r in records] == [3, 1, None]
    assert records[0]["id"] == records[0]["group_id"] == "5e82a45bc5d78bd24ae9202d194423f8"
    three = read_fitzpatrick17k(fitzpatrick17k_root, label_column="three_partition_label")
    assert fitzpatrick17k_classes(fitzpatrick17k_root, "three_partition_label") == ("malignant", "non-neoplastic")
    assert [(r["label_name"], r["label"]) for r in three] == [("non-neoplastic", 1), ("malignant", 0)] + [
        ("non-neoplastic", 1)
    ]
    with pytest.raises(ValueError, match="label_column must be one of"):
        read_fitzpatrick17k(fitzpatrick17k_root, label_column="disease")


def test_fitzpatrick17k_bad_skin_type(fitzpatrick17k_root: Path) -> None:
    edit(fitzpatrick17k_root / "fitzpatrick17k.csv", "f,1,1,melanoma", "f,7,1,melanoma")
    with pytest.raises(DatasetFormatError, match=where("fitzpatrick17k.csv", 3, "fitzpatrick_scale")):
        read_fitzpatrick17k(fitzpatrick17k_root)


def test_ddi_records(ddi_root: Path) -> None:
    records = read_ddi(ddi_root)
    assert [r["id"] for r in records] == ["000001", "000002", "000003"]
    assert [(r["label_name"], r["label"]) for r in records] == [("malignant", 1), ("benign", 0), ("benign", 0)]
    assert DDI_CLASSES == ("benign", "malignant")
    assert [r["fitzpatrick"] for r in records] == [5, 1, 3]
    assert {(r["age"], r["sex"], r["site"], r["mask"]) for r in records} == {(None, None, None, None)}
    edit(ddi_root / "ddi_metadata.csv", "12,False", "12,maybe")
    with pytest.raises(DatasetFormatError, match=where("ddi_metadata.csv", 3, "malignant")):
        read_ddi(ddi_root)


def test_pad_ufes20_records(pad_root: Path) -> None:
    records = read_pad_ufes20(pad_root)
    assert [r["id"] for r in records] == ["PAT_1516_1765_530", "PAT_46_881_939", "PAT_46_882_940"]
    assert [r["group_id"] for r in records] == ["PAT_1516", "PAT_46", "PAT_46"]
    assert [(r["label_name"], r["label"]) for r in records] == [
        ("NEV", PAD_UFES20_CLASSES.index("NEV")),
        ("BCC", 1),
        ("SEK", 5),
    ]
    assert [(r["age"], r["sex"], r["fitzpatrick"], r["site"]) for r in records] == [
        (8.0, None, None, "arm"),
        (55.0, "female", 3, "neck"),
        (55.0, "female", 3, "face"),
    ]
    edit(pad_root / "metadata.csv", ",SEK,", ",XYZ,")
    report = SkipReport()
    assert len(read_pad_ufes20(pad_root, on_error="skip", report=report)) == 2
    assert len(report) == 1 and re.search(where("metadata.csv", 4, "diagnostic"), report.skipped[0])
