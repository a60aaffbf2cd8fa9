from __future__ import annotations

from .image_grid import make_image_grid, save_image_grid

__all__ = ["make_image_grid", "save_image_grid"]
