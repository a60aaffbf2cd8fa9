"""Bad data is refused by the readers before training, naming the file, the row, the field and the fix; with
``on_error="skip"`` the bad row is counted and listed in ``skipped.txt`` (see conftest.py for the data sets)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reader_helpers import edit, where

from monai_lesiongen.data import DatasetFormatError, SkipReport, load_records
from monai_lesiongen.data.readers import (
    DERM7PT_DIAGNOSES,
    HAM10000_CLASSES,
    ISIC2018_TASK3_COLUMNS,
    ISIC2019_CLASSES,
    PAD_UFES20_CLASSES,
    read_dataset,
)

# reader, fixture, the file errors name, one image (relative to the root), the row naming it (None: no CSV), the
# field naming it, number of records
IMAGE_CASES = [
    ("ham10000", "ham_root", "HAM10000_metadata.csv", "HAM10000_images_part_2/ISIC_0026769.jpg", 4, "image_id", 3),
    (
        "isic2018_task1",
        "isic_task1_root",
        "ISIC_0000001.jpg",
        "ISIC2018_Task1-2_Training_Input/ISIC_0000001.jpg",
        None,
        "image",
        2,
    ),
    (
        "isic2018_task3",
        "isic_task3_root",
        "ISIC2018_Task3_Training_GroundTruth.csv",
        "ISIC2018_Task3_Training_Input/ISIC_0024310.jpg",
        4,
        "image",
        3,
    ),
    (
        "isic2019",
        "isic2019_root",
        "ISIC_2019_Training_GroundTruth.csv",
        "ISIC_2019_Training_Input/ISIC_0073247.jpg",
        4,
        "image",
        3,
    ),
    ("derm7pt", "derm7pt_root", "meta.csv", "images/NEL/Nel029.jpg", 5, "derm", 4),
    (
        "fitzpatrick17k",
        "fitzpatrick17k_root",
        "fitzpatrick17k.csv",
        "images/d2bac3c9e4499032ca8e9b07c7d3bc40.jpg",
        4,
        "md5hash",
        3,
    ),
    ("ddi", "ddi_root", "ddi_metadata.csv", "000003.png", 4, "DDI_file", 3),
    ("pad_ufes20", "pad_root", "metadata.csv", "images/imgs_part_2/PAT_46_882_940.png", 4, "img_id", 3),
]
IMAGE_IDS = [c[0] for c in IMAGE_CASES]

# reader, fixture, the file errors name, one mask (relative to the root), the row naming its image, records
MASK_CASES = [
    (
        "ham10000",
        "ham_root",
        "HAM10000_metadata.csv",
        "HAM10000_segmentations_lesion_tschandl/ISIC_0027419_segmentation.png",
        2,
        3,
    ),
    (
        "isic2018_task1",
        "isic_task1_root",
        "ISIC_0000001.jpg",
        "ISIC2018_Task1_Training_GroundTruth/ISIC_0000001_segmentation.png",
        None,
        2,
    ),
]
MASK_IDS = [c[0] for c in MASK_CASES]

# reader, fixture, main CSV (relative to the root)
CSV_CASES = [
    ("ham10000", "ham_root", "HAM10000_metadata.csv"),
    (
        "isic2018_task3",
        "isic_task3_root",
        "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
    ),
    ("isic2019", "isic2019_root", "ISIC_2019_Training_GroundTruth.csv"),
    ("derm7pt", "derm7pt_root", "meta/meta.csv"),
    ("fitzpatrick17k", "fitzpatrick17k_root", "fitzpatrick17k.csv"),
    ("ddi", "ddi_root", "ddi_metadata.csv"),
    ("pad_ufes20", "pad_root", "metadata.csv"),
]


def skipped_lines(name: str, root: Path, count: int) -> list[str]:
    """Read `root` with ``on_error="skip"`` as a bundle does; check `count` records came back (none left is an
    error), return skipped.txt."""
    if count == 0:
        with pytest.raises(ValueError, match="every row was skipped"):
            load_records(name, root, on_error="skip")
    else:
        assert len(load_records(name, root, on_error="skip")) == count
    return (root / "skipped.txt").read_text().splitlines()


def noise(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    """An RGB noise image: its compressed pixels outweigh the header, so half the file keeps the header whole."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00this is not an image" * 4)


def truncated(path: Path) -> None:
    noise().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as img:  # the header is intact: a header-only check passes the file
        assert img.size == (64, 64)


# 1. damaged images


@pytest.mark.parametrize("damage", [garbage, truncated], ids=["garbage", "truncated"])
@pytest.mark.parametrize("name, fixture, file, image, row, field, count", IMAGE_CASES, ids=IMAGE_IDS)
def test_damaged_image_raises_or_is_skipped(
    name: str,
    fixture: str,
    file: str,
    image: str,
    row: int | None,
    field: str,
    count: int,
    damage: Callable[[Path], None],
    request: pytest.FixtureRequest,
) -> None:
    root = request.getfixturevalue(fixture)
    damage(root / image)
    message = where(file, row, field) + ": cannot read image file .*" + re.escape(Path(image).name)
    with pytest.raises(DatasetFormatError, match=message + r".*damaged or truncated"):
        read_dataset(name, root)
    skipped = skipped_lines(name, root, count - 1)
    assert len(skipped) == 1 and re.search(message, skipped[0])
    assert len(read_dataset(name, root, check_images=False)) == count


# 2. colour modes


def _save(path: Path, mode: str) -> None:
    img = Image.new(mode, (8, 8))
    if mode == "P":
        img.save(path, transparency=0)
    else:
        img.save(path)


@pytest.mark.parametrize(
    "mode, suffix, description",
    [
        ("L", ".jpg", "8-bit grayscale"),
        ("I;16", ".png", "16-bit grayscale"),
        ("1", ".png", "1-bit black and white"),
        ("RGBA", ".png", "RGB with an alpha channel"),
        ("LA", ".png", "grayscale with an alpha channel"),
        ("P", ".png", "a palette image with transparency"),
        ("CMYK", ".jpg", "CMYK"),
    ],
)
def test_image_not_rgb_raises_or_is_skipped(ham_root: Path, mode: str, suffix: str, description: str) -> None:
    (ham_root / "HAM10000_images_part_2" / "ISIC_0026769.jpg").unlink()
    path = ham_root / "HAM10000_images_part_2" / f"ISIC_0026769{suffix}"
    _save(path, mode)
    with Image.open(path) as img:
        assert img.mode == mode
    message = (
        where("HAM10000_metadata.csv", 4, "image_id")
        + f": image .*{re.escape(path.name)} is {re.escape(description)}.* \\(PIL mode '{re.escape(mode)}'\\), "
        + "not RGB.*convert it .*convert\\('RGB'\\)"
    )
    with pytest.raises(DatasetFormatError, match=message):
        read_dataset("ham10000", ham_root)
    skipped = skipped_lines("ham10000", ham_root, 2)
    assert len(skipped) == 1 and re.search(message, skipped[0])


@pytest.mark.parametrize("name, fixture, file, image, row, field, count", IMAGE_CASES, ids=IMAGE_IDS)
def test_grayscale_image_raises_in_every_reader(
    name: str,
    fixture: str,
    file: str,
    image: str,
    row: int | None,
    field: str,
    count: int,
    request: pytest.FixtureRequest,
) -> None:
    root = request.getfixturevalue(fixture)
    Image.new("L", (8, 8), 128).save(root / image)
    with pytest.raises(DatasetFormatError, match=where(file, row, field) + ".* is 8-bit grayscale \\(PIL mode 'L'\\)"):
        read_dataset(name, root)


# 3. masks


def _three_values(path: Path) -> str:
    array = np.zeros((8, 8), dtype=np.uint8)
    array[2:6, 2:6] = 255
    array[2:6, 2] = 128  # an anti-aliased edge
    Image.fromarray(array).save(path)
    return "it holds 3 distinct values, 128 besides 0 and 255"


def _jpeg_compressed(path: Path) -> str:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "JPEG", quality=75)
    Image.open(buffer).save(path)  # a PNG now, with the JPEG's blurred edges
    values = np.unique(np.asarray(Image.open(path)))
    offending = [str(v) for v in values if v not in (0, 255)]
    assert offending
    return f"it holds {len(values)} distinct values, {', '.join(offending[:3])}"


def _rgb(path: Path) -> str:
    Image.open(path).convert("RGB").save(path)
    return "has 3 channels \\(PIL mode 'RGB'\\); a mask must be single-channel"


def _wrong_size(path: Path) -> str:
    Image.new("L", (16, 8)).save(path)
    return "is 16x8 but its image .* is 8x8; a mask must have the size of its image"


@pytest.mark.parametrize(
    "spoil", [_three_values, _jpeg_compressed, _rgb, _wrong_size], ids=["three_values", "jpeg", "rgb", "size"]
)
@pytest.mark.parametrize("name, fixture, file, mask, row, count", MASK_CASES, ids=MASK_IDS)
def test_bad_mask_raises_or_is_skipped(
    name: str,
    fixture: str,
    file: str,
    mask: str,
    row: int | None,
    count: int,
    spoil: Callable[[Path], str],
    request: pytest.FixtureRequest,
) -> None:
    root = request.getfixturevalue(fixture)
    problem = spoil(root / mask)
    message = where(file, row, "mask") + f": mask .*{re.escape(Path(mask).name)} .*{problem}"
    with pytest.raises(DatasetFormatError, match=message):
        read_dataset(name, root)
    skipped = skipped_lines(name, root, count - 1)
    assert len(skipped) == 1 and re.search(message, skipped[0])


@pytest.mark.parametrize("name, fixture, file, mask, row, count", MASK_CASES, ids=MASK_IDS)
def test_binary_masks_are_accepted(
    name: str, fixture: str, file: str, mask: str, row: int | None, count: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    lesion = np.zeros((8, 8), dtype=np.uint8)
    lesion[2:6, 2:6] = 1
    for array in (lesion * 255, lesion, np.zeros_like(lesion), np.full_like(lesion, 255), np.ones_like(lesion)):
        Image.fromarray(array).save(root / mask)
        records = read_dataset(name, root)
        assert len(records) == count and str((root / mask).resolve()) in {r["mask"] for r in records}
    Image.fromarray(lesion.astype(bool)).save(root / mask)  # mode "1"
    assert len(read_dataset(name, root)) == count


# 4. empty CSVs


@pytest.mark.parametrize("name, fixture, main", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_empty_or_header_only_csv_raises_even_when_skipping(
    name: str, fixture: str, main: str, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    path = root / main
    header = path.read_text().splitlines()[0]
    path.write_text(header + "\n")
    for on_error in ("raise", "skip"):
        with pytest.raises(DatasetFormatError, match=re.escape(path.name) + ": the file has a header but no rows"):
            load_records(name, root, on_error=on_error)
    path.write_bytes(b"")
    for on_error in ("raise", "skip"):
        with pytest.raises(DatasetFormatError, match=re.escape(path.name) + ": the file is empty"):
            load_records(name, root, on_error=on_error)


def test_isic2018_task1_empty_folders_raise(isic_task1_root: Path) -> None:
    for path in isic_task1_root.glob("*/*.*g"):
        path.unlink()
    with pytest.raises(DatasetFormatError, match="ISIC2018_Task1-2_Training_Input: no images"):
        load_records("isic2018_task1", isic_task1_root, on_error="skip")


# 5. duplicate ids


@pytest.mark.parametrize(
    "name, fixture, main, old, new, field, image_id",
    [
        ("ham10000", "ham_root", "HAM10000_metadata.csv", "ISIC_0025030", "ISIC_0027419", "image_id", "ISIC_0027419"),
        (
            "isic2019",
            "isic2019_root",
            "ISIC_2019_Training_GroundTruth.csv",
            "ISIC_0000002_downsampled",
            "ISIC_0000000",
            "image",
            "ISIC_0000000",
        ),
        ("pad_ufes20", "pad_root", "metadata.csv", "PAT_46_881_939.png", "PAT_1516_1765_530.png", "img_id", None),
    ],
    ids=["ham10000", "isic2019", "pad_ufes20"],
)
def test_duplicate_id_names_both_rows_and_is_skipped(
    name: str,
    fixture: str,
    main: str,
    old: str,
    new: str,
    field: str,
    image_id: str | None,
    request: pytest.FixtureRequest,
) -> None:
    root = request.getfixturevalue(fixture)
    edit(root / main, old, new)
    duplicate = image_id or Path(new).stem
    message = where(main, 3, field) + f": duplicate image id '{duplicate}' \\(first in row 2\\)"
    with pytest.raises(DatasetFormatError, match=message):
        read_dataset(name, root)
    skipped = skipped_lines(name, root, 2)
    assert len(skipped) == 1 and re.search(message, skipped[0])


# 6. labels outside the class list


def _isic2019_unknown_column(root: Path) -> None:
    path = root / "ISIC_2019_Training_GroundTruth.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[0].append("XYZ")
    for i, row in enumerate(rows[1:]):
        row.append("1.0" if i == 2 else "0.0")
    rows[3][ISIC2019_CLASSES.index("SCC") + 1] = "0.0"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize(
    "name, fixture, mutate, file, row, field, message, classes",
    [
        (
            "ham10000",
            "ham_root",
            lambda r: edit(r / "HAM10000_metadata.csv", ",mel,", ",xyz,"),
            "HAM10000_metadata.csv",
            4,
            "dx",
            "unknown diagnosis 'xyz'; expected one of",
            HAM10000_CLASSES,
        ),
        (
            "isic2019",
            "isic2019_root",
            lambda r: edit(r / "ISIC_2019_Training_GroundTruth.csv", "downsampled,1.0", "downsampled,0.0"),
            "ISIC_2019_Training_GroundTruth.csv",
            3,
            ",".join(ISIC2019_CLASSES),
            "the one-hot diagnosis columns sum to 0 \\[\\]; exactly one of the classes",
            ISIC2019_CLASSES,
        ),
        (
            "isic2019",
            "isic2019_root",
            _isic2019_unknown_column,
            "ISIC_2019_Training_GroundTruth.csv",
            4,
            ",".join(ISIC2019_CLASSES),
            "the one-hot diagnosis columns sum to 0 \\[\\] "
            + re.escape("(column(s) ['XYZ'] hold 1 but are not classes of this dataset)"),
            ISIC2019_CLASSES,
        ),
        (
            "isic2018_task3",
            "isic_task3_root",
            lambda r: edit(
                r / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv",
                "ISIC_0024310,1.0",
                "ISIC_0024310,0.0",
            ),
            "ISIC2018_Task3_Training_GroundTruth.csv",
            4,
            ",".join(ISIC2018_TASK3_COLUMNS),
            "the one-hot diagnosis columns sum to 0",
            ISIC2018_TASK3_COLUMNS,
        ),
        (
            "derm7pt",
            "derm7pt_root",
            lambda r: edit(r / "meta" / "meta.csv", "clark nevus", "clark's nevus"),
            "meta.csv",
            4,
            "diagnosis",
            'unknown diagnosis "clark\'s nevus"; expected one of',
            DERM7PT_DIAGNOSES,
        ),
        (
            "pad_ufes20",
            "pad_root",
            lambda r: edit(r / "metadata.csv", ",SEK,", ",XYZ,"),
            "metadata.csv",
            4,
            "diagnostic",
            "unknown diagnostic 'XYZ'; expected one of",
            PAD_UFES20_CLASSES,
        ),
    ],
    ids=["ham10000", "isic2019_all_zero", "isic2019_unknown_column", "isic2018_task3", "derm7pt", "pad_ufes20"],
)
def test_unknown_label_lists_the_valid_classes(
    name: str,
    fixture: str,
    mutate: Callable[[Path], None],
    file: str,
    row: int,
    field: str,
    message: str,
    classes: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> None:
    root = request.getfixturevalue(fixture)
    mutate(root)
    with pytest.raises(DatasetFormatError, match=where(file, row, field) + ": " + message) as raised:
        read_dataset(name, root)
    assert all(repr(c) in str(raised.value) for c in classes)
    report = SkipReport()
    read_dataset(name, root, on_error="skip", report=report)
    assert len(report) == 1 and re.search(where(file, row, field), report.skipped[0])


# the first bad row in file order, whichever thread decodes it first


def test_errors_come_in_file_order(ham_root: Path) -> None:
    truncated(ham_root / "HAM10000_images_part_1" / "ISIC_0025030.jpg")  # row 3
    edit(ham_root / "HAM10000_metadata.csv", ",mel,", ",xyz,")  # row 4
    with pytest.raises(DatasetFormatError, match=where("HAM10000_metadata.csv", 3, "image_id")):
        read_dataset("ham10000", ham_root)
    garbage(ham_root / "HAM10000_images_part_1" / "ISIC_0027419.jpg")  # row 2
    with pytest.raises(DatasetFormatError, match=where("HAM10000_metadata.csv", 2, "image_id")):
        read_dataset("ham10000", ham_root)
    skipped = skipped_lines("ham10000", ham_root, 0)
    assert [re.findall(r", row (\d+),", line) for line in skipped] == [["2"], ["3"], ["4"]]
