"""The CSV generation plan a user writes: its rows, and its errors naming the file, the row and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_lesiongen.data import HAM10000_CLASSES, DatasetFormatError
from monai_lesiongen.data.plan_file import read_plan_csv


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_carry_counts_conditions_concepts_and_extra_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "diagnosis,fitzpatrick,count,streaks,site,request,caption\n"
        "mel,VI,5,irregular,back,r1,\n"
        "df,2,3,,,r2,\n"
        ",,2,,,r3,a lesion on dark skin\n",
    )
    rows = read_plan_csv(path, HAM10000_CLASSES, lambda row: f"{row['label_name']} F{row['fitzpatrick']}")
    assert rows[0] == {
        "fitzpatrick": 6,
        "site": "back",
        "request": "r1",
        "count": 5,
        "label_name": "mel",
        "label": 4,
        "concepts": {"streaks": "irregular"},
        "caption": "mel F6",
    }
    assert (rows[1]["label"], rows[1]["count"], rows[1]["fitzpatrick"], rows[1]["caption"]) == (3, 3, 2, "df F2")
    assert "concepts" not in rows[1] and "site" not in rows[1]
    assert rows[2] == {"request": "r3", "caption": "a lesion on dark skin", "count": 2}


@pytest.mark.parametrize(
    ("text", "row", "field", "message"),
    [
        ("diagnosis,count\nmel,3\nxyz,2\n", 3, "diagnosis", "unknown diagnosis 'xyz'"),
        ("diagnosis,count\nmel,three\n", 2, "count", "whole number"),
        ("diagnosis,count\nmel,0\n", 2, "count", "whole number"),
        ("diagnosis,fitzpatrick,count\nmel,7,1\n", 2, "fitzpatrick", r"'7' is not one of \[1, 2, 3, 4, 5, 6\]"),
        ("diagnosis,age,count\nmel,old,1\n", 2, "age", "not a number of years"),
        ("diagnosis,sex,count\nmel,x,1\n", 2, "sex", "not male/female"),
        ("diagnosis,streaks,count\nmel,wavy,1\n", 2, "streaks", "'wavy' is not one of"),
        ("caption,diagnosis,count\n,,1\n", 2, None, "neither a caption nor a diagnosis"),
        ("diagnosis\nmel\n", 1, "count", r"missing column\(s\) \['count'\]"),
        ("fitzpatrick,count\n2,1\n", None, None, "'caption' or a 'diagnosis' column"),
        ("diagnosis,count\n", None, None, "no rows"),
    ],
)
def test_errors_name_the_file_row_and_field(
    tmp_path: Path, text: str, row: int | None, field: str | None, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DatasetFormatError, match=message) as error:
        read_plan_csv(path, HAM10000_CLASSES)
    assert error.value.file == str(path) and error.value.row == row and error.value.field_name == field
    assert str(path) in str(error.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_plan_csv(tmp_path / "nope.csv", HAM10000_CLASSES)
