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

from monai_lesiongen.data.readers._images import ImageCheck, check_image_files
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

    def require_rows(self) -> None:
        """Raise a `DatasetFormatError` (never skippable: there is nothing to read) when the file has no data rows."""
        if not self.rows:
            raise DatasetFormatError(
                self.name,
                f"the file has a header but no rows, so there is nothing to read; it should hold one row per image "
                f"under its header {self.header}: download or export it again, or point the reader at the full file.",
            )

    def error(self, row: int, field_name: str, message: str) -> DatasetFormatError:
        """A `DatasetFormatError` about one cell of this file."""
        return DatasetFormatError(self.name, message, row=row, field_name=field_name)


def read_csv(path: Path) -> CsvTable:
    """Read a CSV file with a header row into a `CsvTable` (cells stripped; short rows padded with empty cells).

    Row numbers are the file's line numbers, so a user can go straight to the line in an editor.

    Raises:
        DatasetFormatError: (never skippable) when the file is empty, without even a header row.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise DatasetFormatError(
                str(path),
                "the file is empty: no header row and no rows, so there is nothing to read; download or export it "
                "again (a header row, then one row per image).",
            )
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
    check_images: bool = True,
    image_field: str | None = None,
) -> list[LesionRecord]:
    """Build one record per row of `table`, check its image and mask, and raise or skip (and count) bad rows.

    The rows are built first; then the images of the rows built are decoded in threads (see `check_image_files`);
    then each row is accepted or refused in file order, so the error raised (or the order of the skipped rows) does
    not depend on which thread finished first. A row's problems are reported in the order: empty id, duplicate id,
    whatever `build` raised, then its image and mask.

    Args:
        table: the dataset's main CSV.
        id_field: the column holding the image id (named in duplicate-id errors).
        build: makes the record of one row from ``(row number, cells)``, raising `DatasetFormatError` on a bad row;
            it finds the image and mask files, which are checked here.
        on_error: ``raise`` or ``skip``, as given to the reader.
        report: where skipped rows are counted.
        id_of: the image id of a row, when it is not simply the `id_field` cell.
        check_images: decode every record's image and mask (`check_image_file`).
        image_field: the column naming the image, for image errors; `id_field` when None.

    Raises:
        DatasetFormatError: (never skippable) when `table` has no rows; and with `on_error` ``raise``, for the
            first bad row: an empty or duplicate image id, whatever `build` raises, an unreadable or truncated
            image, an image that is not RGB, or a mask that is not binary or not of its image's size.
    """
    table.require_rows()
    built: list[tuple[int, str, LesionRecord | DatasetFormatError]] = []
    ids: set[str] = set()
    for row, values in table.rows:
        image_id = id_of(values) if id_of is not None else values[id_field]
        try:
            result: LesionRecord | DatasetFormatError = build(row, values)
        except DatasetFormatError as e:
            result = e
        built.append((row, image_id, result))
        if on_error == "raise" and (not image_id or image_id in ids or isinstance(result, DatasetFormatError)):
            break  # the rows after the first bad one are never reached: no need to decode their images
        ids.add(image_id)

    image_errors: dict[int, DatasetFormatError] = {}
    if check_images:
        field_name = image_field or id_field
        checked = [(row, r) for row, _, r in built if not isinstance(r, DatasetFormatError)]
        checks = [
            ImageCheck(Path(r["image"]), None if r["mask"] is None else Path(r["mask"]), table.name, row, field_name)
            for row, r in checked
        ]
        errors = check_image_files(checks, stop_at_first=on_error == "raise")
        image_errors = {checked[index][0]: error for index, error in errors.items()}

    records: list[LesionRecord] = []
    seen: dict[str, int] = {}
    for row, image_id, result in built:
        if not image_id:
            error = table.error(row, id_field, "empty image id.")
        elif image_id in seen:
            error = table.error(row, id_field, f"duplicate image id {image_id!r} (first in row {seen[image_id]}).")
        elif isinstance(result, DatasetFormatError):
            error = result
        elif row in image_errors:
            error = image_errors[row]
        else:
            seen[image_id] = row
            records.append(result)
            continue
        handle_row_error(error, on_error, report)
    return records
