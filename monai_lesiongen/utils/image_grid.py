"""Sample grids: many small images tiled into one PNG, each with an optional caption."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from monai_lesiongen.utils.orientation import to_pil_image

__all__ = ["make_image_grid", "save_image_grid"]


def make_image_grid(
    images: torch.Tensor,
    num_columns: int | None = None,
    labels: Sequence[str] | None = None,
    cell_size: int = 96,
    padding: int = 2,
) -> Image.Image:
    """Tile images (B, C, W, H) with values in [0, 1] into one RGB picture.

    The images are in MONAI's layout (spatial axis 0 is x, as ``LoadImage`` reads a PNG; see
    `monai_lesiongen.utils.orientation`), so each cell shows the picture the way the image file does.

    Args:
        images: the images; 1 channel is shown as grey, 3 as RGB, 4 (image + mask) as the image with the mask
            outline drawn in green.
        num_columns: columns of the grid; about sqrt(B) by default.
        labels: one short text per image, written under it.
        cell_size: the size of the longer side each image is scaled to (nearest neighbour, so pixels stay visible;
            the aspect ratio is kept).
        padding: pixels between cells.

    Raises:
        ValueError: when `images` is not (B, C, W, H) with C in 1, 3, 4, or `labels` has the wrong length.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
        raise ValueError(f"images must be (B, C, W, H) with C in (1, 3, 4), got {tuple(images.shape)}.")
    if labels is not None and len(labels) != images.shape[0]:
        raise ValueError(f"got {len(labels)} labels for {images.shape[0]} images.")
    count = images.shape[0]
    columns = num_columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    label_height = 12 if labels is not None else 0
    grid = Image.new("RGB", (columns * (cell_size + padding), rows * (cell_size + label_height + padding)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for index in range(count):
        picture = images[index].detach().float().clamp(0, 1).cpu()
        mask = picture[3:4] if picture.shape[0] == 4 else None
        rgb = picture[:3] if picture.shape[0] >= 3 else picture.repeat(3, 1, 1)
        array = np.array(to_pil_image(rgb))
        if mask is not None:
            binary = np.asarray(to_pil_image(mask[0])) > 127
            edge = binary ^ np.roll(binary, 1, 0) | binary ^ np.roll(binary, 1, 1)
            array[edge] = (0, 255, 0)
        height, width = array.shape[:2]
        scale = cell_size / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        cell = Image.fromarray(array).resize(size, Image.Resampling.NEAREST)
        x = (index % columns) * (cell_size + padding)
        y = (index // columns) * (cell_size + label_height + padding)
        grid.paste(cell, (x, y))
        if labels is not None:
            draw.text((x + 1, y + cell_size), labels[index][: cell_size // 6], fill="black", font=font)
    return grid


def save_image_grid(images: torch.Tensor, path: str | Path, **kwargs) -> Path:
    """Save `make_image_grid(images, **kwargs)` as a PNG at `path` (folders are created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    make_image_grid(images, **kwargs).save(target)
    return target
