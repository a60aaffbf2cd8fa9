"""The same plan rows and seeds drawn by different sampler settings or models, side by side in one PNG.

Each folder is a synthetic data set written by a bundle's ``inferring`` runner (as `condition_fidelity.py` writes
them); the images with the same seed and plan row start from the same x_T, so a column compares the settings on
one starting noise. One row per folder, one column per chosen manifest row (by default the first image of every
diagnosis on Fitzpatrick types II and V).

    python benchmarks/compare_samples.py --folders /tmp/runs/lg_curve/fidelity_synthetic_curve_e40 \\
        /tmp/runs/lg_curve/fidelity_synthetic_curve_e40_eta1 --labels "eta 0" "eta 1" \\
        --output benchmarks/results/sampling_eta_lesiongen.png
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_lesiongen.evaluation.downstream_data import load_image_tensors, read_manifest
from monai_lesiongen.utils.image_grid import save_image_grid


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies an image across folders: its plan row (diagnosis, skin type, caption) and its seed."""
    return (row.get("label"), row.get("fitzpatrick"), row.get("caption"), row.get("seed"))


def chosen_rows(rows: Sequence[Mapping[str, Any]], fitzpatrick_types: Sequence[int]) -> list[Mapping[str, Any]]:
    """The first image of every diagnosis on each of `fitzpatrick_types`, ordered by type then diagnosis."""
    chosen: dict[tuple[int, int], Mapping[str, Any]] = {}
    for row in rows:
        key = (int(row.get("fitzpatrick", 0) or 0), int(row["label"]))
        if key[0] in fitzpatrick_types and key not in chosen:
            chosen[key] = row
    return [chosen[key] for key in sorted(chosen)]


def compare(
    folders: Sequence[Path], fitzpatrick_types: Sequence[int], image_dim: int
) -> tuple[torch.Tensor, list[Mapping[str, Any]]]:
    """The images of the chosen rows from every folder, folder by folder; returns them and the chosen rows.

    Raises:
        ValueError: when a folder lacks an image of the first folder's chosen rows.
    """
    reference = chosen_rows(read_manifest(folders[0]), fitzpatrick_types)
    images = []
    for folder in folders:
        by_key = {row_key(row): row for row in read_manifest(folder)}
        missing = [row_key(row) for row in reference if row_key(row) not in by_key]
        if missing:
            raise ValueError(f"{folder}/manifest.csv has no image for {missing[0]} (label, type, caption, seed).")
        images.append(load_image_tensors([by_key[row_key(row)] for row in reference], image_dim))
    return torch.cat(images), reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", nargs="+", type=Path, required=True, help="synthetic data set folders")
    parser.add_argument("--labels", nargs="+", default=None, help="one short label per folder (its name by default)")
    parser.add_argument("--fitzpatrick_types", nargs="+", type=int, default=[2, 5])
    parser.add_argument("--image_dim", type=int, default=32)
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    if args.labels is not None and len(args.labels) != len(args.folders):
        parser.error(f"got {len(args.labels)} labels for {len(args.folders)} folders.")
    images, rows = compare(args.folders, args.fitzpatrick_types, args.image_dim)
    names = args.labels or [folder.name for folder in args.folders]
    labels = [
        f"{name} {row.get('label_name', row['label'])} F{row.get('fitzpatrick', '')}" for name in names for row in rows
    ]
    print("wrote", save_image_grid(images, args.output, num_columns=len(rows), labels=labels, cell_size=80))


if __name__ == "__main__":
    main()
