"""From a bundle's `dataset` and `dataset_dir` to the list of dicts a MONAI `Dataset` takes, split without leaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai_lesiongen.data.demo import ensure_demo_dataset
from monai_lesiongen.data.readers import READERS, read_dataset
from monai_lesiongen.data.records import LesionRecord, OnError, SkipReport
from monai_lesiongen.data.splits import split_records

__all__ = ["DATASET_NAMES", "load_records", "load_split", "require_masks", "to_datalist"]

DATASET_NAMES: tuple[str, ...] = ("demo", *READERS)
"""The values a bundle's `dataset` may take."""


def load_records(
    dataset: str,
    dataset_dir: str | Path,
    on_error: OnError = "raise",
    skipped_file: str | Path | None = None,
    demo_kwargs: dict[str, Any] | None = None,
) -> list[LesionRecord]:
    """Read a dataset folder with the reader `dataset`; ``demo`` writes the demo data set there first if absent.

    Args:
        dataset: a name of `DATASET_NAMES`.
        dataset_dir: the dataset folder in the dataset's official layout.
        on_error: ``raise`` on a bad row, or ``skip`` it (counted, and listed in `skipped_file`).
        skipped_file: where the skipped rows are listed with ``on_error="skip"``; ``<dataset_dir>/skipped.txt``
            when None.
        demo_kwargs: arguments of `ensure_demo_dataset` (``num_images``, ``image_size``, ``seed``).

    Raises:
        ValueError: for an unknown dataset name.
        FileNotFoundError: when `dataset_dir` does not exist (for a dataset other than ``demo``).
        ValueError: when ``on_error="skip"`` skipped every row.
    """
    if dataset not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASET_NAMES)}.")
    root = Path(dataset_dir)
    reader = dataset
    if dataset == "demo":
        ensure_demo_dataset(root, **(demo_kwargs or {}))
        reader = "ham10000"
    elif not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist: point 'dataset_dir' at your {dataset} folder.")
    report = SkipReport()
    records = read_dataset(reader, root, on_error=on_error, report=report)
    target = Path(skipped_file) if skipped_file is not None else root / "skipped.txt"
    if len(report):
        report.write(str(target))
        print(f"{dataset}: {report.summary().splitlines()[0]}; listed in {target}")
    if not records:
        raise ValueError(
            f"{dataset} folder {root}: every row was skipped ({len(report)}, listed in {target}); nothing is left to "
            "train on: fix the first rows listed there, or check that 'dataset' names this folder's layout."
        )
    for record in records:
        record["source"] = dataset
    return records


def load_split(
    dataset: str,
    dataset_dir: str | Path,
    split: str,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    **kwargs: Any,
) -> list[LesionRecord]:
    """The records of one split (``train``, ``valid`` or ``test``) of a dataset, grouped by lesion/patient id so no
    lesion sits in two splits; the dataset's official split where it has one. Other arguments as `load_records`.
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}.")
    return split_records(load_records(dataset, dataset_dir, **kwargs), fractions=fractions, seed=seed)[split]


def to_datalist(records: list[LesionRecord]) -> list[dict[str, Any]]:
    """Records as MONAI data dicts: keys whose value is None are left out (so ``LoadImaged(...,
    allow_missing_keys=True)`` skips a missing mask), and the concepts dict is kept as it is."""
    return [{k: v for k, v in record.items() if v is not None} for record in records]


def require_masks(records: list[LesionRecord], dataset: str) -> list[LesionRecord]:
    """Return `records` if every one has a lesion mask, for paired image + mask generation.

    Raises:
        ValueError: naming the dataset, how many images lack a mask, and the first few of them.
    """
    missing = [r["id"] for r in records if not r.get("mask")]
    if missing:
        raise ValueError(
            f"dataset '{dataset}': {len(missing)} of {len(records)} images have no lesion mask (e.g. {missing[:3]}); "
            "paired image + mask generation needs a mask for every image: use a dataset with masks "
            "(isic2018_task1, ham10000 with its segmentations, demo)."
        )
    return records
