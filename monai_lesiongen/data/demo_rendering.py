"""Pixel drawing for the procedural demo data set: skin, lesion outline, class patterns and dermoscopic concepts.

A lesion is drawn in its own frame ``(u, v)`` (the image spans about ``[-1, 1]``), so two views of the same lesion
(another rotation, crop or lighting) show the same structures. Brown and black pigment absorb light (they multiply
the skin colour), so they keep their hue but lose contrast on dark skin; red, pink, blue-grey and white structures are
blended in with colours dimmed by the skin lightness, which also lowers their contrast on dark skin, as in real
dermoscopy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage.color import lab2rgb

from monai_lesiongen.data.demo_patterns import (
    BROWN,
    RED,
    Canvas,
    blotch,
    disks,
    draw_class_base,
    line_alpha,
    region,
    segments,
)

__all__ = ["LesionSpec", "ViewSpec", "sample_skin_lab", "render_view"]

_CONCEPT_BLUE_GREY = np.array([0.40, 0.46, 0.56])
_VEIL = np.array([0.49, 0.54, 0.63])
_WHITE_SCAR = np.array([0.95, 0.91, 0.89])
_BLACK = np.array([0.30, 0.27, 0.26])
_HAIR = np.array([0.10, 0.07, 0.05])
_ITA_CLAMP = (-55.0, 70.0)


@dataclass(frozen=True)
class LesionSpec:
    """What a lesion is: drawn the same way in every view of it.

    Args:
        dx: HAM10000 diagnosis code.
        concepts: seven-point concept name -> value (`SEVEN_POINT_CONCEPTS`), drawn into the pixels.
        skin_lab: CIELAB colour of the surrounding skin.
        area: fraction of the image the lesion covers at zoom 1.
        seed: seed of the lesion's own structures (outline, dots, vessels, ...).
    """

    dx: str
    concepts: dict[str, str]
    skin_lab: tuple[float, float, float]
    area: float
    seed: int


@dataclass(frozen=True)
class ViewSpec:
    """How one image of a lesion was taken.

    Args:
        angle: rotation of the lesion in the image, radians.
        zoom: magnification (1 = the lesion covers `LesionSpec.area`).
        shift: offset of the lesion centre, in half-image units.
        gain: brightness of the dermoscope light.
        vignette: strength of the darkening towards the corners.
        hairs: number of hair strands across the image.
        seed: seed of the view's own randomness (skin texture, hair, sensor noise).
    """

    angle: float
    zoom: float
    shift: tuple[float, float]
    gain: float
    vignette: float
    hairs: int
    seed: int


def sample_skin_lab(rng: np.random.Generator, ita_range: tuple[float, float]) -> tuple[float, float, float]:
    """Draw a plausible CIELAB skin colour whose ITA lies inside `ita_range` (away from its ends).

    Args:
        rng: random generator.
        ita_range: (low, high) ITA in degrees, e.g. from `fitzpatrick_to_ita_range`; infinite ends are clamped.

    Returns:
        ``(L*, a*, b*)``.
    """
    low, high = max(ita_range[0], _ITA_CLAMP[0]), min(ita_range[1], _ITA_CLAMP[1])
    margin = 0.2 * (high - low)
    ita = math.radians(rng.uniform(low + margin, high - margin))
    yellowness = rng.uniform(13.0, 20.0)
    tangent = math.tan(ita)
    if tangent > 0:
        yellowness = min(yellowness, 36.0 / tangent)
    elif tangent < 0:
        yellowness = min(yellowness, 24.0 / -tangent)
    lightness = 50.0 + yellowness * tangent
    return float(lightness), float(rng.uniform(7.0, 13.0)), float(yellowness)


def _draw_outline(c: Canvas) -> None:
    """Set the lesion's size and outline (`radius`, `rho`), its soft body alpha and its mask."""
    rng, dx = c.rng, c.lesion.dx
    irregularity = {"nv": 0.05, "mel": 0.22, "bkl": 0.08, "bcc": 0.10, "akiec": 0.14, "df": 0.04, "vasc": 0.06}[dx]
    edge = {"nv": 0.08, "mel": 0.10, "bkl": 0.03, "bcc": 0.08, "akiec": 0.30, "df": 0.22, "vasc": 0.03}[dx]
    elongation = rng.uniform(1.0, 1.45 if dx in ("mel", "akiec", "bkl") else 1.25)
    orders = np.arange(1, 8)
    amplitudes = irregularity * rng.uniform(0.2, 1.0, orders.size) / orders**0.5
    if dx != "mel":
        amplitudes[0] = 0.0  # only melanoma is markedly asymmetric
    phases = rng.uniform(0.0, 2.0 * math.pi, orders.size)
    radius = math.sqrt(4.0 * c.lesion.area / math.pi)
    up, vp = c.u / math.sqrt(elongation), c.v * math.sqrt(elongation)
    theta = np.arctan2(vp, up)
    profile = 1.0 + np.tensordot(amplitudes, np.cos(orders[:, None, None] * theta[None] + phases[:, None, None]), 1)
    if dx == "mel":
        profile = profile * (1.0 + 0.06 * blotch(rng, c.u / radius, c.v / radius, freq=(4.0, 8.0)))
    c.radius = radius
    c.lu, c.lv = c.u / radius, c.v / radius
    c.rho = np.hypot(up, vp) / (radius * np.maximum(profile, 0.3))
    width = max(edge, 1.5 * c.px / radius)
    c.body = np.clip((1.0 + width / 2.0 - c.rho) / width, 0.0, 1.0)
    c.mask = c.rho < 1.0
    if not c.mask.any():  # a tiny lesion between pixel centres still gets its centre pixel
        c.mask[np.unravel_index(np.argmin(c.rho), c.rho.shape)] = True
        c.body = np.maximum(c.body, c.mask.astype(float))


def _draw_network(c: Canvas, value: str) -> None:
    """Pigment network: a regular brown honeycomb fading out at the border, or a dark, broken, uneven one."""
    if value == "absent":
        return
    rng = c.rng
    angle = rng.uniform(0.0, math.pi)
    freq = rng.uniform(2.8, 3.6)
    a = c.lu * math.cos(angle) + c.lv * math.sin(angle)
    b = -c.lu * math.sin(angle) + c.lv * math.cos(angle)
    if value == "typical":
        warp = 0.12 * blotch(rng, c.lu, c.lv, freq=(1.5, 3.0))
        lines = line_alpha(a * freq + warp, 0.24) + line_alpha(b * freq - warp, 0.24)
        area = np.clip((1.05 - c.rho) / 0.35, 0.0, 1.0)
        density = 0.7
    else:
        warp = 0.45 * blotch(rng, c.lu, c.lv, freq=(2.0, 5.0))
        thickness = 0.22 + 0.14 * np.clip(blotch(rng, c.lu, c.lv), -1.0, 1.5)
        lines = line_alpha(a * freq + warp, thickness) + line_alpha(b * freq - warp, thickness)
        area = region(c, blotch(rng, c.lu, c.lv), 0.7)
        density = 1.5
    if c.lesion.dx == "df":
        area = area * np.clip((c.rho - 0.45) / 0.2, 0.0, 1.0)
    c.absorb(BROWN, density * np.clip(lines, 0.0, 1.0) * area * c.body)


def _draw_streaks(c: Canvas, value: str) -> None:
    """Streaks: dark radial lines at the periphery, evenly all around (regular) or in a few uneven bunches."""
    if value == "absent":
        return
    rng = c.rng
    if value == "regular":
        count = int(rng.integers(12, 20))
        angles = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False) + rng.uniform(0.0, 1.0)
        lengths = np.full(count, 0.35)
    else:
        count = int(rng.integers(3, 9))
        angles = rng.uniform(0.0, 2.0 * math.pi) + rng.normal(0.0, 0.7, count)
        lengths = rng.uniform(0.2, 0.55, count)
    starts = (1.0 - lengths)[:, None] * c.radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    ends = 0.98 * c.radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    alpha = segments(c, np.concatenate([starts, ends], 1), np.full(count, 0.035))
    c.absorb(BROWN, 1.6 * alpha * (c.rho < 1.0) * c.body)


def _draw_pigmentation(c: Canvas, value: str) -> None:
    """Extra dark-brown blotches: a central even one (localized regular) or an off-centre uneven one."""
    if not value.startswith("localized"):
        return
    if value == "localized regular":
        area = np.clip((0.5 - c.rho) / 0.15, 0.0, 1.0)
    else:
        area = region(c, blotch(c.rng, c.lu, c.lv, freq=(1.0, 2.5)), 0.3)
    c.absorb(BROWN, 1.1 * area * c.body)


def _draw_regression(c: Canvas, value: str) -> None:
    """Regression structures: blue-grey peppering, white scar-like areas, or both."""
    if value == "absent":
        return
    rng = c.rng
    if value in ("blue areas", "combinations"):
        area = region(c, blotch(rng, c.lu, c.lv), 0.25)
        pepper = np.clip(blotch(rng, c.lu, c.lv, freq=(10.0, 16.0)) - 0.2, 0.0, 1.0)
        c.mix(_CONCEPT_BLUE_GREY * c.shade, 0.9 * area * (0.4 + 0.6 * pepper) * c.body)
    if value in ("white areas", "combinations"):
        c.mix(_WHITE_SCAR * c.shade**0.5, 0.7 * region(c, blotch(rng, c.lu, c.lv), 0.2) * c.body)


def _draw_dots(c: Canvas, value: str) -> None:
    """Dots and globules: even brown dots on a jittered grid (regular), or scattered dots of mixed size and colour."""
    if value == "absent":
        return
    rng = c.rng
    if value == "regular":
        step = c.radius * rng.uniform(0.32, 0.42)
        grid = np.arange(-c.radius, c.radius + 1e-9, step)
        centres = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2) + rng.normal(0.0, 0.08 * step, (grid.size**2, 2))
        centres = centres[np.hypot(centres[:, 0], centres[:, 1]) < 0.75 * c.radius]
        radii = np.full(len(centres), max(0.17 * step, 0.6 * c.px))
        c.absorb(BROWN, 1.3 * disks(c, centres, radii) * c.body)
        return
    count = int(rng.integers(8, 24))
    polar = np.stack([rng.uniform(0.2, 0.95, count) * c.radius, rng.uniform(0.0, 2.0 * math.pi, count)], 1)
    centres = np.stack([polar[:, 0] * np.cos(polar[:, 1]), polar[:, 0] * np.sin(polar[:, 1])], 1)
    radii = rng.uniform(0.025, 0.08, count) * math.sqrt(c.radius)
    black = rng.random(count) < 0.4
    c.absorb(BROWN, 1.5 * disks(c, centres[~black], radii[~black]) * c.body)
    c.absorb(_BLACK, 1.3 * disks(c, centres[black], radii[black]) * c.body)


def _draw_veil(c: Canvas, value: str) -> None:
    """Blue-whitish veil: a confluent, hazy blue-grey-white area over part of the lesion."""
    if value != "present":
        return
    area = region(c, blotch(c.rng, c.lu, c.lv, freq=(0.8, 2.0)), c.rng.uniform(0.3, 0.55))
    haze = 1.0 + 0.1 * blotch(c.rng, c.lu, c.lv, freq=(5.0, 9.0))
    c.mix(_VEIL * c.shade**0.7, 0.65 * area * haze * c.body)


def _vessel_paths(c: Canvas, value: str) -> tuple[np.ndarray, np.ndarray]:
    """Line segments ``(S, 4)`` and widths ``(S,)`` of the linear vessel patterns, in lesion units."""
    rng, r = c.rng, c.radius
    segs: list[list[float]] = []
    widths: list[float] = []

    def walk(x: float, y: float, heading: float, steps: int, width: float, wiggle: float, branch: float) -> None:
        for _ in range(steps):
            heading += rng.normal(0.0, wiggle)
            nx, ny = x + 0.14 * r * math.cos(heading), y + 0.14 * r * math.sin(heading)
            segs.append([x, y, nx, ny])
            widths.append(width)
            if rng.random() < branch and width > 0.012:
                turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
                walk(nx, ny, heading + turn, steps - 1, 0.7 * width, wiggle, branch)
            x, y = nx, ny

    if value == "arborizing":
        for _ in range(int(rng.integers(1, 4))):
            start = rng.uniform(-0.5, 0.5, 2) * r
            walk(float(start[0]), float(start[1]), rng.uniform(0, 2 * math.pi), 6, 0.04, 0.25, 0.35)
    elif value == "linear irregular":
        for _ in range(int(rng.integers(2, 6))):
            start = rng.uniform(-0.6, 0.6, 2) * r
            walk(float(start[0]), float(start[1]), rng.uniform(0, 2 * math.pi), 4, rng.uniform(0.02, 0.04), 0.8, 0.0)
    elif value in ("comma", "hairpin"):
        for _ in range(int(rng.integers(4, 10))):
            x, y = rng.uniform(-0.6, 0.6, 2) * r
            h = rng.uniform(0, 2 * math.pi)
            length = 0.18 * r
            dx, dy = length * math.cos(h), length * math.sin(h)
            if value == "comma":
                bend = h + rng.choice([-1.0, 1.0]) * 1.2
                tip = (x + dx + 0.5 * length * math.cos(bend), y + dy + 0.5 * length * math.sin(bend))
                segs += [[x, y, x + dx, y + dy], [x + dx, y + dy, *tip]]
                widths += [0.03, 0.03]
            else:
                ox, oy = -0.35 * dy, 0.35 * dx
                segs += [
                    [x, y, x + dx, y + dy],
                    [x + ox, y + oy, x + ox + dx, y + oy + dy],
                    [x + dx, y + dy, x + ox + dx, y + oy + dy],
                ]
                widths += [0.025, 0.025, 0.025]
    return np.asarray(segs, dtype=float).reshape(-1, 4), np.asarray(widths, dtype=float)


def _draw_vessels(c: Canvas, value: str) -> None:
    """Vascular structures: red branching, comma, hairpin or irregular lines; red dots; a peripheral wreath."""
    if value == "absent":
        return
    rng, r = c.rng, c.radius
    if value in ("dotted", "within regression", "wreath"):
        if value == "dotted":
            count = int(rng.integers(12, 35))
            distance, centre = np.sqrt(rng.uniform(0.0, 0.7, count)), np.zeros(2)
        elif value == "wreath":
            count = int(rng.integers(14, 26))
            distance, centre = rng.uniform(0.8, 0.95, count), np.zeros(2)
        else:  # red dots on a whitish regression patch
            count = int(rng.integers(6, 15))
            distance, centre = rng.uniform(0.0, 0.35, count), rng.uniform(-0.3, 0.3, 2)
            patch = np.clip((0.45 - np.hypot(c.lu - centre[0], c.lv - centre[1])) / 0.15, 0.0, 1.0)
            c.mix(_WHITE_SCAR * c.shade**0.5, 0.5 * patch * c.body)
        angle = rng.uniform(0.0, 2.0 * math.pi, count)
        centres = (centre + distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)) * r
        alpha = disks(c, centres, rng.uniform(0.018, 0.03, count))
    else:
        segs, widths = _vessel_paths(c, value)
        alpha = segments(c, segs, widths)
    c.mix(RED * c.shade, 0.85 * alpha * c.body)


def _draw_hair(c: Canvas, rng: np.random.Generator, count: int) -> None:
    """Dark hair strands across the image (in image coordinates, not the lesion's)."""
    for _ in range(count):
        start = rng.uniform(-1.2, 1.2, 2)
        heading = rng.uniform(0, 2 * math.pi)
        length, curl = rng.uniform(0.6, 2.0), rng.normal(0.0, 0.8)
        t = np.linspace(0.0, 1.0, 9)
        angle = heading + curl * t
        pts = start + length * np.cumsum(np.stack([np.cos(angle), np.sin(angle)], 1) / 9.0, 0)
        segs = np.concatenate([pts[:-1], pts[1:]], 1)
        alpha = segments(c, segs, np.full(len(segs), rng.uniform(0.012, 0.028)), image_frame=True)
        c.mix(_HAIR, 0.85 * alpha)


def render_view(lesion: LesionSpec, view: ViewSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one dermoscopy-like image of a lesion and its lesion mask.

    Args:
        lesion: the lesion to draw.
        view: rotation, crop, lighting, hair and noise of this image.
        size: width and height in pixels.

    Returns:
        ``(image, mask)``: RGB ``uint8`` of shape ``(size, size, 3)`` and the ``bool`` mask ``(size, size)`` of the
        lesion region drawn.
    """
    skin = np.clip(lab2rgb(np.asarray(lesion.skin_lab, dtype=float).reshape(1, 1, 3)).reshape(3), 0.0, 1.0)
    view_rng = np.random.default_rng(view.seed)
    c = Canvas(lesion, view, size, skin)
    texture = (
        1.0 + 0.02 * blotch(view_rng, c.x, c.y, (1.0, 4.0), 10) + 0.015 * blotch(view_rng, c.x, c.y, (8.0, 14.0), 10)
    )
    c.image = skin[None, None, :] * texture[..., None]
    _draw_outline(c)
    draw_class_base(c)
    concepts = lesion.concepts
    _draw_pigmentation(c, concepts["pigmentation"])
    _draw_network(c, concepts["pigment_network"])
    _draw_streaks(c, concepts["streaks"])
    _draw_regression(c, concepts["regression_structures"])
    _draw_veil(c, concepts["blue_whitish_veil"])
    _draw_dots(c, concepts["dots_and_globules"])
    _draw_vessels(c, concepts["vascular_structures"])
    _draw_hair(c, view_rng, view.hairs)
    corner = np.clip(np.hypot(c.x, c.y) - 0.85, 0.0, None) ** 2
    c.image = c.image * (view.gain * (1.0 - view.vignette * corner))[..., None]
    c.image = c.image + view_rng.normal(0.0, 0.012, c.image.shape)
    image = np.round(np.clip(c.image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image, c.mask
