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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_lesiongen.data.readers._common import (
    is_missing,
    parse_age,
    parse_concepts,
    parse_fitzpatrick,
    parse_sex,
    parse_site,
    read_csv,
)
from monai_lesiongen.data.records import DatasetFormatError
from monai_lesiongen.data.vocabulary import SEVEN_POINT_CONCEPTS

__all__ = ["read_plan_csv"]

_ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6"}
_OWN_COLUMNS = frozenset({"count", "caption", "diagnosis", "label_name", "fitzpatrick", "site", "age", "sex"})


def _count(value: str, file: str, row: int) -> int:
    if not value.isdigit() or int(value) < 1:
        raise DatasetFormatError(file, f"expected a whole number of images >= 1, got {value!r}.", row, "count")
    return int(value)


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
            row: a bad count, an unknown diagnosis, skin type, age, sex or concept value, or neither a caption nor a
            diagnosis (naming the file, the row and the field). Cells are read as the dataset readers read them
            (`monai_lesiongen.data.readers`): empty or ``unknown`` cells are missing values.
    """
    file = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"the generation plan file {file} does not exist.")
    table = read_csv(Path(path))
    table.require(["count"])
    if not set(table.header) & {"caption", "diagnosis", "label_name"}:
        raise DatasetFormatError(file, f"needs a 'caption' or a 'diagnosis' column; the header is {table.header}.")
    table.require_rows()
    rows = []
    for number, line in table.rows:
        item: dict[str, Any] = {"count": _count(line.get("count", ""), file, number)}
        fitzpatrick = line.get("fitzpatrick", "")
        fitzpatrick = _ROMAN.get(fitzpatrick.strip().upper(), fitzpatrick)
        known = {
            "caption": None if is_missing(line.get("caption")) else line["caption"],
            "fitzpatrick": parse_fitzpatrick(fitzpatrick, file, number, "fitzpatrick", missing=()),
            "site": parse_site(line.get("site", "")),
            "age": parse_age(line.get("age", ""), file, number, "age"),
            "sex": parse_sex(line.get("sex", ""), file, number, "sex"),
            "concepts": parse_concepts(line, file, number) or None,
        }
        item.update({key: value for key, value in known.items() if value is not None})
        item.update({k: v for k, v in line.items() if k not in _OWN_COLUMNS and k not in SEVEN_POINT_CONCEPTS and v})
        column = "diagnosis" if line.get("diagnosis") else "label_name"
        diagnosis = line.get(column, "")
        if diagnosis:
            if diagnosis not in classes:
                raise DatasetFormatError(
                    file, f"unknown diagnosis {diagnosis!r}; valid ones: {list(classes)}.", number, column
                )
            item["label_name"] = diagnosis
            item["label"] = list(classes).index(diagnosis)
        if not item.get("caption"):
            if not diagnosis:
                raise DatasetFormatError(file, "neither a caption nor a diagnosis: nothing to condition on.", number)
            if caption_builder is not None:
                item["caption"] = caption_builder(item)
        rows.append(item)
    return rows
