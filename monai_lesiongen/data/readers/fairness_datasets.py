"""Readers for the data sets used to measure fairness across skin tones: Fitzpatrick17k, DDI and PAD-UFES-20.

Layouts::

    Fitzpatrick17k (Groh et al., 2021):
      root/fitzpatrick17k.csv   md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,
                                three_partition_label,url
      root/images/<md5hash>.jpg

    DDI, Diverse Dermatology Images (Daneshjou et al., 2022):
      root/ddi_metadata.csv     (unnamed index),DDI_ID,DDI_file,skin_tone,malignant,disease
      root/<DDI_file>           e.g. 000001.png (images/<DDI_file> is accepted too)

    PAD-UFES-20 (Pacheco et al., 2020):
      root/metadata.csv         patient_id,lesion_id,...,age,...,gender,...,fitspatrick,region,...,diagnostic,...,
                                img_id,biopsed
      root/images/<img_id>      (or imgs_part_1/, imgs_part_2/, imgs_part_3/, at the root or under images/)

Skin tone: Fitzpatrick17k's ``fitzpatrick_scale`` is a Fitzpatrick type (``-1`` = unknown -> None). DDI only
records pairs of types: ``skin_tone`` 12 (types I-II), 34 (III-IV) and 56 (V-VI); the records store the lower
type of the pair, 1, 3 or 5, so a per-type analysis of DDI must group 1-2, 3-4 and 5-6. PAD-UFES-20's
``fitspatrick`` (sic) is a type written as a float (``3.0``) or empty.
"""

from __future__ import annotations

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
    parse_fitzpatrick,
    parse_sex,
    parse_site,
    read_csv,
    require_file,
    require_root,
)
from monai_lesiongen.data.records import LesionRecord, OnError, SkipReport

__all__ = [
    "FITZPATRICK17K_LABEL_COLUMNS",
    "DDI_CLASSES",
    "DDI_SKIN_TONE_TO_FITZPATRICK",
    "PAD_UFES20_CLASSES",
    "fitzpatrick17k_classes",
    "read_fitzpatrick17k",
    "read_ddi",
    "read_pad_ufes20",
]

FITZPATRICK17K_LABEL_COLUMNS: tuple[str, ...] = ("label", "nine_partition_label", "three_partition_label")
"""Columns of ``fitzpatrick17k.csv`` that can serve as the label (114 conditions, 9 or 3 groups)."""

DDI_CLASSES: tuple[str, ...] = ("benign", "malignant")
"""DDI labels, from the ``malignant`` column."""

DDI_SKIN_TONE_TO_FITZPATRICK: dict[str, int] = {"12": 1, "34": 3, "56": 5}
"""DDI ``skin_tone`` pair -> the lower Fitzpatrick type of the pair, stored in ``fitzpatrick``."""

PAD_UFES20_CLASSES: tuple[str, ...] = ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")
"""PAD-UFES-20 ``diagnostic`` codes, in the order used for integer labels."""

_FITZPATRICK17K_CSV = "fitzpatrick17k.csv"


def _fitzpatrick17k_table(root: str | Path, label_column: str) -> tuple[Path, tuple[str, ...], CsvTable]:
    """The dataset folder, the classes of `label_column` and the checked CSV."""
    if label_column not in FITZPATRICK17K_LABEL_COLUMNS:
        raise ValueError(f"label_column must be one of {list(FITZPATRICK17K_LABEL_COLUMNS)}, got {label_column!r}.")
    base = require_root(root, "Fitzpatrick17k", f"{_FITZPATRICK17K_CSV} and images/")
    table = read_csv(require_file(base / _FITZPATRICK17K_CSV, "Fitzpatrick17k", "the label CSV (md5hash, ...)"))
    table.require(("md5hash", "fitzpatrick_scale", label_column))
    classes = sorted({values[label_column] for _, values in table.rows if not is_missing(values[label_column])})
    return base, tuple(classes), table


def fitzpatrick17k_classes(root: str | Path, label_column: str = "label") -> tuple[str, ...]:
    """The classes `read_fitzpatrick17k` uses: the sorted distinct non-empty values of `label_column` in the CSV.

    Raises:
        ValueError: for a `label_column` not in `FITZPATRICK17K_LABEL_COLUMNS`.
        FileNotFoundError: when the folder or ``fitzpatrick17k.csv`` is missing.
    """
    return _fitzpatrick17k_table(root, label_column)[1]


def read_fitzpatrick17k(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
    label_column: str = "label",
) -> list[LesionRecord]:
    """Read Fitzpatrick17k (clinical images with Fitzpatrick skin types).

    The classes are not fixed by the data set: they are the sorted distinct values of `label_column` over all
    rows of the CSV (see `fitzpatrick17k_classes`), so labels do not change when rows are skipped.

    Args:
        root: the dataset folder.
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report` (many copies of
            Fitzpatrick17k miss images whose URL has died).
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.
        label_column: ``label`` (the condition), ``nine_partition_label`` or ``three_partition_label``.

    Returns:
        One record per row: ``id`` and ``group_id`` the ``md5hash``, ``label_name`` the `label_column` value,
        ``fitzpatrick`` from ``fitzpatrick_scale``.

    Raises:
        ValueError: for an unknown `label_column`.
        FileNotFoundError: when the folder or ``fitzpatrick17k.csv`` is missing.
        DatasetFormatError: for a missing column or no rows (always), or with ``on_error="raise"`` an empty label,
            a Fitzpatrick value other than 1-6/-1/empty, a missing, unreadable or non-RGB image, or a duplicate
            ``md5hash``.
    """
    check_on_error(on_error, report)
    base, classes, table = _fitzpatrick17k_table(root, label_column)
    label_of = {name: i for i, name in enumerate(classes)}
    images = ImageIndex([base / "images"])

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        md5 = values["md5hash"]
        name = values[label_column]
        if is_missing(name):
            raise table.error(row, label_column, "empty label.")
        image = images.find(md5, IMAGE_EXTENSIONS)
        if image is None:
            raise table.error(row, "md5hash", f"image {md5}.jpg not found in {images.describe()}.")
        return make_record(
            id=md5,
            image=image,
            label=label_of[name],
            label_name=name,
            fitzpatrick=parse_fitzpatrick(values["fitzpatrick_scale"], table.name, row, "fitzpatrick_scale"),
            source="fitzpatrick17k",
        )

    return collect_rows(table, "md5hash", build, on_error, report, check_images=check_images)


def read_ddi(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
) -> list[LesionRecord]:
    """Read DDI (Diverse Dermatology Images) with benign/malignant labels and paired Fitzpatrick types.

    Args:
        root: the dataset folder (holding ``ddi_metadata.csv`` and the images).
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.

    Returns:
        One record per row: ``id`` and ``group_id`` the ``DDI_file`` name without extension; ``label`` indexes
        `DDI_CLASSES` (``malignant`` True -> 1); ``fitzpatrick`` 1, 3 or 5 for ``skin_tone`` 12, 34 or 56 (see the
        module docstring); no age, sex or site.

    Raises:
        FileNotFoundError: when the folder or ``ddi_metadata.csv`` is missing.
        DatasetFormatError: for a missing column or no rows (always), or with ``on_error="raise"`` a ``malignant``
            value other than True/False, a ``skin_tone`` other than 12/34/56/empty, a missing, unreadable or non-RGB
            image, or a duplicate ``DDI_file``.
    """
    check_on_error(on_error, report)
    base = require_root(root, "DDI", "ddi_metadata.csv and the images")
    table = read_csv(require_file(base / "ddi_metadata.csv", "DDI", "the metadata CSV (DDI_file, skin_tone, ...)"))
    table.require(("DDI_file", "skin_tone", "malignant"))
    images = ImageIndex([base, base / "images"])

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        malignant = values["malignant"].lower()
        if malignant not in ("true", "false"):
            raise table.error(row, "malignant", f"{values['malignant']!r} is not True or False.")
        tone = values["skin_tone"]
        if not is_missing(tone) and tone not in DDI_SKIN_TONE_TO_FITZPATRICK:
            raise table.error(row, "skin_tone", f"{tone!r} is not one of {list(DDI_SKIN_TONE_TO_FITZPATRICK)}.")
        image = images.find(values["DDI_file"])
        if image is None:
            raise table.error(row, "DDI_file", f"image {values['DDI_file']} not found in {images.describe()}.")
        name = "malignant" if malignant == "true" else "benign"
        return make_record(
            id=Path(values["DDI_file"]).stem,
            image=image,
            label=DDI_CLASSES.index(name),
            label_name=name,
            fitzpatrick=DDI_SKIN_TONE_TO_FITZPATRICK.get(tone),
            source="ddi",
        )

    return collect_rows(
        table,
        "DDI_file",
        build,
        on_error,
        report,
        id_of=lambda values: Path(values["DDI_file"]).stem,
        check_images=check_images,
    )


_PAD_PARTS = ("imgs_part_1", "imgs_part_2", "imgs_part_3")


def read_pad_ufes20(
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    check_images: bool = True,
) -> list[LesionRecord]:
    """Read PAD-UFES-20 (smartphone images of skin lesions, Brazil), grouped by patient.

    Args:
        root: the dataset folder (holding ``metadata.csv`` and ``images/``).
        on_error: ``raise`` on the first bad row, or ``skip`` it and count it in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        check_images: decode every image to check it is readable (not damaged or truncated) and RGB; the files'
            presence is checked either way.

    Returns:
        One record per row: ``id`` the ``img_id`` without extension, ``group_id`` the ``patient_id`` (a patient's
        lesions stay in one split), ``label`` indexing `PAD_UFES20_CLASSES`, ``sex`` from ``gender``,
        ``fitzpatrick`` from ``fitspatrick``, ``site`` the ``region`` lower-cased (``NECK`` -> ``neck``).

    Raises:
        FileNotFoundError: when the folder or ``metadata.csv`` is missing.
        DatasetFormatError: for a missing column or no rows (always), or with ``on_error="raise"`` an unknown
            diagnostic, an invalid age, gender or Fitzpatrick value, a missing, unreadable or non-RGB image, or a
            duplicate ``img_id``.
    """
    check_on_error(on_error, report)
    base = require_root(root, "PAD-UFES-20", "metadata.csv and images/")
    table = read_csv(require_file(base / "metadata.csv", "PAD-UFES-20", "the metadata CSV (patient_id, img_id, ...)"))
    table.require(("patient_id", "age", "gender", "fitspatrick", "region", "diagnostic", "img_id"))
    folders = [base / "images", *(base / p for p in _PAD_PARTS), *(base / "images" / p for p in _PAD_PARTS)]
    images = ImageIndex(folders)

    def build(row: int, values: dict[str, str]) -> LesionRecord:
        diagnostic = values["diagnostic"]
        if diagnostic not in PAD_UFES20_CLASSES:
            raise table.error(
                row, "diagnostic", f"unknown diagnostic {diagnostic!r}; expected one of {list(PAD_UFES20_CLASSES)}."
            )
        image = images.find(values["img_id"], IMAGE_EXTENSIONS)
        if image is None:
            raise table.error(row, "img_id", f"image {values['img_id']} not found in {images.describe()}.")
        site = parse_site(values["region"])
        return make_record(
            id=Path(values["img_id"]).stem,
            image=image,
            label=PAD_UFES20_CLASSES.index(diagnostic),
            label_name=diagnostic,
            fitzpatrick=parse_fitzpatrick(values["fitspatrick"], table.name, row, "fitspatrick"),
            age=parse_age(values["age"], table.name, row, "age"),
            sex=parse_sex(values["gender"], table.name, row, "gender"),
            site=None if site is None else site.lower(),
            source="pad_ufes20",
            group_id=values["patient_id"] or None,
        )

    return collect_rows(
        table,
        "img_id",
        build,
        on_error,
        report,
        id_of=lambda values: Path(values["img_id"]).stem,
        check_images=check_images,
    )
