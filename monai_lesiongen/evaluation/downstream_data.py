"""The image sets of the downstream tests: records and synthetic manifests read into memory, and skin-type groups."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirst, EnsureType, LoadImage, Resize, ScaleIntensityRange, Transpose
from monai.utils import convert_to_tensor

from monai_lesiongen.data.skin_tone import estimate_ita, ita_to_fitzpatrick

__all__ = [
    "MANIFEST_NAME",
    "SKIN_TYPE_GROUPINGS",
    "ImageSet",
    "read_manifest",
    "load_image_tensors",
    "load_mask_tensors",
    "fitzpatrick_types",
    "requested_fitzpatrick",
    "skin_type_groups",
    "draw_subset",
]

MANIFEST_NAME = "manifest.csv"
"""The file `SyntheticDatasetWriter` writes next to the synthetic images."""

_ROMAN = ("I", "II", "III", "IV", "V", "VI")
SKIN_TYPE_GROUPINGS: dict[str, dict[int, str]] = {
    "pairs": {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI"},
    "type": {t: _ROMAN[t - 1] for t in range(1, 7)},
}
"""Fitzpatrick type -> group name. ``pairs`` (the default of the reports) pools neighbouring types, because types V
and VI are rare in dermoscopy sets (in HAM10000-like test splits a single type can hold a handful of images, whose
accuracy would then decide the worst group); ``type`` keeps the six types apart."""

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class ImageSet:
    """
    Images in memory with what the downstream tests need of them.

    Attributes:
        images: (N, 3, H, W) float images in [0, 1].
        labels: (N,) class indices, or None (segmentation only).
        masks: (N, 1, H, W) binary lesion masks, or None (classification only).
        groups: N skin-type group names (used on test sets), or None.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}.")
        count = self.images.shape[0]
        if self.labels is not None:
            self.labels = torch.as_tensor(self.labels, dtype=torch.long).view(-1)
        for name, value in (("labels", self.labels), ("masks", self.masks), ("groups", self.groups)):
            if value is not None and len(value) != count:
                raise ValueError(f"{name} has {len(value)} entries for {count} images.")
        if self.masks is not None and self.masks.shape[-2:] != self.images.shape[-2:]:
            raise ValueError(f"masks {tuple(self.masks.shape)} and images {tuple(self.images.shape)} differ in size.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int]) -> ImageSet:
        """The items at ``indices``, in that order."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return ImageSet(
            images=self.images[index],
            labels=None if self.labels is None else self.labels[index],
            masks=None if self.masks is None else self.masks[index],
            groups=None if self.groups is None else [self.groups[i] for i in index.tolist()],
        )

    @staticmethod
    def concat(first: ImageSet, second: ImageSet) -> ImageSet:
        """Both sets, one after the other; a field is kept only where both sets have it.

        Raises:
            ValueError: when the images differ in channels or size.
        """
        if first.images.shape[1:] != second.images.shape[1:]:
            raise ValueError(
                f"cannot join images of shape {tuple(first.images.shape[1:])} and {tuple(second.images.shape[1:])}; "
                "load both sets at the same image_dim."
            )

        def joined(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None or b is None else torch.cat([a, b])

        return ImageSet(
            images=torch.cat([first.images, second.images]),
            labels=joined(first.labels, second.labels),
            masks=joined(first.masks, second.masks),
            groups=None if first.groups is None or second.groups is None else first.groups + second.groups,
        )


def _optional_int(value: str, path: Path, row: int, column: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(f"{path}, row {row}, column '{column}': expected an integer, got {value!r}.") from None


def read_manifest(folder: str | Path) -> list[dict[str, Any]]:
    """
    The rows of a synthetic data set's ``manifest.csv`` (as `SyntheticDatasetWriter` writes it), as records.

    Args:
        folder: the synthetic data set folder.

    Returns:
        one dict per row with every manifest column, ``image`` (the absolute path of ``file``), ``mask`` (absolute)
        where a ``mask`` column holds one, and ``label``, ``fitzpatrick`` and ``seed`` as ints where present.

    Raises:
        FileNotFoundError: when the manifest or a file it lists is missing.
        ValueError: when the manifest has no ``file`` column, or an integer column holds something else.
    """
    root = Path(folder).resolve()
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {root}: generate the synthetic set first (the bundle's `inferring` runner), "
            "or point the evaluation's synthetic folder (`inference_output_dir`) at one."
        )
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            raise ValueError(f"{path}: missing column 'file' (found {reader.fieldnames}); it names each image.")
        rows = list(reader)
    records = []
    for row_number, row in enumerate(rows, start=2):
        record: dict[str, Any] = dict(row)
        for key in ("file", "mask"):
            if row.get(key):
                target = root / row[key]
                if not target.is_file():
                    raise FileNotFoundError(f"{path}, row {row_number}: {key} {target} does not exist.")
                record["image" if key == "file" else "mask"] = str(target)
        for key in ("label", "fitzpatrick", "seed"):
            if key in row:
                record[key] = _optional_int(row[key], path, row_number, key)
        records.append(record)
    return records


def _is_nifti(path: str) -> bool:
    return str(path).lower().endswith(_NIFTI_SUFFIXES)


def _loader(image_dim: int, nifti: bool, mask: bool) -> Compose:
    """8-bit files (PNG, JPEG) are scaled from [0, 255]; NIfTI files are the float (W, H, C) arrays in [0, 1]
    that `SyntheticDatasetWriter` writes. Both come out in MONAI's (C, W, H) layout, as ``LoadImaged`` +
    ``EnsureChannelFirstd`` give a PNG in the training pipelines."""
    first: list[Callable] = (
        [LoadImage(image_only=True), Transpose((2, 0, 1))] if nifti else [LoadImage(image_only=True)]
    )
    if not nifti:
        first.append(EnsureChannelFirst())
    scale = [] if mask or nifti else [ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)]
    return Compose([*first, EnsureType(track_meta=False), Resize((image_dim, image_dim), mode="area"), *scale])


def _check_items(items: Sequence[Mapping[str, Any]], key: str) -> None:
    missing = [i for i, item in enumerate(items) if not item.get(key)]
    if missing:
        raise ValueError(f"items {missing[:5]} have no '{key}' path; every item needs one to be loaded.")


def load_image_tensors(items: Sequence[Mapping[str, Any]], image_dim: int, image_key: str = "image") -> torch.Tensor:
    """
    Read images into one tensor with MONAI transforms (``LoadImage``, ``EnsureChannelFirst``, ``Resize`` with area
    interpolation, ``ScaleIntensityRange`` from [0, 255] to [0, 1]).

    Works for reader records and for :func:`read_manifest` rows; grey images are repeated to RGB and an alpha
    channel is dropped.

    Args:
        items: dicts with an image path under ``image_key``.
        image_dim: the square output size, in pixels.
        image_key: the key of the path.

    Returns:
        (N, 3, image_dim, image_dim) float32 images in [0, 1].

    Raises:
        ValueError: when an item has no path, or ``items`` is empty.
    """
    if not items:
        raise ValueError("no items to load.")
    _check_items(items, image_key)
    loaders = {nifti: _loader(image_dim, nifti, mask=False) for nifti in (False, True)}
    images = []
    for item in items:
        path = str(item[image_key])
        image = convert_to_tensor(loaders[_is_nifti(path)](path), track_meta=False).float()
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        images.append(image[:3].clamp(0.0, 1.0))
    return torch.stack(images)


def load_mask_tensors(items: Sequence[Mapping[str, Any]], image_dim: int, mask_key: str = "mask") -> torch.Tensor:
    """
    Read lesion masks (0/255 or 0/1, the first channel of multi-channel files) into one binary tensor; each mask is
    binarised, area-resized and thresholded at 0.5, which keeps thin borders better than nearest-neighbour.

    Args:
        items: dicts with a mask path under ``mask_key``.
        image_dim: the square output size, in pixels.
        mask_key: the key of the path.

    Returns:
        (N, 1, image_dim, image_dim) float32 masks of 0 and 1.

    Raises:
        ValueError: when an item has no mask path, or ``items`` is empty.
    """
    if not items:
        raise ValueError("no items to load.")
    _check_items(items, mask_key)
    masks = []
    for item in items:
        path = str(item[mask_key])
        raw = convert_to_tensor(LoadImage(image_only=True, ensure_channel_first=True)(path), track_meta=False)
        raw = raw.float()[:1]
        binary = (raw > (127.5 if raw.max() > 1 else 0.5)).float()
        resized = Resize((image_dim, image_dim), mode="area")(binary)
        masks.append((convert_to_tensor(resized, track_meta=False) > 0.5).float())
    return torch.stack(masks)


def fitzpatrick_types(
    items: Sequence[Mapping[str, Any]], images: torch.Tensor, masks: torch.Tensor | None = None
) -> tuple[list[int], str]:
    """
    The Fitzpatrick type of every item: from its ``fitzpatrick`` field where present, else estimated from the skin
    around the lesion (ITA, :func:`monai_lesiongen.data.estimate_ita`, mapped by ``ita_to_fitzpatrick``).

    Args:
        items: records or manifest rows.
        images: their (N, 3, H, W) images in [0, 1].
        masks: their (N, 1, H, W) lesion masks, to keep lesion pixels out of the ITA estimate; optional.

    Returns:
        the N types 1-6, and where they came from: ``metadata``, ``ita`` or ``metadata+ita``.

    Raises:
        ValueError: when ``items`` and ``images`` differ in length.
    """
    if len(items) != images.shape[0]:
        raise ValueError(f"got {len(items)} items for {images.shape[0]} images.")
    types: list[int] = []
    estimated = 0
    for index, item in enumerate(items):
        value = item.get("fitzpatrick")
        if isinstance(value, (int, np.integer)) and 1 <= int(value) <= 6:
            types.append(int(value))
            continue
        mask = None if masks is None else masks[index, 0]
        types.append(ita_to_fitzpatrick(estimate_ita(images[index], mask, max_intensity=1.0)))
        estimated += 1
    source = "metadata" if estimated == 0 else "ita" if estimated == len(items) else "metadata+ita"
    return types, source


def requested_fitzpatrick(row: Mapping[str, Any]) -> list[int]:
    """
    The Fitzpatrick type(s) a plan or manifest row asks for: its ``fitzpatrick`` field (one type), else its
    ``fitzpatrick_types`` field (such as ``5-6``); an empty list when the row asks for none.

    Raises:
        ValueError: for a value that is not a type 1-6.
    """
    value = row.get("fitzpatrick")
    text = str(value) if value not in (None, "") else str(row.get("fitzpatrick_types") or "")
    parts = [part.strip() for part in text.split("-") if part.strip()]
    if not all(part.isdigit() and 1 <= int(part) <= 6 for part in parts):
        raise ValueError(f"the row's Fitzpatrick type {text!r} is not a type 1-6 (nor a pair such as '5-6').")
    return [int(part) for part in parts]


def skin_type_groups(types: Sequence[int], grouping: str = "pairs") -> list[str]:
    """
    Group names of Fitzpatrick types, see :data:`SKIN_TYPE_GROUPINGS`.

    Args:
        types: Fitzpatrick types 1-6.
        grouping: ``pairs`` (I-II, III-IV, V-VI) or ``type`` (I ... VI).

    Raises:
        ValueError: for an unknown grouping or a type outside 1-6.
    """
    if grouping not in SKIN_TYPE_GROUPINGS:
        raise ValueError(f"grouping must be one of {list(SKIN_TYPE_GROUPINGS)}, got {grouping!r}.")
    table = SKIN_TYPE_GROUPINGS[grouping]
    bad = sorted({t for t in types if t not in table})
    if bad:
        raise ValueError(f"Fitzpatrick types must be 1-6, got {bad}.")
    return [table[t] for t in types]


def draw_subset(images: ImageSet, count: int, seed: int) -> ImageSet:
    """``count`` items drawn without replacement with ``seed``, kept in their order (the whole set when ``count``
    is not smaller than it)."""
    if count >= len(images):
        return images
    chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    return images.subset(chosen.tolist())
