"""Reader for HAM10000 (Tschandl et al., 2018), which also reads this package's demo data set.

Layout::

    root/
      HAM10000_metadata.csv                      lesion_id,image_id,dx,dx_type,age,sex,localization
      HAM10000_images_part_1/<image_id>.jpg      (and/or HAM10000_images_part_2/, images/, or root/ itself)
      HAM10000_segmentations_lesion_tschandl/<image_id>_segmentation.png   (optional; or masks/)

Optional extra columns (written by the demo data set): ``fitzpatrick`` (1-6 or empty) and the seven derm7pt
concept columns named as the keys of `SEVEN_POINT_CONCEPTS`, read into ``fitzpatrick`` and ``concepts``.
"""

from __future__ import annotations

from pathlib import Path

from monai_lesiongen.data.readers._common import (
    IMAGE_EXTENSIONS,
    ImageIndex,
    check_on_error,
    collect_rows,
    make_record,
    parse_age,
    parse_concepts,
    parse_fitzpatrick,
    parse_sex,
    parse_site,
    read_csv,
    require_file,
    require_root,
)
from monai_lesiongen.data.records import LesionRecord, OnError, SkipReport
from monai_lesiongen.data.vocabulary import HAM10000_CLASSES

__all__ = ["HAM10000_CLASSES", "HAM10000_METADATA", "HAM10000_IMAGE_DIRS", "HAM10000_MASK_DIRS", "read_ham10000"]

HAM10000_METADATA = "HAM10000_metadata.csv"
"""The metadata file, directly under the dataset folder."""

HAM10000_IMAGE_DIRS: tuple[str, ...] = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images", ".")
"""Folders (relative to the dataset folder) searched for ``<image_id>.jpg``, in order."""

HAM10000_MASK_DIRS: tuple[str, ...] = ("HAM10000_segmentations_lesion_tschandl", "masks")
"""Folders searched for the optional ``<image_id>_segmentation.png`` lesion masks."""

_REQUIRED = ("lesion_id", "image_id", "dx", "age", "sex", "localization")


def read_ham10000(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
) -> list[LesionRecord]:
    """Read HAM10000 (or the demo data set) into records, one per image, grouped by ``lesion_id``.

    Args:
        root: the dataset folder.
        on_error: ``raise`` a `DatasetFormatError` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB, and every
            mask to check it is single-channel, binary (0/255 or 0/1) and of its image's size; the files'
            presence is checked either way.

    Returns:
        One `LesionRecord` per metadata row, in file order. ``label`` indexes `HAM10000_CLASSES`; ``mask`` is None
        for an image without a segmentation; ``split`` is None (HAM10000 has no official split).

    Raises:
        FileNotFoundError: when the folder or ``HAM10000_metadata.csv`` is missing.
        DatasetFormatError: for a missing column or no rows (always), or a bad row with ``on_error="raise"``:
            unknown ``dx``, missing, unreadable or non-RGB image, mask not binary or of another size, duplicate
            ``image_id``, invalid age, sex, Fitzpatrick type or concept value.
    """
    check_on_error(on_error, report)
    base = require_root(root, "HAM10000", f"{HAM10000_METADATA} and HAM10000_images_part_1/")
    table = read_csv(require_file(base / HAM10000_METADATA, "HAM10000", "the metadata CSV (image_id, dx, ...)"))
    table.require(_REQUIRED)
    images = ImageIndex(base / d for d in HAM10000_IMAGE_DIRS)
    masks = ImageIndex(base / d for d in HAM10000_MASK_DIRS)
    has_fitzpatrick = "fitzpatrick" in table.header

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        image_id = values["image_id"]
        dx = values["dx"]
        if dx not in HAM10000_CLASSES:
            raise table.error(row, "dx", f"unknown diagnosis {dx!r}; expected one of {list(HAM10000_CLASSES)}.")
        image = images.find(image_id, IMAGE_EXTENSIONS)
        if image is None:
            raise table.error(row, "image_id", f"image {image_id}.jpg not found in {images.describe()}.")
        mask = masks.find(f"{image_id}_segmentation.png")
        fitzpatrick = None
        if has_fitzpatrick:
            fitzpatrick = parse_fitzpatrick(values["fitzpatrick"], table.name, row, "fitzpatrick")
        return make_record(
            id=image_id,
            image=image,
            mask=mask,
            label=HAM10000_CLASSES.index(dx),
            label_name=dx,
            concepts=parse_concepts(values, table.name, row),
            fitzpatrick=fitzpatrick,
            age=parse_age(values["age"], table.name, row, "age"),
            sex=parse_sex(values["sex"], table.name, row, "sex"),
            site=parse_site(values["localization"]),
            source="ham10000",
            group_id=values["lesion_id"] or image_id,
        )

    return collect_rows(table, "image_id", build, on_error, report, check_images=check_images)
