from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_lesiongen.data.lesion_measurements import (
    BORDER_THRESHOLDS,
    DERMOSCOPIC_COLOURS,
    asymmetry,
    border_irregularity,
    colour_count,
    lesion_area_percent,
    measure_lesion,
)
from monai_lesiongen.data.skin_tone import estimate_ita, ita_group_name

H, W = 96, 128
SKIN = (224, 180, 150)


def polar_mask(radius, h: int = H, w: int = W, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Pixels within `radius(angle)` of the centre."""
    cy, cx = centre if centre is not None else ((h - 1) / 2, (w - 1) / 2)
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) <= radius(np.arctan2(yy - cy, xx - cx))


def disk(r: float, **kwargs) -> np.ndarray:
    return polar_mask(lambda t: np.full_like(t, r), **kwargs)


def paint(mask: np.ndarray, colours: dict[str, float]) -> np.ndarray:
    """A (3, H, W) uint8 image of skin, with the lesion rows split among `colours` by the given shares."""
    image = np.empty((3, *mask.shape), dtype=np.uint8)
    image[:] = np.array(SKIN, dtype=np.uint8)[:, None, None]
    rows, cols = np.nonzero(mask)
    order = np.lexsort((cols, rows))
    start = 0
    for name, share in colours.items():
        stop = start + round(share * len(order))
        idx = order[start:stop]
        image[:, rows[idx], cols[idx]] = np.array(DERMOSCOPIC_COLOURS[name], dtype=np.uint8)[:, None]
        start = stop
    return image


@pytest.mark.parametrize("r", [6, 20, 40])
def test_disk_area_and_regular_border(r):
    mask = disk(r)
    expected = 100.0 * math.pi * r**2 / (H * W)
    assert abs(lesion_area_percent(mask) - expected) < 0.01 * 100.0
    assert lesion_area_percent(mask) == pytest.approx(expected, rel=0.1)
    score, word = border_irregularity(mask)
    assert word == "regular"
    assert score < BORDER_THRESHOLDS[0]


def test_area_accepts_channel_first_tensor_and_255_masks():
    mask = torch.from_numpy(disk(20)[None].astype(np.uint8) * 255)
    assert lesion_area_percent(mask) == pytest.approx(lesion_area_percent(disk(20)))


def test_smooth_elongated_lesion_is_regular():
    yy, xx = np.mgrid[:H, :W]
    ellipse = ((yy - 48) / 12) ** 2 + ((xx - 64) / 50) ** 2 <= 1
    assert border_irregularity(ellipse)[1] == "regular"


@pytest.mark.parametrize(
    "radius",
    [
        lambda t: 15 + 25 * np.abs(np.cos(2.5 * t)),  # five-pointed star
        lambda t: 30 * (1 + 0.2 * np.sin(12 * t)),  # jagged outline
    ],
    ids=["star", "jagged"],
)
def test_star_and_jagged_masks_are_irregular(radius):
    score, word = border_irregularity(polar_mask(radius))
    assert word == "irregular"
    assert score >= BORDER_THRESHOLDS[1]


def test_slight_wobble_is_slightly_irregular():
    assert border_irregularity(polar_mask(lambda t: 40 * (1 + 0.1 * np.sin(8 * t))))[1] == "slightly irregular"


def test_border_of_empty_mask_raises():
    with pytest.raises(ValueError, match="empty"):
        border_irregularity(np.zeros((8, 8)))


def test_two_painted_colours_are_found_most_widespread_first():
    mask = disk(30)
    image = paint(mask, {"blue-grey": 0.3, "dark brown": 0.7})
    assert colour_count(image, mask) == ["dark brown", "blue-grey"]
    # Scaled images give the same answer with max_intensity=1.
    scaled = torch.from_numpy(image.astype(np.float32) / 255.0)
    assert colour_count(scaled, torch.from_numpy(mask[None]), max_intensity=1.0) == ["dark brown", "blue-grey"]


def test_colour_below_five_percent_is_not_counted():
    mask = disk(30)
    image = paint(mask, {"black": 0.6, "red": 0.37, "white": 0.03})
    assert colour_count(image, mask) == ["black", "red"]


@pytest.mark.parametrize("name", list(DERMOSCOPIC_COLOURS))
def test_each_reference_colour_maps_to_itself(name):
    mask = disk(10)
    assert colour_count(paint(mask, {name: 1.0}), mask) == [name]


def test_colour_count_checks_shapes():
    with pytest.raises(ValueError, match="does not match"):
        colour_count(np.zeros((3, 10, 10)), np.ones((10, 12)))
    with pytest.raises(ValueError, match="channel-first RGB"):
        colour_count(np.zeros((10, 10, 3)), np.ones((10, 10)))


def test_asymmetry():
    assert asymmetry(disk(20)) == (0.0, 0.0)
    # A disk with a bump on one side is symmetric about the axis through the bump, not about the other one.
    bumped = polar_mask(lambda t: 20 + 20 * (np.cos(t) > 0.5))
    major, minor = asymmetry(bumped)
    assert min(major, minor) < 0.02
    assert max(major, minor) > 0.1


def test_measure_lesion_with_mask():
    mask = disk(30)
    image = paint(mask, {"dark brown": 0.5, "black": 0.5})
    m = measure_lesion(image, mask[None].astype(np.uint8) * 255)
    assert m.area_percent == pytest.approx(lesion_area_percent(mask))
    assert m.border_word == "regular"
    assert sorted(m.colours or []) == ["black", "dark brown"]
    assert m.ita == pytest.approx(estimate_ita(image, mask))
    assert m.skin_group == ita_group_name(m.ita)
    assert m.asymmetric_axes == 0


@pytest.mark.parametrize("mask", [None, np.zeros((1, H, W))], ids=["no mask", "empty mask"])
def test_measure_lesion_without_lesion_fills_only_skin_tone(mask):
    image = paint(disk(30), {"black": 1.0})
    m = measure_lesion(image, mask)
    assert m.area_percent is None
    assert m.border_word is None
    assert m.colours is None
    assert m.border_score is None and m.asymmetric_axes is None
    assert m.ita == pytest.approx(estimate_ita(image))
    assert m.skin_group == ita_group_name(m.ita)


def test_measure_lesion_rejects_mask_of_another_size():
    with pytest.raises(ValueError, match="does not match"):
        measure_lesion(np.zeros((3, H, W)), np.ones((1, H, W + 1)))
