"""``benchmarks/compare_samples.py``: the same plan rows and seeds from several synthetic folders, one row each."""

from __future__ import annotations

import csv
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
FIELDS = ["file", "seed", "label", "label_name", "fitzpatrick", "caption"]


@pytest.fixture
def compare_samples(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("compare_samples")


def _synthetic_folder(folder: Path, rows: list[tuple[int, int, int]], value: int) -> Path:
    """A manifest and one 8x8 image of grey `value` (with the seed in the red channel) per (seed, label, type)."""
    folder.mkdir(parents=True)
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for seed, label, skin_type in rows:
            name = f"img_{seed}_{label}_{skin_type}.png"
            pixels = np.full((8, 8, 3), value, np.uint8)
            pixels[..., 0] = seed * 10
            Image.fromarray(pixels).save(folder / name)
            caption = f"class {label}, type {skin_type}"
            writer.writerow(dict(zip(FIELDS, [name, seed, label, f"d{label}", skin_type, caption], strict=True)))
    return folder


def test_one_row_per_folder_in_the_first_folders_order(compare_samples: ModuleType, tmp_path: Path) -> None:
    rows = [(0, 0, 2), (1, 0, 2), (2, 1, 2), (3, 0, 5), (4, 1, 5), (5, 1, 3)]
    first = _synthetic_folder(tmp_path / "a", rows, 50)
    second = _synthetic_folder(tmp_path / "b", list(reversed(rows)), 200)  # same images, another file order
    images, chosen = compare_samples.compare([first, second], [2, 5], image_dim=8)
    # the first image of each diagnosis on types II and V, by type then diagnosis; type III is not asked for
    assert [(row["seed"], row["label"], row["fitzpatrick"]) for row in chosen] == [
        (0, 0, 2),
        (2, 1, 2),
        (3, 0, 5),
        (4, 1, 5),
    ]
    assert images.shape == (8, 3, 8, 8)
    seeds = (images[:, 0].mean(dim=(1, 2)) * 255 / 10).round().int().tolist()
    assert seeds == [0, 2, 3, 4, 0, 2, 3, 4]  # the second row pairs the same seeds
    grey = (images[:, 1].mean(dim=(1, 2)) * 255).round().int().tolist()
    assert grey == [50] * 4 + [200] * 4


def test_a_missing_image_names_the_folder(compare_samples: ModuleType, tmp_path: Path) -> None:
    first = _synthetic_folder(tmp_path / "a", [(0, 0, 2), (1, 1, 2)], 50)
    second = _synthetic_folder(tmp_path / "b", [(0, 0, 2)], 50)
    with pytest.raises(ValueError, match=r"b/manifest.csv has no image"):
        compare_samples.compare([first, second], [2], image_dim=8)


def test_the_script_writes_the_grid(tmp_path: Path) -> None:
    first = _synthetic_folder(tmp_path / "a", [(0, 0, 2), (1, 1, 5)], 50)
    second = _synthetic_folder(tmp_path / "b", [(0, 0, 2), (1, 1, 5)], 200)
    output = tmp_path / "grid.png"
    command = [sys.executable, str(BENCHMARKS / "compare_samples.py"), "--folders", str(first), str(second)]
    subprocess.run([*command, "--labels", "x", "y", "--image_dim", "8", "--output", str(output)], check=True)
    grid = Image.open(output)
    assert grid.width > 2 * 80 and grid.height > 2 * 80  # two columns, two rows of 80 px cells
