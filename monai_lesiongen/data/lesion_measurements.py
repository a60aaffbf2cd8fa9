"""Lesion fields measured from pixels: size, border irregularity, dermoscopic colours, asymmetry and skin tone.

Captions built from these fields describe what the image shows; nothing is guessed. Every function takes a
channel-first RGB image ``(3, H, W)`` as MONAI loads it and/or a lesion mask ``(H, W)`` or ``(1, H, W)`` that is
nonzero inside the lesion (``0``/``255`` PNG masks and ``0``/``1`` masks both work).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull, QhullError
from skimage.color import rgb2lab
from skimage.measure import find_contours

from monai_lesiongen.data.skin_tone import estimate_ita, ita_group_name

__all__ = [
    "DERMOSCOPIC_COLOURS",
    "BORDER_THRESHOLDS",
    "ASYMMETRY_THRESHOLD",
    "LesionMeasurements",
    "lesion_area_percent",
    "border_irregularity",
    "colour_count",
    "asymmetry",
    "measure_lesion",
]

DERMOSCOPIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (197, 188, 217),
    "red": (118, 21, 17),
    "light brown": (163, 82, 16),
    "dark brown": (135, 44, 5),
    "blue-grey": (113, 108, 139),
    "black": (41, 31, 30),
}
"""The six colours of the dermoscopic ABCD rule, as 8-bit sRGB reference values (Kasmi & Mokrani, "Classification
of malignant melanoma and benign skin lesions: implementation of automatic ABCD rule", IET Image Processing, 2016).
Pixels are assigned to the nearest of them in CIELAB."""

BORDER_THRESHOLDS: tuple[float, float] = (0.05, 0.15)
"""Border irregularity scores (see `border_irregularity`) below the first are ``regular``, below the second
``slightly irregular``, and the rest ``irregular``. Measured on masks: digitised disks (radius 2-60 pixels) and
ellipses score under 0.035; a disk whose radius wobbles by 10% eight times around scores about 0.1; five- to
eight-pointed stars score 0.17-0.37."""

ASYMMETRY_THRESHOLD: float = 0.1
"""A mask is asymmetric about an axis when more than this fraction of its pixels has no mirror image in the mask."""

_REFERENCE_LAB: np.ndarray = rgb2lab(np.array([list(DERMOSCOPIC_COLOURS.values())], dtype=np.float64) / 255.0)[0]


@dataclass
class LesionMeasurements:
    """What `measure_lesion` measured; a field is None where there was nothing to measure it from.

    Attributes:
        area_percent: lesion area as a percentage of the image (0-100).
        border_word: ``regular``, ``slightly irregular`` or ``irregular`` (see `BORDER_THRESHOLDS`).
        colours: dermoscopic colours covering at least 5% of the lesion, most widespread first.
        ita: individual typology angle of the surrounding skin, in degrees (higher is lighter).
        skin_group: the ITA group name of `ita` (``very light`` ... ``dark``).
        border_score: the border irregularity score behind `border_word`.
        asymmetric_axes: number of principal axes (0, 1 or 2) the lesion is asymmetric about, as in the ABCD rule.
    """

    area_percent: float | None
    border_word: str | None
    colours: list[str] | None
    ita: float
    skin_group: str
    border_score: float | None = None
    asymmetric_axes: int | None = None


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.asarray(array.detach().cpu() if isinstance(array, torch.Tensor) else array)


def _binary_mask(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    m = _as_numpy(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W) or (1, H, W), got shape {tuple(m.shape)}.")
    return m > 0


def _nonempty_mask(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    m = _binary_mask(mask)
    if not m.any():
        raise ValueError("mask is empty: there is no lesion to measure.")
    return m


def lesion_area_percent(mask: np.ndarray | torch.Tensor) -> float:
    """Lesion area as a percentage (0-100) of the image.

    Args:
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion.

    Raises:
        ValueError: when `mask` is not 2D (optionally with one channel).
    """
    return 100.0 * float(_binary_mask(mask).mean())


def _polygon_area(points: np.ndarray) -> float:
    """Signed area of a closed polygon (shoelace); contours around holes have the opposite sign."""
    r, c = points[:, 0], points[:, 1]
    return 0.5 * float(np.sum(r[:-1] * c[1:] - r[1:] * c[:-1]))


def border_irregularity(mask: np.ndarray | torch.Tensor) -> tuple[float, str]:
    """Score how irregular the lesion border is, and name it.

    The score is ``max(1 - solidity, 1 - convexity)``: solidity (area / convex hull area) catches notches and
    protrusions, convexity (convex hull perimeter / perimeter) catches a jagged outline that barely changes the
    area. Both are 1 for any convex shape, so an elongated but smooth lesion stays ``regular`` (compactness
    4*pi*A/P^2 would not). The outline is traced at sub-pixel precision on the mask smoothed with a Gaussian of
    one pixel, so that the pixel staircase of a digitised round lesion does not count as irregular at any size;
    all lesion pixels are measured as one region.

    Args:
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion.

    Returns:
        The score (0 for a convex outline, growing with irregularity) and its word: ``regular``,
        ``slightly irregular`` or ``irregular`` (thresholds in `BORDER_THRESHOLDS`).

    Raises:
        ValueError: when `mask` is empty or not 2D.
    """
    m = _nonempty_mask(mask)
    smooth = gaussian_filter(np.pad(m.astype(np.float64), 3), sigma=1.0)
    contours = [c for c in find_contours(smooth, 0.5) if len(c) > 2]
    score = 0.0
    if contours:
        area = abs(sum(_polygon_area(c) for c in contours))
        length = sum(float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum()) for c in contours)
        try:
            hull = ConvexHull(np.concatenate(contours))
        except QhullError:  # all outline points on a line: a degenerate, convex lesion
            hull = None
        if hull is not None and hull.volume > 0 and length > 0:
            # For 2D points, ConvexHull's `volume` is the area and its `area` the perimeter.
            score = max(0.0, 1.0 - area / hull.volume, 1.0 - hull.area / length)
    if score < BORDER_THRESHOLDS[0]:
        word = "regular"
    elif score < BORDER_THRESHOLDS[1]:
        word = "slightly irregular"
    else:
        word = "irregular"
    return score, word


def colour_count(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    max_intensity: float = 255.0,
    min_fraction: float = 0.05,
) -> list[str]:
    """The dermoscopic colours present in a lesion.

    Each lesion pixel is assigned to the nearest of the six `DERMOSCOPIC_COLOURS` in CIELAB (Euclidean, CIE76); a
    colour is present when it covers at least `min_fraction` of the lesion pixels.

    Args:
        image: RGB image, channel-first ``(3, H, W)``.
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion.
        max_intensity: the intensity of white in `image` (255 for 8-bit data, 1 for scaled data).
        min_fraction: smallest share of lesion pixels for a colour to count.

    Returns:
        The names of the colours present, most widespread first; ``len`` of it is the colour count.

    Raises:
        ValueError: when `image` is not ``(3, H, W)``, `mask` is empty or does not match its size, or
            `min_fraction` is not in (0, 1].
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}.")
    rgb = _as_numpy(image).astype(np.float64)
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"image must be channel-first RGB (3, H, W), got shape {tuple(rgb.shape)}.")
    m = _nonempty_mask(mask)
    if m.shape != rgb.shape[1:]:
        raise ValueError(f"mask shape {m.shape} does not match image size {tuple(rgb.shape[1:])}.")
    pixels = np.clip(rgb[:, m].T / max_intensity, 0.0, 1.0)  # (N, 3)
    lab = rgb2lab(pixels[None])[0]
    distances = np.linalg.norm(lab[:, None, :] - _REFERENCE_LAB[None, :, :], axis=-1)
    fractions = np.bincount(distances.argmin(axis=1), minlength=len(DERMOSCOPIC_COLOURS)) / len(pixels)
    names = list(DERMOSCOPIC_COLOURS)
    order = sorted(range(len(names)), key=lambda i: (-fractions[i], i))
    return [names[i] for i in order if fractions[i] >= min_fraction]


def asymmetry(mask: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Shape asymmetry of a lesion about its two principal axes (the A of the ABCD rule, from the mask alone).

    The lesion is mirrored about each principal axis through its centroid; the score of an axis is the fraction of
    lesion pixels whose mirror image falls outside the lesion.

    Args:
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion.

    Returns:
        The scores about the major and the minor axis, each in [0, 1] (0 for a mirror-symmetric lesion).

    Raises:
        ValueError: when `mask` is empty or not 2D.
    """
    m = _nonempty_mask(mask)
    rows, cols = np.nonzero(m)
    if len(rows) < 2:
        return 0.0, 0.0
    points = np.stack([rows, cols], axis=1).astype(np.float64)
    centroid = points.mean(axis=0)
    centred = points - centroid
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    major, minor = vectors[:, 1], vectors[:, 0]
    scores = []
    for normal in (minor, major):
        # Mirroring about the major axis flips the component along the minor one, and vice versa.
        mirrored = centred - 2.0 * np.outer(centred @ normal, normal) + centroid
        r = np.rint(mirrored[:, 0]).astype(np.int64)
        c = np.rint(mirrored[:, 1]).astype(np.int64)
        inside = (r >= 0) & (r < m.shape[0]) & (c >= 0) & (c < m.shape[1])
        hits = np.zeros(len(points), dtype=bool)
        hits[inside] = m[r[inside], c[inside]]
        scores.append(1.0 - float(hits.mean()))
    return scores[0], scores[1]


def measure_lesion(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None,
    max_intensity: float = 255.0,
) -> LesionMeasurements:
    """Measure every field a caption can state about a lesion image.

    Args:
        image: RGB image, channel-first ``(3, H, W)``.
        mask: lesion mask ``(H, W)`` or ``(1, H, W)``, nonzero inside the lesion; None when there is none.
        max_intensity: the intensity of white in `image` (255 for 8-bit data, 1 for scaled data).

    Returns:
        The measurements. Without a mask, or with an empty one, only the skin tone (`ita`, over the whole image) is
        measured and the lesion fields are None.

    Raises:
        ValueError: when `image` is not ``(3, H, W)`` or `mask` does not match its size.
    """
    binary = None if mask is None else _binary_mask(mask)
    ita = estimate_ita(image, binary, max_intensity=max_intensity)
    if binary is None or not binary.any():
        return LesionMeasurements(None, None, None, ita, ita_group_name(ita))
    score, word = border_irregularity(binary)
    axes = sum(s > ASYMMETRY_THRESHOLD for s in asymmetry(binary))
    return LesionMeasurements(
        area_percent=lesion_area_percent(binary),
        border_word=word,
        colours=colour_count(image, binary, max_intensity=max_intensity),
        ita=ita,
        skin_group=ita_group_name(ita),
        border_score=score,
        asymmetric_axes=axes,
    )
