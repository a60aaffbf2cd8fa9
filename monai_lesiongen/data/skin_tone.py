"""Skin tone from pixels: the individual typology angle (ITA) and Fitzpatrick-like groups.

ITA = arctan((L* - 50) / b*) in degrees, on CIELAB values of skin pixels. The group thresholds are those of
Chardon et al. (1991) / Del Bino et al. (2006), mapped to Fitzpatrick-like types I-VI as in Kinyanjui et al.
(2020), which is how dermatology datasets without Fitzpatrick labels are usually grouped.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.color import rgb2lab

from monai_lesiongen.data.vocabulary import FITZPATRICK_TYPES

__all__ = [
    "ITA_GROUPS",
    "NUM_SKIN_TYPES",
    "estimate_ita",
    "ita_to_fitzpatrick",
    "ita_group_name",
    "fitzpatrick_to_ita_range",
    "skin_type_class",
]

ITA_GROUPS: tuple[tuple[str, float, float, int], ...] = (
    ("very light", 55.0, math.inf, 1),
    ("light", 41.0, 55.0, 2),
    ("intermediate", 28.0, 41.0, 3),
    ("tan", 10.0, 28.0, 4),
    ("brown", -30.0, 10.0, 5),
    ("dark", -math.inf, -30.0, 6),
)
"""(group name, lowest ITA, highest ITA, Fitzpatrick-like type), from lightest to darkest."""

NUM_SKIN_TYPES = len(FITZPATRICK_TYPES)
"""Fitzpatrick types I-VI. As a class condition they are classes 0-5, and class 6 is the null class: no type known."""


def estimate_ita(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    max_intensity: float = 255.0,
    min_skin_pixels: int = 16,
) -> float:
    """Estimate the ITA (degrees) of the skin around a lesion.

    The median L* and b* are taken over the pixels outside the lesion mask (over the whole image when there is no
    mask, or when fewer than `min_skin_pixels` lie outside it), which keeps hair and lesion pixels from biasing it.

    Args:
        image: RGB image, channel-first ``(3, H, W)`` as MONAI loads it.
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion; optional.
        max_intensity: the intensity of white in `image` (255 for 8-bit data, 1 for scaled data).
        min_skin_pixels: fewest skin pixels to trust; below it the whole image is used.

    Returns:
        The ITA in degrees; higher is lighter.

    Raises:
        ValueError: when `image` is not ``(3, H, W)`` or `mask` does not match its size.
    """
    rgb = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"image must be channel-first RGB (3, H, W), got shape {tuple(rgb.shape)}.")
    lab = rgb2lab(np.clip(np.moveaxis(rgb, 0, -1) / max_intensity, 0.0, 1.0))
    skin = np.ones(rgb.shape[1:], dtype=bool)
    if mask is not None:
        m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
        m = m.reshape(m.shape[-2:]) if m.ndim == 3 and m.shape[0] == 1 else m
        if m.shape != skin.shape:
            raise ValueError(f"mask shape {tuple(m.shape)} does not match image size {skin.shape}.")
        outside = m == 0
        if outside.sum() >= min_skin_pixels:
            skin = outside
    lightness = float(np.median(lab[..., 0][skin]))
    yellowness = float(np.median(lab[..., 2][skin]))
    return math.degrees(math.atan2(lightness - 50.0, yellowness))


def _group_of(ita: float) -> tuple[str, float, float, int]:
    for group in ITA_GROUPS:
        if group[1] < ita <= group[2] or (group[2] == math.inf and ita > group[1]):
            return group
    return ITA_GROUPS[-1]


def ita_to_fitzpatrick(ita: float) -> int:
    """Map an ITA (degrees) to a Fitzpatrick-like type 1 (lightest) to 6 (darkest)."""
    return _group_of(ita)[3]


def ita_group_name(ita: float) -> str:
    """Map an ITA (degrees) to its group name (``very light`` ... ``dark``)."""
    return _group_of(ita)[0]


def fitzpatrick_to_ita_range(fitzpatrick: int) -> tuple[float, float]:
    """The (low, high) ITA range of a Fitzpatrick-like type; the inverse of `ita_to_fitzpatrick`."""
    for _, low, high, skin_type in ITA_GROUPS:
        if skin_type == fitzpatrick:
            return low, high
    raise ValueError(f"Fitzpatrick type must be 1-6, got {fitzpatrick!r}.")


def skin_type_class(fitzpatrick: int | None) -> int:
    """The class index of a Fitzpatrick type for a class-conditioned denoiser: 0-5 for types I-VI, and the null class
    `NUM_SKIN_TYPES` for an unknown type (None), which the model learns as "any skin", like a dropped condition.

    Raises:
        ValueError: for a type other than None or 1-6.
    """
    if fitzpatrick is None:
        return NUM_SKIN_TYPES
    if isinstance(fitzpatrick, bool) or int(fitzpatrick) != fitzpatrick or not 1 <= int(fitzpatrick) <= NUM_SKIN_TYPES:
        raise ValueError(f"Fitzpatrick type must be 1-{NUM_SKIN_TYPES} or None (unknown), got {fitzpatrick!r}.")
    return int(fitzpatrick) - 1
