"""Drawing primitives and per-diagnosis base patterns of the procedural demo data set.

The base pattern is what makes a diagnosis look like itself before its seven-point concepts are drawn on top (see
`demo_rendering`): brown nevi, multi-coloured melanomas, waxy tan keratoses with milia-like cysts, pink basal cell
carcinomas with blue-grey nests, red scaly actinic keratoses, dermatofibromas with a white centre and vascular
lesions with red-purple lacunae.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from monai_lesiongen.data.demo_rendering import LesionSpec, ViewSpec

__all__ = ["BROWN", "RED", "Canvas", "blotch", "region", "line_alpha", "disks", "segments", "draw_class_base"]

BROWN = np.array([0.56, 0.42, 0.32])
"""Light transmission of one unit of brown (melanin) pigment, per RGB channel."""
RED = np.array([0.80, 0.16, 0.20])
"""Colour of blood vessels on light skin."""
_BLACK = np.array([0.30, 0.27, 0.26])
_PINK = np.array([0.95, 0.68, 0.72])
_ERYTHEMA = np.array([0.86, 0.42, 0.40])
_WHITE = np.array([0.96, 0.94, 0.90])
_MILIA = np.array([0.99, 0.97, 0.82])
_NEST_BLUE = np.array([0.33, 0.38, 0.48])
_MEL_RED = np.array([0.72, 0.28, 0.30])
_LACUNA_PALETTES = (
    (np.array([0.62, 0.10, 0.16]), np.array([0.82, 0.14, 0.20]), np.array([0.50, 0.06, 0.12])),
    (np.array([0.50, 0.14, 0.30]), np.array([0.45, 0.12, 0.42]), np.array([0.62, 0.12, 0.22])),
    (np.array([0.40, 0.18, 0.40]), np.array([0.30, 0.24, 0.52]), np.array([0.24, 0.18, 0.40])),
)


class Canvas:
    """The image being drawn, with the pixel grid in image and lesion coordinates.

    Args:
        lesion: the lesion drawn; its seed seeds `rng`, so every view draws the same structures.
        view: rotation, zoom and shift that map image coordinates to lesion coordinates.
        size: width and height in pixels.
        skin: RGB colour of the skin in ``[0, 1]``.
    """

    def __init__(self, lesion: LesionSpec, view: ViewSpec, size: int, skin: np.ndarray) -> None:
        self.lesion = lesion
        self.rng = np.random.default_rng(lesion.seed)
        coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        self.y, self.x = np.meshgrid(coords, coords, indexing="ij")
        dx, dy = self.x - view.shift[0], self.y - view.shift[1]
        cos, sin = math.cos(view.angle), math.sin(view.angle)
        self.u = (cos * dx + sin * dy) / view.zoom
        self.v = (-sin * dx + cos * dy) / view.zoom
        self.view = view
        self.px = 2.0 / size / view.zoom
        self.image_px = 2.0 / size
        self.shade = float(np.clip(0.35 + 0.008 * lesion.skin_lab[0], 0.5, 1.0))
        self.image = np.broadcast_to(skin, (size, size, 3)).astype(float)
        # set by the outline
        self.radius = 1.0
        self.lu, self.lv = self.u, self.v
        self.rho = np.zeros((size, size))
        self.body = np.zeros((size, size))
        self.mask = np.zeros((size, size), dtype=bool)

    def to_pixels(self, points: np.ndarray, image_frame: bool = False) -> np.ndarray:
        """Map points ``(N, 2)`` in lesion (or image) coordinates to ``(column, row)`` pixel positions."""
        if not image_frame:
            cos, sin = math.cos(self.view.angle), math.sin(self.view.angle)
            u, v = points[:, 0] * self.view.zoom, points[:, 1] * self.view.zoom
            points = np.stack([cos * u - sin * v + self.view.shift[0], sin * u + cos * v + self.view.shift[1]], 1)
        return (points + 1.0) / self.image_px - 0.5

    def absorb(self, transmission: np.ndarray, density: np.ndarray) -> None:
        """Darken by a pigment: each channel is multiplied by ``transmission ** density``."""
        self.image = self.image * np.exp(np.log(transmission)[None, None, :] * density[..., None])

    def mix(self, colour: np.ndarray, alpha: np.ndarray) -> None:
        """Blend `colour` in with per-pixel opacity `alpha`."""
        a = np.clip(alpha, 0.0, 1.0)[..., None]
        self.image = self.image * (1.0 - a) + colour[None, None, :] * a


def blotch(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, freq: tuple[float, float] = (1.0, 3.0), count: int = 6
) -> np.ndarray:
    """A smooth random field of about unit variance: a sum of `count` plane waves of random direction and phase.

    `u` and `v` must be affine in the pixel grid (as all `Canvas` coordinates are), so that each wave is a product of
    a row and a column wave and the field is one small matrix product.
    """
    angles = rng.uniform(0.0, 2.0 * math.pi, count)
    freqs = rng.uniform(freq[0], freq[1], count) * math.pi
    phases = rng.uniform(0.0, 2.0 * math.pi, count)
    kx, ky = freqs * np.cos(angles), freqs * np.sin(angles)
    rows = u[:, :1] * kx + v[:, :1] * ky + phases  # (H, count): the phase along the first column
    cols = (u[:1, :] - u[:1, :1]).T * kx + (v[:1, :] - v[:1, :1]).T * ky  # (W, count): its change along a row
    field = np.cos(rows) @ np.cos(cols).T - np.sin(rows) @ np.sin(cols).T
    return field / math.sqrt(count / 2.0)


def region(c: Canvas, field: np.ndarray, fraction: float) -> np.ndarray:
    """Soft alpha of where `field` is highest, covering about `fraction` of the lesion mask."""
    threshold = float(np.quantile(field[c.mask], 1.0 - fraction))
    return np.clip((field - threshold) / 0.25 + 0.5, 0.0, 1.0)


def line_alpha(x: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Alpha of lines at the integer values of `x`, `width` wide (as a fraction of the line spacing)."""
    distance = np.abs(x - np.round(x))
    return np.clip(1.0 - distance / (np.asarray(width) / 2.0), 0.0, 1.0)


def disks(c: Canvas, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Anti-aliased alpha of the union of disks (lesion coordinates ``(N, 2)``, radii ``(N,)``)."""
    if len(centres) == 0:
        return np.zeros_like(c.u)
    distance = np.hypot(c.u[None] - centres[:, 0, None, None], c.v[None] - centres[:, 1, None, None])
    coverage = np.minimum(1.0, (2.0 * radii / c.px) ** 2)[:, None, None]
    return (np.clip((radii[:, None, None] - distance) / c.px + 0.5, 0.0, 1.0) * coverage).max(0)


def segments(c: Canvas, segs: np.ndarray, widths: np.ndarray, image_frame: bool = False) -> np.ndarray:
    """Anti-aliased alpha of the union of line segments ``(S, 4)`` as ``x0, y0, x1, y1``, widths ``(S,)``.

    Coordinates and widths are the lesion's, or the image's when `image_frame` is set. The segments are splatted as
    points half a pixel apart, each touching only its neighbouring pixels, so the cost follows their length.
    """
    alpha = np.zeros(c.u.size)
    if len(segs) == 0:
        return alpha.reshape(c.u.shape)
    pixel = c.image_px if image_frame else c.px
    starts, ends = c.to_pixels(segs[:, :2], image_frame), c.to_pixels(segs[:, 2:], image_frame)
    counts = np.ceil(np.linalg.norm(ends - starts, axis=1) / 0.5).astype(int) + 1
    owner = np.repeat(np.arange(len(segs)), counts)
    t = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / np.maximum(counts[owner] - 1, 1)
    points = starts[owner] + t[:, None] * (ends - starts)[owner]
    half = widths[owner] / pixel / 2.0
    reach = int(math.ceil(half.max() + 1.0))
    offsets = np.arange(-reach, reach + 1)
    rows = np.round(points[:, 1])[:, None, None] + offsets[None, :, None]
    cols = np.round(points[:, 0])[:, None, None] + offsets[None, None, :]
    distance = np.hypot(rows - points[:, 1, None, None], cols - points[:, 0, None, None])
    values = np.clip(half[:, None, None] - distance + 0.5, 0.0, 1.0) * np.minimum(1.0, 2.0 * half)[:, None, None]
    size = c.u.shape[0]
    rows, cols = np.broadcast_arrays(rows, cols)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    np.maximum.at(alpha, (rows[inside] * size + cols[inside]).astype(int), values[inside])
    return alpha.reshape(c.u.shape)


def _pigment_density(c: Canvas, value: str, base: float) -> np.ndarray:
    """Brown pigment density of the diffuse background for a `pigmentation` value (localized blotches come later)."""
    if value == "absent":
        return np.zeros_like(c.u)
    if value == "diffuse regular":
        return base * (1.0 + 0.06 * blotch(c.rng, c.lu, c.lv) + 0.15 * np.clip(1.0 - c.rho, 0.0, 1.0))
    if value == "diffuse irregular":
        return base * np.clip(1.0 + 0.5 * blotch(c.rng, c.lu, c.lv, freq=(1.0, 3.5)), 0.15, 2.2)
    return np.full_like(c.u, 0.45 * base)


def _ovoids(c: Canvas, count: int, size: tuple[float, float]) -> np.ndarray:
    """Alpha of `count` randomly placed and oriented ellipses inside the lesion (sizes relative to its radius)."""
    rng, alpha = c.rng, np.zeros_like(c.u)
    for _ in range(count):
        centre = rng.uniform(-0.55, 0.55, 2)
        semi = rng.uniform(*size) * c.radius
        ratio, angle = rng.uniform(1.3, 2.3), rng.uniform(0.0, math.pi)
        du, dv = c.u - centre[0] * c.radius, c.v - centre[1] * c.radius
        a = (du * math.cos(angle) + dv * math.sin(angle)) / ratio
        b = -du * math.sin(angle) + dv * math.cos(angle)
        alpha = np.maximum(alpha, np.clip((semi / ratio**0.5 - np.hypot(a, b)) / c.px + 0.5, 0.0, 1.0))
    return alpha


def _draw_nv(c: Canvas, pigmentation: str) -> None:
    density = _pigment_density(c, pigmentation, c.rng.uniform(0.8, 1.5))
    if pigmentation == "absent":
        density = np.full_like(c.u, 0.4)
        c.mix(_PINK * c.shade, 0.15 * c.body)
    c.absorb(BROWN, density * c.body)


def _draw_mel(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    density = _pigment_density(c, pigmentation, rng.uniform(1.0, 1.7))
    c.absorb(BROWN, (density if pigmentation != "absent" else np.full_like(c.u, 0.6)) * c.body)
    names = ("black", "dark brown", "blue-grey", "red", "white")
    for name in rng.choice(names, size=int(rng.integers(2, 5)), replace=False, p=(0.32, 0.3, 0.12, 0.18, 0.08)):
        area = region(c, blotch(rng, c.lu, c.lv, freq=(1.0, 3.0)), rng.uniform(0.12, 0.3)) * c.body
        if name == "black":
            c.absorb(_BLACK, 1.5 * area)
        elif name == "dark brown":
            c.absorb(BROWN, 1.0 * area)
        elif name == "blue-grey":
            c.mix(_NEST_BLUE * c.shade, 0.7 * area)
        elif name == "red":
            c.mix(_MEL_RED * c.shade, 0.55 * area)
        else:
            c.mix(_WHITE * c.shade**0.5, 0.5 * area)


def _draw_bkl(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    density = _pigment_density(c, pigmentation, rng.uniform(0.4, 0.85))
    c.absorb(BROWN, (density if pigmentation != "absent" else np.full_like(c.u, 0.3)) * c.body)
    waxy = 1.0 + 0.07 * blotch(rng, c.lu, c.lv, freq=(6.0, 12.0)) * c.body
    c.image = c.image * waxy[..., None]
    if rng.random() < 0.5:  # cerebriform ridges
        ridges = line_alpha(c.lu * 2.5 + 0.4 * blotch(rng, c.lu, c.lv, freq=(1.5, 3.0)), 0.25)
        c.mix(np.array([0.85, 0.72, 0.58]) * c.shade, 0.35 * ridges * c.body)
    count = int(rng.integers(2, 9))
    centres = rng.uniform(-0.6, 0.6, (count, 2)) * c.radius
    c.mix(_MILIA * c.shade**0.5, 0.9 * disks(c, centres, rng.uniform(0.05, 0.09, count) * math.sqrt(c.radius)) * c.body)
    count = int(rng.integers(1, 7))
    centres = rng.uniform(-0.6, 0.6, (count, 2)) * c.radius
    c.absorb(_BLACK, 1.2 * disks(c, centres, rng.uniform(0.04, 0.08, count) * math.sqrt(c.radius)) * c.body)


def _draw_bcc(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    c.mix(_PINK * c.shade, rng.uniform(0.5, 0.75) * c.body)
    c.mix(_WHITE * c.shade**0.5, 0.35 * region(c, blotch(rng, c.lu, c.lv), 0.25) * c.body)
    c.absorb(BROWN, 0.7 * _pigment_density(c, pigmentation, rng.uniform(0.5, 0.9)) * c.body)
    if rng.random() < 0.7:
        c.mix(_NEST_BLUE * c.shade, 0.85 * _ovoids(c, int(rng.integers(1, 6)), (0.1, 0.22)) * c.body)


def _draw_akiec(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    c.mix(_ERYTHEMA * c.shade, rng.uniform(0.45, 0.7) * c.body)
    c.absorb(BROWN, 0.5 * _pigment_density(c, pigmentation, rng.uniform(0.5, 0.9)) * c.body)
    if rng.random() < 0.7:  # strawberry pattern: white follicle openings on a red pseudo-network
        freq = rng.uniform(2.5, 3.5)
        fu, fv = c.lu * freq, c.lv * freq
        follicles = np.clip((0.2 - np.hypot(fu - np.round(fu), fv - np.round(fv))) / 0.08, 0.0, 1.0)
        c.mix(_WHITE * c.shade**0.5, 0.6 * follicles * c.body)
    scale = region(c, blotch(rng, c.lu, c.lv), rng.uniform(0.2, 0.45))
    flakes = np.clip(0.6 + 0.5 * blotch(rng, c.lu, c.lv, freq=(6.0, 12.0)), 0.0, 1.0)
    c.mix(_WHITE * c.shade**0.5, 0.7 * scale * flakes * c.body)


def _draw_df(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    c.mix(_PINK * c.shade, 0.2 * c.body)
    ring = np.clip((c.rho - 0.3) / 0.3, 0.0, 1.0)
    density = rng.uniform(0.45, 0.85) + 0.5 * _pigment_density(c, pigmentation, 0.8)
    c.absorb(BROWN, density * ring * c.body)
    scar = rng.uniform(0.3, 0.5)
    field = c.rho + 0.08 * blotch(rng, c.lu, c.lv, freq=(2.0, 4.0))
    c.mix(_WHITE * c.shade**0.5, 0.8 * np.clip((scar - field) / 0.1, 0.0, 1.0) * c.body)


def _draw_vasc(c: Canvas, pigmentation: str) -> None:
    rng = c.rng
    palette = _LACUNA_PALETTES[int(rng.choice(3, p=(0.5, 0.3, 0.2)))]
    c.mix(palette[0] * c.shade, 0.55 * c.body)
    c.absorb(BROWN, 0.4 * _pigment_density(c, pigmentation, 1.0) * c.body)
    count = int(rng.integers(5, 16))
    distance, angle = np.sqrt(rng.uniform(0.0, 0.7, count)) * c.radius, rng.uniform(0.0, 2.0 * math.pi, count)
    centres = np.stack([distance * np.cos(angle), distance * np.sin(angle)], 1)
    radii = rng.uniform(0.12, 0.22, count) * c.radius
    colours = rng.integers(0, 3, count)
    for index, colour in enumerate(palette):
        chosen = colours == index
        c.mix(colour * c.shade, 0.9 * disks(c, centres[chosen], radii[chosen]) * c.body)


_BASES = {
    "nv": _draw_nv,
    "mel": _draw_mel,
    "bkl": _draw_bkl,
    "bcc": _draw_bcc,
    "akiec": _draw_akiec,
    "df": _draw_df,
    "vasc": _draw_vasc,
}


def draw_class_base(c: Canvas) -> None:
    """Draw the base pattern of the lesion's diagnosis (its colours, texture and class-specific structures)."""
    _BASES[c.lesion.dx](c, c.lesion.concepts["pigmentation"])
