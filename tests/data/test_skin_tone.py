from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb

from monai_lesiongen.data.demo import DEMO_CSV_NAME, DEMO_IMAGE_DIRS, DEMO_MASK_DIR, write_demo_dataset
from monai_lesiongen.data.skin_tone import (
    ITA_GROUPS,
    estimate_ita,
    fitzpatrick_to_ita_range,
    ita_group_name,
    ita_to_fitzpatrick,
)


def uniform_image(lab: tuple[float, float, float], size: int = 16) -> np.ndarray:
    """A channel-first uint8 image of one CIELAB colour."""
    rgb = lab2rgb(np.asarray(lab, dtype=float).reshape(1, 1, 3)).reshape(3)
    return np.broadcast_to(np.round(rgb * 255.0)[:, None, None], (3, size, size)).astype(np.uint8)


def ita_of(lab: tuple[float, float, float]) -> float:
    return math.degrees(math.atan2(lab[0] - 50.0, lab[2]))


@pytest.mark.parametrize("lab", [(80.0, 8.0, 14.0), (65.0, 10.0, 18.0), (55.0, 12.0, 20.0), (45.0, 12.0, 16.0)])
def test_uniform_colour(lab: tuple[float, float, float]) -> None:
    image = uniform_image(lab)
    assert estimate_ita(image) == pytest.approx(ita_of(lab), abs=1.0)
    scaled = torch.from_numpy(image.astype(np.float32) / 255.0)
    assert estimate_ita(scaled, max_intensity=1.0) == pytest.approx(ita_of(lab), abs=1.0)


def test_mask_keeps_lesion_out() -> None:
    skin, lesion = (75.0, 9.0, 15.0), (30.0, 15.0, 20.0)
    image = uniform_image(skin).copy()
    image[:, 4:12, 4:12] = uniform_image(lesion)[:, 4:12, 4:12]
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:12, 4:12] = 1
    assert estimate_ita(image, mask) == pytest.approx(ita_of(skin), abs=1.0)
    assert estimate_ita(image, torch.from_numpy(mask)[None]) == pytest.approx(ita_of(skin), abs=1.0)
    # with the lesion counted as skin, a large dark lesion drags the estimate down
    image[:, 2:14, 2:14] = uniform_image(lesion)[:, 2:14, 2:14]
    assert estimate_ita(image) < ita_of(skin) - 10.0
    # fewer skin pixels than min_skin_pixels: the whole image is used
    everything = np.ones((16, 16), dtype=np.uint8)
    assert estimate_ita(image, everything) == pytest.approx(estimate_ita(image))


def test_bad_shapes() -> None:
    image = uniform_image((70.0, 10.0, 15.0))
    with pytest.raises(ValueError, match="channel-first"):
        estimate_ita(np.moveaxis(image, 0, -1))
    with pytest.raises(ValueError, match="channel-first"):
        estimate_ita(image[0])
    with pytest.raises(ValueError, match="mask shape"):
        estimate_ita(image, np.zeros((8, 8)))


def test_groups_and_ranges() -> None:
    assert [ita_to_fitzpatrick(a) for a in (70.0, 50.0, 30.0, 20.0, 0.0, -45.0)] == [1, 2, 3, 4, 5, 6]
    assert ita_group_name(60.0) == "very light" and ita_group_name(-40.0) == "dark"
    for name, low, high, skin_type in ITA_GROUPS:
        assert fitzpatrick_to_ita_range(skin_type) == (low, high)
        middle = 0.5 * (max(low, -60.0) + min(high, 80.0))
        assert ita_to_fitzpatrick(middle) == skin_type and ita_group_name(middle) == name
    with pytest.raises(ValueError, match="1-6"):
        fitzpatrick_to_ita_range(7)


@pytest.fixture(scope="module")
def demo_ita(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("ita_demo")
    write_demo_dataset(root, num_images=300, image_size=32, seed=2, progress=False)
    with open(root / DEMO_CSV_NAME, newline="") as handle:
        rows = list(csv.DictReader(handle))
    itas = []
    for rank, row in enumerate(rows):
        folder = DEMO_IMAGE_DIRS[0] if rank < (len(rows) + 1) // 2 else DEMO_IMAGE_DIRS[1]
        image = np.moveaxis(np.asarray(Image.open(Path(root, folder, f"{row['image_id']}.jpg"))), -1, 0)
        mask = np.asarray(Image.open(root / DEMO_MASK_DIR / f"{row['image_id']}_segmentation.png"))
        itas.append(estimate_ita(image, mask))
    return np.array(itas), np.array([int(row["fitzpatrick"]) for row in rows])


def test_demo_ita_ordering(demo_ita: tuple[np.ndarray, np.ndarray]) -> None:
    from scipy.stats import spearmanr

    itas, types = demo_ita
    medians = [float(np.median(itas[types == t])) for t in range(1, 7)]
    assert all(a > b for a, b in zip(medians, medians[1:], strict=False)), medians
    assert spearmanr(types, itas)[0] < -0.9


def test_demo_ita_recovers_type(demo_ita: tuple[np.ndarray, np.ndarray]) -> None:
    itas, types = demo_ita
    agreement = np.mean([ita_to_fitzpatrick(float(a)) == t for a, t in zip(itas, types, strict=True)])
    assert agreement > 0.6, agreement  # measured about 0.98
