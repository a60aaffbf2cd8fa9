"""The record every dataset reader returns, and the errors and skip accounting they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

__all__ = [
    "LesionRecord",
    "RECORD_KEYS",
    "DatasetFormatError",
    "OnError",
    "SkipReport",
    "handle_row_error",
    "require_columns",
]

OnError = Literal["raise", "skip"]
"""What a reader does with a bad row: raise a `DatasetFormatError`, or skip it and count it in a `SkipReport`."""


class LesionRecord(TypedDict):
    """One image of a dataset, as every reader returns it (ready for a MONAI `Dataset`).

    Keys:
        id: image identifier, unique within the dataset (e.g. ``ISIC_0024306``).
        image: absolute path of the image file.
        mask: absolute path of the binary lesion mask, or None.
        label: integer index of ``label_name`` in the reader's class list.
        label_name: the dataset's own diagnosis code (e.g. ``mel``).
        concepts: dermoscopic concepts, concept name -> value (derm7pt vocabulary); empty when unknown.
        fitzpatrick: Fitzpatrick skin type 1-6, or None when unknown.
        age: age in years, or None.
        sex: ``male``/``female``, or None.
        site: anatomical site, or None.
        source: the reader that produced the record (e.g. ``ham10000``).
        group_id: the lesion or patient id that splits must keep together (the image id where the dataset has none).
        split: the dataset's official split (``train``/``valid``/``test``), or None.
    """

    id: str
    image: str
    mask: str | None
    label: int
    label_name: str
    concepts: dict[str, str]
    fitzpatrick: int | None
    age: float | None
    sex: str | None
    site: str | None
    source: str
    group_id: str
    split: str | None


RECORD_KEYS: tuple[str, ...] = tuple(LesionRecord.__annotations__)


class DatasetFormatError(ValueError):
    """A dataset folder does not match its official layout.

    The message names the file, the row (1-based, counting the header as row 1) and the field, and says what was
    expected, so that the user can fix the data or choose ``on_error="skip"``.
    """

    def __init__(self, file: str, message: str, row: int | None = None, field_name: str | None = None) -> None:
        self.file = file
        self.row = row
        self.field_name = field_name
        where = file
        if row is not None:
            where += f", row {row}"
        if field_name is not None:
            where += f", field '{field_name}'"
        super().__init__(f"{where}: {message}")


@dataclass
class SkipReport:
    """Counts and lists the rows a reader skipped with ``on_error="skip"``; nothing is skipped silently.

    Attributes:
        skipped: one entry per skipped row: the `DatasetFormatError` message.
    """

    skipped: list[str] = field(default_factory=list)

    def add(self, error: DatasetFormatError) -> None:
        self.skipped.append(str(error))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        if not self.skipped:
            return "no rows skipped"
        return f"{len(self.skipped)} rows skipped:\n" + "\n".join(f"  {s}" for s in self.skipped)

    def write(self, path: str) -> None:
        """Write the skipped rows, one a line, to `path` (so a user can review what was left out)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.skipped) + ("\n" if self.skipped else ""))


def handle_row_error(error: DatasetFormatError, on_error: OnError, report: SkipReport | None) -> None:
    """Raise `error`, or record it in `report` when the caller asked to skip bad rows."""
    if on_error == "raise":
        raise error
    if on_error != "skip":
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if report is None:
        raise ValueError("on_error='skip' needs a SkipReport to count the skipped rows in.")
    report.add(error)


def require_columns(file: str, header: Sequence[str], required: Sequence[str]) -> None:
    """Raise a `DatasetFormatError` naming `file` and every column of `required` missing from `header`."""
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetFormatError(
            file, f"missing column(s) {missing}; found {list(header)}.", row=1, field_name=missing[0]
        )
