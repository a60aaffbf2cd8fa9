"""Helpers of the reader tests (test_readers.py, test_reader_errors.py): where an error points, and CSV edits."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["edit", "where"]


def where(file: str, row: int | None, field: str) -> str:
    """Regex for the location part of a `DatasetFormatError` message."""
    row_part = f", row {row}" if row is not None else ""
    return re.escape(f"{file}{row_part}, field '{field}'")


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in the file at `path` by `new` (which must be there)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
