"""A procedural, dermoscopy-like demo data set in the exact HAM10000 layout, so that every bundle and test runs offline.

The data set is a real (if easy) learning problem: each diagnosis has its own shapes and colours, the seven-point
concepts are sampled per diagnosis from overlapping distributions and then drawn into the pixels, and the skin colour
follows the written Fitzpatrick type through its ITA range. About 1.3 images per lesion (another rotation, crop and
lighting of the same lesion), so splits must keep lesions together, as with the real HAM10000.

Layout written under ``out_dir``::

    HAM10000_metadata.csv                         lesion_id, image_id, dx, dx_type, age, sex, localization,
                                                  fitzpatrick and the seven-point concept columns
    HAM10000_images_part_1/ISIC_0024306.jpg ...   first half of the images (by image id)
    HAM10000_images_part_2/ISIC_....jpg           second half
    HAM10000_segmentations_lesion_tschandl/ISIC_0024306_segmentation.png   0/255 lesion masks

Command line: ``python -m monai_lesiongen.data.demo OUT_DIR [--n N] [--size S] [--seed K] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from monai_lesiongen.data.demo_rendering import LesionSpec, ViewSpec, render_view, sample_skin_lab
from monai_lesiongen.data.skin_tone import fitzpatrick_to_ita_range
from monai_lesiongen.data.vocabulary import FITZPATRICK_TYPES, HAM10000_CLASSES, SEVEN_POINT_CONCEPTS

__all__ = [
    "DEMO_CSV_NAME",
    "DEMO_IMAGE_DIRS",
    "DEMO_MASK_DIR",
    "DEMO_COLUMNS",
    "write_demo_dataset",
    "ensure_demo_dataset",
    "summarize_demo_dataset",
]

DEMO_CSV_NAME = "HAM10000_metadata.csv"
DEMO_IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
DEMO_MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
DEMO_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "image_id",
    "dx",
    "dx_type",
    "age",
    "sex",
    "localization",
    "fitzpatrick",
    *SEVEN_POINT_CONCEPTS,
)
"""Columns of the demo metadata CSV, in order: HAM10000's, then the Fitzpatrick type and the seven-point concepts."""

_FIRST_IMAGE_NUMBER = 24306  # HAM10000 starts at ISIC_0024306
_CLASS_SHARES = {"nv": 0.30, "mel": 0.15, "bkl": 0.15, "bcc": 0.12, "akiec": 0.10, "df": 0.09, "vasc": 0.09}
_FITZPATRICK_SHARES = (0.15, 0.30, 0.25, 0.15, 0.10, 0.05)
_AREA = {
    "nv": (0.12, 0.35),
    "mel": (0.2, 0.45),
    "bkl": (0.15, 0.4),
    "bcc": (0.12, 0.35),
    "akiec": (0.15, 0.4),
    "df": (0.07, 0.15),
    "vasc": (0.1, 0.3),
}
_AGE = {"nv": (40, 15), "mel": (62, 14), "bkl": (60, 13), "bcc": (66, 12), "akiec": (68, 11), "df": (45, 14)}
_DX_TYPES = ("histo", "follow_up", "consensus", "confocal")
_DX_TYPE_SHARES = {
    "nv": (0.3, 0.55, 0.1, 0.05),
    "mel": (1.0, 0.0, 0.0, 0.0),
    "bkl": (0.5, 0.05, 0.3, 0.15),
    "bcc": (1.0, 0.0, 0.0, 0.0),
    "akiec": (1.0, 0.0, 0.0, 0.0),
    "df": (0.5, 0.0, 0.5, 0.0),
    "vasc": (0.5, 0.0, 0.5, 0.0),
}
_SITES = (
    "back",
    "lower extremity",
    "trunk",
    "upper extremity",
    "abdomen",
    "face",
    "chest",
    "foot",
    "neck",
    "scalp",
    "hand",
    "ear",
    "genital",
    "acral",
    "unknown",
)
_SITE_SHARES = {  # in the order of _SITES
    "nv": (25, 20, 15, 10, 12, 2, 4, 3, 2, 1, 1, 0.5, 0.5, 0.5, 3),
    "mel": (25, 18, 8, 18, 4, 8, 5, 2, 3, 3, 1, 1, 0.5, 0.5, 3),
    "bkl": (20, 10, 8, 14, 6, 20, 8, 1, 4, 3, 2, 1, 0.2, 0.2, 3),
    "bcc": (20, 8, 6, 10, 3, 30, 8, 1, 5, 3, 1, 2, 0.2, 0.2, 3),
    "akiec": (5, 10, 2, 20, 1, 40, 5, 1, 3, 6, 5, 2, 0.2, 0.2, 2),
    "df": (5, 55, 5, 25, 2, 1, 2, 2, 1, 0.2, 1, 0.2, 0.2, 0.2, 1),
    "vasc": (20, 15, 15, 12, 15, 8, 5, 2, 2, 1, 1, 0.5, 0.5, 0.5, 3),
}
# value shares per diagnosis, in the value order of SEVEN_POINT_CONCEPTS; the overlap between diagnoses is deliberate
_CONCEPT_SHARES: dict[str, dict[str, tuple[float, ...]]] = {
    "pigment_network": {
        "nv": (0.35, 0.5, 0.15),
        "mel": (0.25, 0.2, 0.55),
        "bkl": (0.7, 0.2, 0.1),
        "bcc": (0.9, 0.05, 0.05),
        "akiec": (0.9, 0.05, 0.05),
        "df": (0.3, 0.65, 0.05),
        "vasc": (0.97, 0.03, 0.0),
    },
    "streaks": {
        "nv": (0.85, 0.12, 0.03),
        "mel": (0.5, 0.15, 0.35),
        "bkl": (0.95, 0.03, 0.02),
        "bcc": (0.95, 0.02, 0.03),
        "akiec": (0.97, 0.02, 0.01),
        "df": (0.97, 0.03, 0.0),
        "vasc": (1.0, 0.0, 0.0),
    },
    "pigmentation": {
        "nv": (0.05, 0.6, 0.1, 0.2, 0.05),
        "mel": (0.05, 0.1, 0.45, 0.1, 0.3),
        "bkl": (0.1, 0.45, 0.25, 0.15, 0.05),
        "bcc": (0.55, 0.05, 0.1, 0.1, 0.2),
        "akiec": (0.7, 0.1, 0.1, 0.05, 0.05),
        "df": (0.5, 0.2, 0.05, 0.2, 0.05),
        "vasc": (0.9, 0.03, 0.02, 0.03, 0.02),
    },
    "regression_structures": {
        "nv": (0.9, 0.04, 0.04, 0.02),
        "mel": (0.45, 0.2, 0.15, 0.2),
        "bkl": (0.75, 0.1, 0.1, 0.05),
        "bcc": (0.6, 0.25, 0.1, 0.05),
        "akiec": (0.85, 0.03, 0.1, 0.02),
        "df": (0.7, 0.0, 0.3, 0.0),
        "vasc": (0.9, 0.05, 0.05, 0.0),
    },
    "dots_and_globules": {
        "nv": (0.4, 0.5, 0.1),
        "mel": (0.3, 0.15, 0.55),
        "bkl": (0.6, 0.25, 0.15),
        "bcc": (0.7, 0.1, 0.2),
        "akiec": (0.75, 0.15, 0.1),
        "df": (0.8, 0.15, 0.05),
        "vasc": (0.85, 0.1, 0.05),
    },
    "blue_whitish_veil": {
        "nv": (0.95, 0.05),
        "mel": (0.45, 0.55),
        "bkl": (0.9, 0.1),
        "bcc": (0.75, 0.25),
        "akiec": (0.95, 0.05),
        "df": (0.95, 0.05),
        "vasc": (0.8, 0.2),
    },
    "vascular_structures": {  # absent, arborizing, comma, hairpin, within regression, wreath, dotted, linear irregular
        "nv": (0.85, 0.0, 0.12, 0.0, 0.0, 0.0, 0.03, 0.0),
        "mel": (0.6, 0.02, 0.03, 0.03, 0.07, 0.0, 0.12, 0.13),
        "bkl": (0.7, 0.02, 0.03, 0.15, 0.0, 0.05, 0.05, 0.0),
        "bcc": (0.15, 0.7, 0.02, 0.02, 0.0, 0.0, 0.03, 0.08),
        "akiec": (0.3, 0.02, 0.0, 0.03, 0.0, 0.0, 0.55, 0.1),
        "df": (0.75, 0.0, 0.0, 0.0, 0.0, 0.1, 0.15, 0.0),
        "vasc": (0.85, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.05),
    },
}


@dataclass(frozen=True)
class _Lesion:
    """One lesion of the demo data set and the metadata of its patient."""

    lesion_id: str
    spec: LesionSpec
    fitzpatrick: int
    dx_type: str
    age: str
    sex: str
    localization: str


def _quota(rng: np.random.Generator, total: int, shares: Sequence[float]) -> np.ndarray:
    """Indices ``0..len(shares)-1`` in the given proportions (largest remainders), shuffled."""
    exact = np.asarray(shares, dtype=float) / np.sum(shares) * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: total - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def _choice(rng: np.random.Generator, values: Sequence[str], shares: Sequence[float]) -> str:
    p = np.asarray(shares, dtype=float)
    return values[int(rng.choice(len(values), p=p / p.sum()))]


def _sample_lesions(rng: np.random.Generator, num_lesions: int) -> list[_Lesion]:
    """Diagnosis, skin type, concepts and patient metadata of every lesion (class and skin-type shares by quota)."""
    classes = list(_CLASS_SHARES)
    dx_of = _quota(rng, num_lesions, list(_CLASS_SHARES.values()))
    skin_of = _quota(rng, num_lesions, _FITZPATRICK_SHARES)
    numbers = rng.permutation(num_lesions)
    lesions = []
    for index in range(num_lesions):
        dx, fitzpatrick = classes[dx_of[index]], FITZPATRICK_TYPES[skin_of[index]]
        concepts = {
            name: _choice(rng, values, _CONCEPT_SHARES[name][dx]) for name, values in SEVEN_POINT_CONCEPTS.items()
        }
        mean_age, sd_age = _AGE.get(dx, (50, 18))
        age = "" if rng.random() < 0.02 else f"{float(np.clip(5 * round(rng.normal(mean_age, sd_age) / 5), 0, 85)):.1f}"
        spec = LesionSpec(
            dx=dx,
            concepts=concepts,
            skin_lab=sample_skin_lab(rng, fitzpatrick_to_ita_range(fitzpatrick)),
            area=float(rng.uniform(*_AREA[dx])),
            seed=int(rng.integers(2**31)),
        )
        lesions.append(
            _Lesion(
                lesion_id=f"HAM_{numbers[index]:07d}",
                spec=spec,
                fitzpatrick=fitzpatrick,
                dx_type=_choice(rng, _DX_TYPES, _DX_TYPE_SHARES[dx]),
                age=age,
                sex=_choice(rng, ("male", "female", "unknown"), (0.53, 0.45, 0.02)),
                localization=_choice(rng, _SITES, _SITE_SHARES[dx]),
            )
        )
    return lesions


def _sample_view(rng: np.random.Generator) -> ViewSpec:
    """Rotation, crop, lighting, hair and noise seed of one image."""
    return ViewSpec(
        angle=float(rng.uniform(0.0, 2.0 * math.pi)),
        zoom=float(rng.uniform(0.9, 1.12)),
        shift=(float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.1, 0.1))),
        gain=float(rng.uniform(0.985, 1.015)),
        vignette=float(rng.uniform(0.2, 1.0)),
        hairs=int(rng.integers(1, 6)) if rng.random() < 0.3 else 0,
        seed=int(rng.integers(2**31)),
    )


def write_demo_dataset(
    out_dir: str | Path,
    num_images: int = 1000,
    image_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the procedural demo data set in the HAM10000 layout.

    The same arguments give a byte-identical CSV and identical pixels. The CSV is written last, so its presence
    means the data set is complete.

    Args:
        out_dir: folder to write into (created if needed).
        num_images: number of images (about 1.3 per lesion).
        image_size: width and height of the square images, in pixels.
        seed: seed of the single random generator everything is drawn from.
        progress: show a progress bar.
        overwrite: write even if `out_dir` already holds a data set (its images and masks are replaced).

    Returns:
        The path of the metadata CSV.

    Raises:
        ValueError: when `num_images` < 1 or `image_size` < 16.
        FileExistsError: when `out_dir` already holds ``HAM10000_metadata.csv`` and `overwrite` is not set.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}.")
    out = Path(out_dir)
    csv_path = out / DEMO_CSV_NAME
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} already exists; pass overwrite=True (--overwrite) to replace the data set.")
    for folder in (*DEMO_IMAGE_DIRS, DEMO_MASK_DIR):
        (out / folder).mkdir(parents=True, exist_ok=True)
        if overwrite:  # no image of the old data set may outlive it
            for stale in (out / folder).glob("ISIC_*"):
                stale.unlink()
    csv_path.unlink(missing_ok=True)

    rng = np.random.default_rng(seed)
    views_of: list[int] = []  # images per lesion: 1 or 2, about 1.3 on average
    while (written := sum(views_of)) < num_images:
        views_of.append(min(2 if rng.random() < 0.3 else 1, num_images - written))
    lesions = _sample_lesions(rng, len(views_of))
    images = [
        (lesion, _sample_view(rng)) for lesion, count in zip(lesions, views_of, strict=True) for _ in range(count)
    ]
    numbers = rng.permutation(num_images)  # images of one lesion get unrelated ids, as in HAM10000
    order = np.argsort(numbers)
    rows = []
    for rank, index in enumerate(tqdm(order, total=num_images, disable=not progress, desc="demo images")):
        lesion, view = images[index]
        image_id = f"ISIC_{_FIRST_IMAGE_NUMBER + rank:07d}"
        pixels, mask = render_view(lesion.spec, view, image_size)
        folder = DEMO_IMAGE_DIRS[0] if rank < (num_images + 1) // 2 else DEMO_IMAGE_DIRS[1]
        Image.fromarray(pixels, mode="RGB").save(out / folder / f"{image_id}.jpg", quality=95)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
            out / DEMO_MASK_DIR / f"{image_id}_segmentation.png"
        )
        meta = [lesion.lesion_id, image_id, lesion.spec.dx, lesion.dx_type, lesion.age, lesion.sex]
        rows.append([*meta, lesion.localization, str(lesion.fitzpatrick), *lesion.spec.concepts.values()])
    partial = csv_path.with_suffix(".csv.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DEMO_COLUMNS)
        writer.writerows(rows)
    os.replace(partial, csv_path)
    return csv_path


def ensure_demo_dataset(
    out_dir: str | Path, num_images: int = 1000, image_size: int = 64, seed: int = 0, progress: bool = True
) -> Path:
    """Write the demo data set into `out_dir` unless its metadata CSV is already there (bundles call it on first run).

    An existing data set is kept as it is, whatever arguments wrote it.

    Args:
        out_dir: folder of the data set.
        num_images: number of images, when it has to be written.
        image_size: image width and height, when it has to be written.
        seed: random seed, when it has to be written.
        progress: show a progress bar while writing.

    Returns:
        The data set folder.
    """
    out = Path(out_dir)
    if not (out / DEMO_CSV_NAME).exists():
        write_demo_dataset(out, num_images=num_images, image_size=image_size, seed=seed, progress=progress)
    return out


def summarize_demo_dataset(csv_path: str | Path) -> str:
    """A readable summary of a demo metadata CSV: images per diagnosis, per Fitzpatrick type, and per concept present.

    Args:
        csv_path: path of ``HAM10000_metadata.csv``.

    Returns:
        The summary, several lines.
    """
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    dx = Counter(row["dx"] for row in rows)
    skin = Counter(row["fitzpatrick"] for row in rows)
    lines = [
        f"demo data set: {len(rows)} images of {len({row['lesion_id'] for row in rows})} lesions",
        "diagnosis: " + ", ".join(f"{name} {dx[name]}" for name in HAM10000_CLASSES),
        "Fitzpatrick type: " + ", ".join(f"{t} {skin[str(t)]}" for t in FITZPATRICK_TYPES),
        "concept present: "
        + ", ".join(f"{name} {sum(row[name] != 'absent' for row in rows)}" for name in SEVEN_POINT_CONCEPTS),
        f"folder: {Path(csv_path).resolve().parent}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: write the demo data set and print its summary."""
    parser = argparse.ArgumentParser(description="Write the procedural demo data set in the HAM10000 layout.")
    parser.add_argument("out_dir", help="folder to write the data set into")
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, default=64, help="image width and height in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing data set in out_dir")
    args = parser.parse_args(argv)
    try:
        csv_path = write_demo_dataset(args.out_dir, args.n, args.size, args.seed, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(summarize_demo_dataset(csv_path))


if __name__ == "__main__":
    main()
