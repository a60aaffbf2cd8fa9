from __future__ import annotations

from .image_grid import make_image_grid, save_image_grid
from .report import SampleSet, write_report

__all__ = ["SampleSet", "make_image_grid", "save_image_grid", "write_report"]
