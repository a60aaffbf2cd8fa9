"""Dataset readers: each turns a dataset folder in its official layout into a list of `LesionRecord` dicts.

Every reader has the signature ``read_X(root, on_error="raise", report=None, check_images=True, **dataset_options)``
and checks the layout as it reads: a missing folder or CSV raises `FileNotFoundError`; a missing column or a CSV
without rows, and with ``on_error="raise"`` any bad row, raises a `DatasetFormatError` naming the file, the row and
the field; with ``on_error="skip"`` bad rows are left out and counted in the `SkipReport`. A bad row includes its
image: with ``check_images`` (the default) every image and mask is decoded before training, so a damaged or
truncated file, an image that is not RGB or a mask that is not binary is found here, not mid-training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai_lesiongen.data.readers.derm7pt import DERM7PT_DIAGNOSES, DERM7PT_SPLITS, read_derm7pt
from monai_lesiongen.data.readers.fairness_datasets import (
    DDI_CLASSES,
    DDI_SKIN_TONE_TO_FITZPATRICK,
    FITZPATRICK17K_LABEL_COLUMNS,
    PAD_UFES20_CLASSES,
    fitzpatrick17k_classes,
    read_ddi,
    read_fitzpatrick17k,
    read_pad_ufes20,
)
from monai_lesiongen.data.readers.ham10000 import HAM10000_CLASSES, read_ham10000
from monai_lesiongen.data.readers.isic import (
    ISIC2018_SUBSETS,
    ISIC2018_TASK1_CLASSES,
    ISIC2018_TASK3_COLUMNS,
    ISIC2018_TASK3_TO_HAM10000,
    ISIC2019_CLASSES,
    read_isic2018_task1,
    read_isic2018_task3,
    read_isic2019,
)
from monai_lesiongen.data.records import LesionRecord, OnError, SkipReport

__all__ = [
    "READERS",
    "read_dataset",
    "read_ham10000",
    "read_isic2018_task1",
    "read_isic2018_task3",
    "read_isic2019",
    "read_derm7pt",
    "read_fitzpatrick17k",
    "read_ddi",
    "read_pad_ufes20",
    "fitzpatrick17k_classes",
    "HAM10000_CLASSES",
    "ISIC2018_SUBSETS",
    "ISIC2018_TASK1_CLASSES",
    "ISIC2018_TASK3_COLUMNS",
    "ISIC2018_TASK3_TO_HAM10000",
    "ISIC2019_CLASSES",
    "DERM7PT_DIAGNOSES",
    "DERM7PT_SPLITS",
    "FITZPATRICK17K_LABEL_COLUMNS",
    "DDI_CLASSES",
    "DDI_SKIN_TONE_TO_FITZPATRICK",
    "PAD_UFES20_CLASSES",
]

READERS: dict[str, Callable[..., list[LesionRecord]]] = {
    "ham10000": read_ham10000,
    "isic2018_task1": read_isic2018_task1,
    "isic2018_task3": read_isic2018_task3,
    "isic2019": read_isic2019,
    "derm7pt": read_derm7pt,
    "fitzpatrick17k": read_fitzpatrick17k,
    "ddi": read_ddi,
    "pad_ufes20": read_pad_ufes20,
}
"""Reader name (as used by the bundles' ``dataset`` setting) -> reader function."""


def read_dataset(
    name: str,
    root: str | Path,
    on_error: OnError = "raise",
    report: SkipReport | None = None,
    **kwargs: Any,
) -> list[LesionRecord]:
    """Read the dataset `name` from `root` with the matching reader of `READERS`.

    Args:
        name: a key of `READERS`, e.g. ``ham10000``.
        root: the dataset folder.
        on_error: ``raise`` on the first bad row, or ``skip`` bad rows and count them in `report`.
        report: counts the skipped rows; required with ``on_error="skip"``.
        kwargs: passed to the reader (``check_images``, and dataset options such as ``subset`` or
            ``label_column``).

    Returns:
        The reader's records.

    Raises:
        ValueError: for an unknown `name`, listing the valid ones.
    """
    reader = READERS.get(name)
    if reader is None:
        raise ValueError(f"unknown dataset {name!r}; valid names are {sorted(READERS)}.")
    return reader(root, on_error=on_error, report=report, **kwargs)
