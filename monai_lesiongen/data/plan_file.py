"""A generation plan written by hand as a CSV file: one row per request, with its number of images.

Columns (the header names them; their order is free):

- ``count`` (required): the number of images of the row, an integer >= 1;
- ``caption`` and/or ``diagnosis`` (a class code; ``label_name`` is read as the same column): every row needs one;
  a row with a diagnosis and no caption gets one from the bundle's caption builder;
- ``fitzpatrick`` (optional): the skin type, 1-6 or I-VI;
- ``site``, ``age``, ``sex`` (optional), and any derm7pt concept column (``pigment_network``, ``streaks``, ...;
  `SEVEN_POINT_CONCEPTS`), which the caption builder states;
- any other column is kept as it is in the plan row, so it reaches the manifest (a note, a request id).

Empty cells are missing values. Every error names the file, the row (the header is row 1) and the field.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_lesiongen.data.records import DatasetFormatError
from monai_lesiongen.data.vocabulary import SEVEN_POINT_CONCEPTS

__all__ = ["PLAN_FILE_COLUMNS", "read_plan_csv"]

PLAN_FILE_COLUMNS: tuple[str, ...] = ("count", "caption", "diagnosis", "fitzpatrick", "site", "age", "sex")
"""The columns a plan file gives meaning to (besides the derm7pt concept columns)."""

_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}


def _count(value: str, file: str, row: int) -> int:
    if not value.isdigit() or int(value) < 1:
        raise DatasetFormatError(file, f"expected a whole number of images >= 1, got {value!r}.", row, "count")
    return int(value)


def _fitzpatrick(value: str, file: str, row: int) -> int:
    text = value.strip().upper()
    if text in _ROMAN:
        return _ROMAN[text]
    if text.isdigit() and 1 <= int(text) <= 6:
        return int(text)
    raise DatasetFormatError(file, f"expected a Fitzpatrick skin type 1-6 or I-VI, got {value!r}.", row, "fitzpatrick")


def _age(value: str, file: str, row: int) -> float:
    try:
        age = float(value)
    except ValueError:
        raise DatasetFormatError(file, f"expected an age in years, got {value!r}.", row, "age") from None
    if not 0 <= age <= 130:
        raise DatasetFormatError(file, f"expected an age in years (0-130), got {value!r}.", row, "age")
    return age


def read_plan_csv(
    path: str | Path,
    classes: Sequence[str],
    caption_builder: Callable[[Mapping[str, Any]], str] | None = None,
) -> list[dict[str, Any]]:
    """Plan rows from a CSV file, for `SyntheticDatasetWriter` with ``count_key="count"``.

    A row gets ``count``, ``caption`` (given, or built by `caption_builder` from its fields when it has a diagnosis),
    ``label_name`` and ``label`` (the class index) for a diagnosis, ``fitzpatrick``, ``site``, ``age``, ``sex``,
    ``concepts`` (a dict, from the concept columns), and every other column as written.

    Args:
        path: the CSV file.
        classes: the class codes the model was trained on, in label order.
        caption_builder: builds the caption of a row that has a diagnosis and no caption; None leaves it without.

    Raises:
        FileNotFoundError: when `path` is not a file.
        DatasetFormatError: for no ``count`` column, neither a ``caption`` nor a ``diagnosis`` column, no rows, and in a
            row: a bad count, an unknown diagnosis or skin type, a bad age, an unknown concept value, or neither a
            caption nor a diagnosis (naming the file, the row and the field).
    """
    file = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"the generation plan file {file} does not exist.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        lines = [{(k or "").strip(): (v or "").strip() for k, v in line.items()} for line in reader]
    columns = set(header)
    if "count" not in columns:
        raise DatasetFormatError(file, f"no 'count' column (the number of images of each row); the header is {header}.")
    if not columns & {"caption", "diagnosis", "label_name"}:
        raise DatasetFormatError(file, f"needs a 'caption' or a 'diagnosis' column; the header is {header}.")
    if not lines:
        raise DatasetFormatError(file, "has a header and no rows: nothing to generate.")
    rows = []
    for index, line in enumerate(lines):
        number = index + 2  # the header is row 1
        item: dict[str, Any] = {}
        concepts: dict[str, str] = {}
        for name, value in line.items():
            if value == "" or name in ("count", "diagnosis", "label_name"):
                continue
            if name == "fitzpatrick":
                item[name] = _fitzpatrick(value, file, number)
            elif name == "age":
                item[name] = _age(value, file, number)
            elif name in SEVEN_POINT_CONCEPTS:
                if value not in SEVEN_POINT_CONCEPTS[name]:
                    raise DatasetFormatError(
                        file, f"unknown value {value!r}; valid ones: {list(SEVEN_POINT_CONCEPTS[name])}.", number, name
                    )
                concepts[name] = value
            else:
                item[name] = value
        item["count"] = _count(line.get("count", ""), file, number)
        diagnosis = line.get("diagnosis") or line.get("label_name") or ""
        column = "diagnosis" if line.get("diagnosis") else "label_name"
        if diagnosis:
            if diagnosis not in classes:
                raise DatasetFormatError(
                    file, f"unknown diagnosis {diagnosis!r}; valid ones: {list(classes)}.", number, column
                )
            item["label_name"] = diagnosis
            item["label"] = list(classes).index(diagnosis)
        if concepts:
            item["concepts"] = concepts
        if not item.get("caption"):
            if not diagnosis:
                raise DatasetFormatError(file, "neither a caption nor a diagnosis: nothing to condition on.", number)
            if caption_builder is not None:
                item["caption"] = caption_builder(item)
        rows.append(item)
    return rows
