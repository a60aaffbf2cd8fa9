from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_lesiongen.utils import make_image_grid, save_image_grid


def test_grid_layout_and_pixels(tmp_path: Path) -> None:
    images = torch.zeros(5, 3, 4, 4)
    images[1, 0] = 1.0  # a red image in the second cell
    path = save_image_grid(images, tmp_path / "sub" / "grid.png", num_columns=3, cell_size=8, padding=2)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 * 10, 3 * 10, 3)
    assert tuple(grid[4, 10 + 4]) == (255, 0, 0)
    assert tuple(grid[4, 4]) == (0, 0, 0)


def test_mask_channel_is_outlined_and_labels_are_checked() -> None:
    images = torch.zeros(1, 4, 8, 8)
    images[0, 3, 2:6, 2:6] = 1.0
    grid = np.asarray(make_image_grid(images, cell_size=8, padding=0))
    assert (grid == (0, 255, 0)).all(-1).any()
    with pytest.raises(ValueError, match="labels"):
        make_image_grid(torch.zeros(2, 3, 4, 4), labels=["one"])
    with pytest.raises(ValueError, match="C in"):
        make_image_grid(torch.zeros(2, 2, 4, 4))
