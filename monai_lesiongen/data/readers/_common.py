"""Helpers shared by the dataset readers: CSV tables, image lookup and checks, value parsing, record building.

Every helper that finds a problem in one row raises a `DatasetFormatError` naming the file, the row (1-based,
the header is row 1) and the field, so that the reader can either raise it or skip the row with
`handle_row_error`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from monai_lesiongen.data.records import (
    DatasetFormatError,
    LesionRecord,
    OnError,
    SkipReport,
    handle_row_error,
    require_columns,
)
from monai_lesiongen.data.vocabulary import FITZPATRICK_TYPES, SEVEN_POINT_CONCEPTS

__all__ = [
    "IMAGE_EXTENSIONS",
    "MISSING_VALUES",
    "CsvTable",
    "ImageIndex",
    "check_on_error",
    "require_root",
    "require_file",
    "read_csv",
    "is_missing",
    "image_size",
    "check_mask_size",
    "parse_age",
    "parse_sex",
    "parse_site",
    "parse_fitzpatrick",
    "parse_concepts",
    "make_record",
    "collect_rows",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
"""File extensions tried, in order, when a dataset names an image without its extension."""

MISSING_VALUES: frozenset[str] = frozenset({"", "unknown", "nan", "none", "na", "n/a", "null"})
"""Cell values (lower-cased, stripped) that mean "not recorded"; they become None, never a guess."""

_SEX_VALUES: dict[str, str] = {"male": "male", "m": "male", "female": "female", "f": "female"}


def check_on_error(on_error: OnError, report: SkipReport | None) -> None:
    """Check a reader's `on_error`/`report` pair before any row is read.

    Raises:
        ValueError: when `on_error` is not ``raise``/``skip``, or ``skip`` comes without a `SkipReport`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if on_error == "skip" and report is None:
        raise ValueError("on_error='skip' needs a SkipReport to count the skipped rows in; pass report=SkipReport().")


def require_root(root: str | Path, dataset: str, expected: str) -> Path:
    """Return `root` as an absolute path, or raise if the dataset folder does not exist.

    Args:
        root: the dataset folder given by the user.
        dataset: the dataset name, for the message.
        expected: what the folder should contain, for the message.

    Raises:
        FileNotFoundError: naming the folder and what was expected in it.
    """
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset} folder {path} does not exist; expected a folder containing {expected}.")
    return path


def require_file(path: Path, dataset: str, expected: str) -> Path:
    """Return `path` if it is a file, else raise naming it and what it should hold.

    Raises:
        FileNotFoundError: naming the file and what was expected there.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: {path} not found; expected {expected} there.")
    return path


@dataclass
class CsvTable:
    """A CSV file read as text cells.

    Attributes:
        path: the file.
        header: the column names (stripped).
        rows: ``(row number, {column: stripped value})``, the row number 1-based with the header as row 1.
    """

    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The file path as a string, as error messages name it."""
        return str(self.path)

    def require(self, columns: Sequence[str]) -> None:
        """Raise a `DatasetFormatError` (never skippable) when any of `columns` is missing from the header."""
        require_columns(self.name, self.header, columns)

    def error(self, row: int, field_name: str, message: str) -> DatasetFormatError:
        """A `DatasetFormatError` about one cell of this file."""
        return DatasetFormatError(self.name, message, row=row, field_name=field_name)


def read_csv(path: Path) -> CsvTable:
    """Read a CSV file with a header row into a `CsvTable` (cells stripped; short rows padded with empty cells).

    Row numbers are the file's line numbers, so a user can go straight to the line in an editor.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            values = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
            rows.append((reader.line_num, values))
    return CsvTable(path=path, header=header, rows=rows)


class ImageIndex:
    """Finds files by name in a list of candidate folders, listing each folder once (fast for large datasets).

    Args:
        folders: folders to search, in order of preference; those that do not exist are ignored.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self.folders = [Path(f) for f in folders]
        self._files: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name not in self._files and entry.is_file():
                        self._files[entry.name] = Path(entry.path)

    def find(self, name: str, extensions: Sequence[str] = ()) -> Path | None:
        """The file called `name`, else `name` plus the first of `extensions` that exists, else None."""
        found = self._files.get(name)
        if found is not None:
            return found
        for ext in extensions:
            found = self._files.get(name + ext)
            if found is not None:
                return found
        return None

    def names(self) -> list[str]:
        """All file names found, sorted."""
        return sorted(self._files)

    def describe(self) -> str:
        """The searched folders, for error messages."""
        return ", ".join(str(f) for f in self.folders)


def is_missing(value: str | None) -> bool:
    """Whether a cell means "not recorded" (see `MISSING_VALUES`)."""
    return value is None or value.strip().lower() in MISSING_VALUES


def image_size(path: Path, file: str, row: int | None, field_name: str) -> tuple[int, int]:
    """Read an image header with PIL and return its ``(width, height)``.

    Args:
        path: the image (or mask) file.
        file: the file the error should be reported against (the CSV naming the image, or the image itself).
        row: the CSV row, or None.
        field_name: the field that names the image.

    Raises:
        DatasetFormatError: when PIL cannot read the file; the message names the image file.
    """
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetFormatError(
            file, f"cannot read image file {path} ({e}); replace the file or skip the row.", row, field_name
        ) from e


def check_mask_size(
    mask: Path, size: tuple[int, int], image: Path, file: str, row: int | None, field_name: str = "mask"
) -> None:
    """Raise a `DatasetFormatError` when `mask` is unreadable or its size differs from its image's `size`."""
    mask_size = image_size(mask, file, row, field_name)
    if mask_size != size:
        raise DatasetFormatError(
            file,
            f"mask {mask} is {mask_size[0]}x{mask_size[1]} but its image {image} is {size[0]}x{size[1]}; "
            "a mask must have the size of its image.",
            row,
            field_name,
        )


def parse_age(value: str, file: str, row: int, field_name: str) -> float | None:
    """Age in years from a cell; None when not recorded.

    Raises:
        DatasetFormatError: for a value that is not a number between 0 and 130.
    """
    if is_missing(value):
        return None
    try:
        age = float(value)
    except ValueError:
        age = -1.0
    if not 0.0 <= age <= 130.0:
        raise DatasetFormatError(file, f"age {value!r} is not a number of years (0-130) or empty.", row, field_name)
    return age


def parse_sex(value: str, file: str, row: int, field_name: str) -> str | None:
    """``male``/``female`` from a cell (any case, or ``M``/``F``); None when not recorded.

    Raises:
        DatasetFormatError: for any other value.
    """
    if is_missing(value):
        return None
    sex = _SEX_VALUES.get(value.strip().lower())
    if sex is None:
        raise DatasetFormatError(file, f"sex {value!r} is not male/female or empty.", row, field_name)
    return sex


def parse_site(value: str) -> str | None:
    """Anatomical site as written in the dataset; None when not recorded."""
    return None if is_missing(value) else value.strip()


def parse_fitzpatrick(value: str, file: str, row: int, field_name: str, missing: Sequence[str] = ("-1",)) -> int | None:
    """Fitzpatrick skin type 1-6 from a cell (``3`` or ``3.0``); None when not recorded or in `missing`.

    Raises:
        DatasetFormatError: for any other value.
    """
    if is_missing(value) or value.strip() in missing:
        return None
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number.is_integer() or int(number) not in FITZPATRICK_TYPES:
        raise DatasetFormatError(
            file, f"Fitzpatrick type {value!r} is not one of {list(FITZPATRICK_TYPES)} or empty.", row, field_name
        )
    return int(number)


def parse_concepts(values: dict[str, str], file: str, row: int) -> dict[str, str]:
    """The seven-point checklist concepts found among `values` (columns named as `SEVEN_POINT_CONCEPTS` keys).

    Columns absent from `values`, and empty or unknown cells, are left out of the result.

    Raises:
        DatasetFormatError: for a value outside that concept's vocabulary, naming the field.
    """
    concepts: dict[str, str] = {}
    for name, allowed in SEVEN_POINT_CONCEPTS.items():
        value = values.get(name)
        if value is None or is_missing(value):
            continue
        if value not in allowed:
            raise DatasetFormatError(file, f"{value!r} is not one of {list(allowed)}.", row, name)
        concepts[name] = value
    return concepts


def make_record(
    *,
    id: str,
    image: Path,
    label: int,
    label_name: str,
    source: str,
    group_id: str | None = None,
    mask: Path | None = None,
    concepts: dict[str, str] | None = None,
    fitzpatrick: int | None = None,
    age: float | None = None,
    sex: str | None = None,
    site: str | None = None,
    split: str | None = None,
) -> LesionRecord:
    """Build a `LesionRecord` with every key; `group_id` defaults to the image `id`."""
    return LesionRecord(
        id=id,
        image=str(image),
        mask=None if mask is None else str(mask),
        label=label,
        label_name=label_name,
        concepts={} if concepts is None else concepts,
        fitzpatrick=fitzpatrick,
        age=age,
        sex=sex,
        site=site,
        source=source,
        group_id=id if group_id is None else group_id,
        split=split,
    )


def collect_rows(
    table: CsvTable,
    id_field: str,
    build: Callable[[int, dict[str, str]], LesionRecord],
    on_error: OnError,
    report: SkipReport | None,
    id_of: Callable[[dict[str, str]], str] | None = None,
) -> list[LesionRecord]:
    """Build one record per row of `table`, raising or skipping (and counting) the rows that fail.

    Args:
        table: the dataset's main CSV.
        id_field: the column holding the image id (named in duplicate-id errors).
        build: makes the record of one row from ``(row number, cells)``, raising `DatasetFormatError` on a bad row.
        on_error: ``raise`` or ``skip``, as given to the reader.
        report: where skipped rows are counted.
        id_of: the image id of a row, when it is not simply the `id_field` cell.

    Raises:
        DatasetFormatError: for a bad row (an empty or duplicate image id, or whatever `build` raises) when
            `on_error` is ``raise``.
    """
    records: list[LesionRecord] = []
    seen: dict[str, int] = {}
    for row, values in table.rows:
        try:
            image_id = id_of(values) if id_of is not None else values[id_field]
            if not image_id:
                raise table.error(row, id_field, "empty image id.")
            if image_id in seen:
                raise table.error(
                    row,
                    id_field,
                    f"duplicate image id {image_id!r} (first in row {seen[image_id]}).",
                )
            record = build(row, values)
        except DatasetFormatError as e:
            handle_row_error(e, on_error, report)
            continue
        seen[image_id] = row
        records.append(record)
    return records
