"""One array convention from loading to writing: MONAI's.

MONAI's ``LoadImage`` (``PILReader`` with its default ``reverse_indexing=True``) gives a PNG or JPEG of height H and
width W as a (W, H[, C]) array, which ``EnsureChannelFirst`` makes (C, W, H): spatial axis 0 is the image's x (its
columns), as for NIfTI volumes. Every tensor in this package (training images, generated samples, masks) is in that
layout. Writing one back as a picture therefore swaps the two spatial axes again, as MONAI's own ``PILWriter`` does;
these helpers are the one place that happens, so an image loaded by a bundle's preprocessing and written by any
writer or grid reads back with PIL exactly as the original.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import PILWriter
from PIL import Image

__all__ = ["to_pil_image", "to_nifti_array"]


def to_pil_image(image: torch.Tensor) -> Image.Image:
    """A MONAI-layout image (C, W, H) or mask (W, H) in [0, 1] as a PIL image (grey for one channel, else RGB).

    Values are clipped to [0, 1] and rounded (not truncated) to 0-255. The axis swap is MONAI's
    ``PILWriter.create_backend_obj(reverse_indexing=True)``, so the written picture is what ``LoadImage`` read.

    Raises:
        ValueError: when `image` is neither 2-d nor 3-d.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (C, W, H) or (W, H) in MONAI's layout, got shape {tuple(image.shape)}.")
    values = image.detach().float().clamp(0.0, 1.0).cpu()
    if values.ndim == 3:
        values = values[0] if values.shape[0] == 1 else values.permute(1, 2, 0)
    array = (values.numpy() * 255.0).round().astype(np.uint8)
    return PILWriter.create_backend_obj(array, scale=None, reverse_indexing=True)


def to_nifti_array(image: torch.Tensor) -> np.ndarray:
    """A MONAI-layout image (C, W, H) as the float32 (W, H, C) array a NIfTI file stores: ``LoadImage`` reads it
    back as (W, H, C), and a ``Transpose((2, 0, 1))`` gives the (C, W, H) of the same picture loaded from PNG."""
    if image.ndim != 3:
        raise ValueError(f"image must be (C, W, H) in MONAI's layout, got shape {tuple(image.shape)}.")
    return image.detach().float().cpu().permute(1, 2, 0).numpy().astype(np.float32)
