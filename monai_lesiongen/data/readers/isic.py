"""Readers for the ISIC 2018 (Task 1 segmentation, Task 3 classification) and ISIC 2019 challenge data.

Layouts::

    ISIC 2018 Task 1 (subset = Training | Validation | Test):
      root/ISIC2018_Task1-2_<subset>_Input/ISIC_XXXXXXX.jpg
      root/ISIC2018_Task1_<subset>_GroundTruth/ISIC_XXXXXXX_segmentation.png

    ISIC 2018 Task 3 (subset = Training | Validation | Test):
      root/ISIC2018_Task3_<subset>_GroundTruth/ISIC2018_Task3_<subset>_GroundTruth.csv   image,MEL,NV,...,VASC
      root/ISIC2018_Task3_<subset>_Input/<image>.jpg
      root/ISIC2018_Task3_<subset>_LesionGroupings.csv   (optional, or in the GroundTruth folder)
                                                         image,lesion_id,diagnosis_confirm_type

    ISIC 2019:
      root/ISIC_2019_Training_GroundTruth.csv   image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK
      root/ISIC_2019_Training_Metadata.csv      image,age_approx,anatom_site_general,lesion_id,sex  (optional)
      root/ISIC_2019_Training_Input/<image>.jpg

The challenge subsets are separate downloads, so ``split`` is None in every record: one call reads one subset,
and `split_records` splits it by lesion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monai_lesiongen.data.readers._common import (
    IMAGE_EXTENSIONS,
    CsvTable,
    ImageIndex,
    check_on_error,
    collect_rows,
    is_missing,
    make_record,
    parse_age,
    parse_sex,
    parse_site,
    read_csv,
    require_file,
    require_root,
)
from monai_lesiongen.data.readers._images import ImageCheck, check_image_files
from monai_lesiongen.data.records import DatasetFormatError, LesionRecord, OnError, SkipReport, handle_row_error
from monai_lesiongen.data.vocabulary import HAM10000_CLASSES

__all__ = [
    "ISIC2018_SUBSETS",
    "ISIC2018_TASK1_CLASSES",
    "ISIC2018_TASK3_COLUMNS",
    "ISIC2018_TASK3_TO_HAM10000",
    "ISIC2019_CLASSES",
    "read_isic2018_task1",
    "read_isic2018_task3",
    "read_isic2019",
]

ISIC2018_SUBSETS: tuple[str, ...] = ("Training", "Validation", "Test")
"""The ``subset`` part of the ISIC 2018 folder names."""

ISIC2018_TASK1_CLASSES: tuple[str, ...] = ("lesion",)
"""Task 1 has masks but no diagnosis: every record has label 0, ``lesion``."""

ISIC2018_TASK3_COLUMNS: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
"""The one-hot diagnosis columns of the Task 3 ground truth."""

ISIC2018_TASK3_TO_HAM10000: dict[str, str] = {c: c.lower() for c in ISIC2018_TASK3_COLUMNS}
"""Task 3 column -> HAM10000 ``dx`` code; Task 3 labels index `HAM10000_CLASSES`."""

ISIC2019_CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
"""ISIC 2019 diagnosis columns, in the order used for integer labels."""


def _check_subset(subset: str) -> None:
    if subset not in ISIC2018_SUBSETS:
        raise ValueError(f"subset must be one of {list(ISIC2018_SUBSETS)}, got {subset!r}.")


def _one_hot(table: CsvTable, row: int, values: dict[str, str], columns: Sequence[str]) -> str:
    """The column whose one-hot cell is 1 (``1`` or ``1.0``); raises unless exactly one is 1 and the rest 0.

    The error lists the valid classes, and the columns outside them that hold a 1 (a diagnosis this reader does not
    know, e.g. a ground truth of another challenge year).
    """
    chosen = []
    for column in columns:
        try:
            number = float(values[column])
        except ValueError:
            number = -1.0
        if number not in (0.0, 1.0):
            raise table.error(row, column, f"one-hot value {values[column]!r} is not 0 or 1.")
        if number == 1.0:
            chosen.append(column)
    if len(chosen) != 1:
        unknown = [c for c in table.header if c not in columns and values.get(c) in ("1", "1.0")]
        note = f" (column(s) {unknown} hold 1 but are not classes of this dataset)" if unknown else ""
        raise table.error(
            row,
            ",".join(columns),
            f"the one-hot diagnosis columns sum to {len(chosen)} {chosen}{note}; exactly one of the classes "
            f"{list(columns)} must be 1.",
        )
    return chosen[0]


def read_isic2018_task1(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
    subset: str = "Training",
) -> list[LesionRecord]:
    """Read ISIC 2018 Task 1 (lesion segmentation) image/mask pairs.

    There is no CSV: errors name the image or mask file, with no row.

    Args:
        root: the folder holding the ``ISIC2018_Task1-2_<subset>_Input`` and ``ISIC2018_Task1_<subset>_GroundTruth``
            folders.
        on_error: ``raise`` on the first bad pair, or ``skip`` it and count it in `report`.
        report: counts the skipped pairs; required with ``on_error="skip"``.
        check_images: decode every image and mask to check that they are readable (not damaged or
            truncated), the image RGB, the mask single-channel, binary (0/255 or 0/1) and of its image's size.
        subset: ``Training``, ``Validation`` or ``Test``.

    Returns:
        One record per image, sorted by image id, label 0 (``lesion``), ``mask`` always set.

    Raises:
        FileNotFoundError: when the folder or either subset folder is missing.
        DatasetFormatError: for folders without any image or mask (always), or with ``on_error="raise"``, for an
            image without a mask, a mask without an image, an unreadable file, an image that is not RGB, or a mask
            that is not binary or not of its image's size.
    """
    check_on_error(on_error, report)
    _check_subset(subset)
    input_name, truth_name = f"ISIC2018_Task1-2_{subset}_Input", f"ISIC2018_Task1_{subset}_GroundTruth"
    base = require_root(root, "ISIC 2018 Task 1", f"{input_name}/ and {truth_name}/")
    for name, what in ((input_name, "the ISIC_XXXXXXX.jpg images"), (truth_name, "the *_segmentation.png masks")):
        if not (base / name).is_dir():
            raise FileNotFoundError(f"ISIC 2018 Task 1: folder {base / name} not found; expected {what} there.")
    images: dict[str, Path] = {}
    for path in sorted((base / input_name).iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in images:
            error = DatasetFormatError(
                str(path), f"duplicate image id {path.stem!r} (also {images[path.stem]}).", None, "image"
            )
            handle_row_error(error, on_error, report)
            continue
        images[path.stem] = path
    masks = {p.name[: -len("_segmentation.png")]: p for p in (base / truth_name).glob("*_segmentation.png")}
    if not images and not masks:
        raise DatasetFormatError(
            str(base / input_name),
            f"no images (*.jpg, *.png) in this folder and no masks in {base / truth_name}, so there is nothing to "
            "read; download the subset again or point the reader at the folder holding it.",
        )

    pairs: list[tuple[str, Path, Path] | DatasetFormatError] = []
    for image_id in sorted(images.keys() | masks.keys()):
        image, mask = images.get(image_id), masks.get(image_id)
        if image is None:
            pairs.append(
                DatasetFormatError(
                    str(masks[image_id]), f"mask without an image {image_id}.jpg in {base / input_name}.", None, "image"
                )
            )
        elif mask is None:
            pairs.append(
                DatasetFormatError(
                    str(image),
                    f"image without its mask {image_id}_segmentation.png in {base / truth_name}.",
                    None,
                    "mask",
                )
            )
        else:
            pairs.append((image_id, image, mask))
        if on_error == "raise" and isinstance(pairs[-1], DatasetFormatError):
            break  # the pairs after the first bad one are never reached: no need to decode their images

    image_errors: dict[int, DatasetFormatError] = {}
    if check_images:
        found = [(i, pair) for i, pair in enumerate(pairs) if not isinstance(pair, DatasetFormatError)]
        checks = [ImageCheck(image, mask, str(image), None, "image") for _, (_, image, mask) in found]
        errors = check_image_files(checks, stop_at_first=on_error == "raise")
        image_errors = {found[index][0]: error for index, error in errors.items()}

    records: list[LesionRecord] = []
    for position, pair in enumerate(pairs):
        if isinstance(pair, DatasetFormatError):
            handle_row_error(pair, on_error, report)
        elif position in image_errors:
            handle_row_error(image_errors[position], on_error, report)
        else:
            image_id, image, mask = pair
            records.append(
                make_record(id=image_id, image=image, mask=mask, label=0, label_name="lesion", source="isic2018_task1")
            )
    return records


def _read_groupings(path: Path) -> dict[str, str]:
    """Image -> lesion id from the optional Task 3 lesion-grouping CSV."""
    table = read_csv(path)
    table.require(("image", "lesion_id"))
    return {values["image"]: values["lesion_id"] for _, values in table.rows if not is_missing(values["lesion_id"])}


def read_isic2018_task3(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
    subset: str = "Training",
) -> list[LesionRecord]:
    """Read ISIC 2018 Task 3 (lesion diagnosis) with HAM10000 labels.

    Args:
        root: the folder holding the ``ISIC2018_Task3_<subset>_GroundTruth`` and ``..._Input`` folders.
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.
        subset: ``Training``, ``Validation`` or ``Test``.

    Returns:
        One record per ground-truth row. ``label_name`` is the HAM10000 code (``MEL`` -> ``mel``) and ``label``
        its index in `HAM10000_CLASSES`; ``group_id`` is the lesion id from the lesion-grouping file when present
        (``root/ISIC2018_Task3_<subset>_LesionGroupings.csv`` or inside the GroundTruth folder), else the image id.

    Raises:
        FileNotFoundError: when the folder or the ground-truth CSV is missing.
        DatasetFormatError: for a missing column or no rows (always), or with ``on_error="raise"`` a row whose
            one-hot columns do not hold exactly one 1, a missing, unreadable or non-RGB image, or a duplicate image
            id.
    """
    check_on_error(on_error, report)
    _check_subset(subset)
    truth_dir = f"ISIC2018_Task3_{subset}_GroundTruth"
    base = require_root(root, "ISIC 2018 Task 3", f"{truth_dir}/ and ISIC2018_Task3_{subset}_Input/")
    csv_path = base / truth_dir / f"{truth_dir}.csv"
    table = read_csv(require_file(csv_path, "ISIC 2018 Task 3", "the one-hot ground-truth CSV (image,MEL,...,VASC)"))
    table.require(("image", *ISIC2018_TASK3_COLUMNS))
    groups: dict[str, str] = {}
    grouping_name = f"ISIC2018_Task3_{subset}_LesionGroupings.csv"
    for grouping in (base / grouping_name, base / truth_dir / grouping_name):
        if grouping.is_file():
            groups = _read_groupings(grouping)
            break
    images = ImageIndex([base / f"ISIC2018_Task3_{subset}_Input"])

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        image_id = values["image"]
        dx = ISIC2018_TASK3_TO_HAM10000[_one_hot(table, row, values, ISIC2018_TASK3_COLUMNS)]
        image = images.find(image_id, IMAGE_EXTENSIONS)
        if image is None:
            raise table.error(row, "image", f"image {image_id}.jpg not found in {images.describe()}.")
        return make_record(
            id=image_id,
            image=image,
            label=HAM10000_CLASSES.index(dx),
            label_name=dx,
            source="isic2018_task3",
            group_id=groups.get(image_id),
        )

    return collect_rows(table, "image", build, on_error, report, check_images=check_images)


def read_isic2019(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
) -> list[LesionRecord]:
    """Read the ISIC 2019 training data, with its metadata when present.

    Args:
        root: the folder holding ``ISIC_2019_Training_GroundTruth.csv`` and ``ISIC_2019_Training_Input/``.
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.

    Returns:
        One record per ground-truth row; ``label`` indexes `ISIC2019_CLASSES` and ``label_name`` is the column
        name (``MEL``). Image ids keep any ``_downsampled`` suffix (the file is ``<image>.jpg``). Age, sex, site
        and lesion id (``group_id``) come from ``ISIC_2019_Training_Metadata.csv``; without that file, or for an
        image it does not list, they are None and ``group_id`` is the image id.

    Raises:
        FileNotFoundError: when the folder or the ground-truth CSV is missing.
        DatasetFormatError: for a missing column or no rows (always), or with ``on_error="raise"`` a bad one-hot
            row, a missing, unreadable or non-RGB image, a duplicate image id, or an invalid age or sex in the
            metadata.
    """
    check_on_error(on_error, report)
    truth_name = "ISIC_2019_Training_GroundTruth.csv"
    base = require_root(root, "ISIC 2019", f"{truth_name} and ISIC_2019_Training_Input/")
    table = read_csv(require_file(base / truth_name, "ISIC 2019", "the one-hot ground-truth CSV (image,MEL,...,UNK)"))
    table.require(("image", *ISIC2019_CLASSES))
    meta_path = base / "ISIC_2019_Training_Metadata.csv"
    meta: CsvTable | None = None
    meta_rows: dict[str, tuple[int, dict[str, str]]] = {}
    if meta_path.is_file():
        meta = read_csv(meta_path)
        meta.require(("image", "age_approx", "anatom_site_general", "sex"))
        meta_rows = {values["image"]: (row, values) for row, values in meta.rows}
    images = ImageIndex([base / "ISIC_2019_Training_Input"])

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        image_id = values["image"]
        name = _one_hot(table, row, values, ISIC2019_CLASSES)
        image = images.find(image_id, IMAGE_EXTENSIONS)
        if image is None:
            raise table.error(row, "image", f"image {image_id}.jpg not found in {images.describe()}.")
        age, sex, site, lesion = None, None, None, None
        if meta is not None and image_id in meta_rows:
            meta_row, info = meta_rows[image_id]
            age = parse_age(info["age_approx"], meta.name, meta_row, "age_approx")
            sex = parse_sex(info["sex"], meta.name, meta_row, "sex")
            site = parse_site(info["anatom_site_general"])
            lesion = None if is_missing(info.get("lesion_id")) else info["lesion_id"]
        return make_record(
            id=image_id,
            image=image,
            label=ISIC2019_CLASSES.index(name),
            label_name=name,
            age=age,
            sex=sex,
            site=site,
            source="isic2019",
            group_id=lesion,
        )

    return collect_rows(table, "image", build, on_error, report, check_images=check_images)
