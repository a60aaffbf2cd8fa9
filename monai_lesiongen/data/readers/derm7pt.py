"""Reader for derm7pt, the seven-point checklist dermoscopy data set (Kawahara et al., 2019).

Layout::

    root/
      meta/meta.csv            case_num,diagnosis,seven_point_score,pigment_network,streaks,pigmentation,
                               regression_structures,dots_and_globules,blue_whitish_veil,vascular_structures,
                               level_of_diagnostic_difficulty,elevation,location,sex,management,clinic,derm
      meta/train_indexes.csv   indexes: 0-based row indices of meta.csv (likewise valid_ and test_indexes.csv)
      images/<derm>            the dermoscopic image (``derm`` is a path relative to images/, e.g. NEL/Nel026.jpg)

Each case has a clinical and a dermoscopic image; the records use the dermoscopic one.
"""

from __future__ import annotations

from pathlib import Path

from monai_lesiongen.data.readers._common import (
    CsvTable,
    check_on_error,
    collect_rows,
    make_record,
    parse_concepts,
    parse_sex,
    parse_site,
    read_csv,
    require_file,
    require_root,
)
from monai_lesiongen.data.records import LesionRecord, OnError, SkipReport
from monai_lesiongen.data.vocabulary import SEVEN_POINT_CONCEPTS

__all__ = ["DERM7PT_DIAGNOSES", "DERM7PT_SPLITS", "read_derm7pt"]

DERM7PT_DIAGNOSES: tuple[str, ...] = (
    "basal cell carcinoma",
    "blue nevus",
    "clark nevus",
    "combined nevus",
    "congenital nevus",
    "dermal nevus",
    "dermatofibroma",
    "lentigo",
    "melanoma",
    "melanoma (in situ)",
    "melanoma (less than 0.76 mm)",
    "melanoma (0.76 to 1.5 mm)",
    "melanoma (more than 1.5 mm)",
    "melanoma metastasis",
    "melanosis",
    "miscellaneous",
    "recurrent nevus",
    "reed or spitz nevus",
    "seborrheic keratosis",
    "vascular lesion",
)
"""derm7pt ``diagnosis`` strings, in the order used for integer labels."""

DERM7PT_SPLITS: dict[str, str] = {
    "train": "train_indexes.csv",
    "valid": "valid_indexes.csv",
    "test": "test_indexes.csv",
}
"""Official split name -> index file under ``meta/``."""

_REQUIRED = ("case_num", "diagnosis", *SEVEN_POINT_CONCEPTS, "location", "sex", "derm")


def _read_splits(meta_dir: Path, num_rows: int) -> dict[int, str]:
    """0-based meta.csv row index -> official split; empty when none of the index files exists.

    Raises:
        FileNotFoundError: when only some of the three index files exist.
        DatasetFormatError: for an index that is not an integer, out of range, or listed in two splits.
    """
    paths = {split: meta_dir / name for split, name in DERM7PT_SPLITS.items()}
    present = [p for p in paths.values() if p.is_file()]
    if not present:
        return {}
    for path in paths.values():
        require_file(path, "derm7pt", "the official split indexes (column 'indexes'), as for the other splits")
    splits: dict[int, str] = {}
    for split, path in paths.items():
        table = read_csv(path)
        table.require(("indexes",))
        for row, values in table.rows:
            try:
                index = int(values["indexes"])
            except ValueError:
                index = -1
            if not 0 <= index < num_rows:
                raise table.error(
                    row, "indexes", f"{values['indexes']!r} is not a row index of meta.csv (0-{num_rows - 1})."
                )
            if index in splits and splits[index] != split:
                raise table.error(row, "indexes", f"meta.csv row index {index} is also in the {splits[index]} split.")
            splits[index] = split
    return splits


def read_derm7pt(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
) -> list[LesionRecord]:
    """Read derm7pt's dermoscopic images with their seven-point concepts and official split.

    Args:
        root: the dataset folder (holding ``meta/`` and ``images/``).
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.

    Returns:
        One record per case, ``id`` and ``group_id`` the ``case_num``; ``label_name`` the diagnosis as written and
        ``label`` its index in `DERM7PT_DIAGNOSES`; ``concepts`` the seven checklist values; ``site`` from
        ``location``; ``split`` from the ``meta/*_indexes.csv`` files (None without them, or for a case they omit).

    Raises:
        FileNotFoundError: when the folder, ``meta/meta.csv`` or one of the three index files (when any exists)
            is missing.
        DatasetFormatError: for a missing column, no rows or a bad index file (always), or with
            ``on_error="raise"`` an unknown diagnosis or concept value, a missing, unreadable or non-RGB image, or a
            duplicate ``case_num``.
    """
    check_on_error(on_error, report)
    base = require_root(root, "derm7pt", "meta/meta.csv and images/")
    table: CsvTable = read_csv(require_file(base / "meta" / "meta.csv", "derm7pt", "the case table (case_num, ...)"))
    table.require(_REQUIRED)
    table.require_rows()
    splits = _read_splits(base / "meta", len(table.rows))
    split_of_row = {row: splits.get(index) for index, (row, _) in enumerate(table.rows)}
    images_dir = base / "images"

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        diagnosis = values["diagnosis"]
        if diagnosis not in DERM7PT_DIAGNOSES:
            raise table.error(
                row, "diagnosis", f"unknown diagnosis {diagnosis!r}; expected one of {DERM7PT_DIAGNOSES}."
            )
        image = images_dir / values["derm"]
        if not values["derm"] or not image.is_file():
            raise table.error(row, "derm", f"dermoscopic image {image} not found.")
        return make_record(
            id=values["case_num"],
            image=image,
            label=DERM7PT_DIAGNOSES.index(diagnosis),
            label_name=diagnosis,
            concepts=parse_concepts(values, table.name, row),
            sex=parse_sex(values["sex"], table.name, row, "sex"),
            site=parse_site(values["location"]),
            source="derm7pt",
            split=split_of_row[row],
        )

    return collect_rows(table, "case_num", build, on_error, report, check_images=check_images, image_field="derm")
