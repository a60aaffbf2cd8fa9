"""Image and mask checks of the dataset readers: every file is decoded before training, not only its header.

A truncated file passes a header-only check (PIL reads the header fine) and would fail mid-training in ``LoadImage``;
an image in another colour mode (grayscale, RGBA, CMYK) or a mask that is not binary would load without an error
and train on the wrong data. These checks find all of them while reading the dataset, and name the file, the CSV
row that names it, and the fix. Decoding runs in threads (PIL releases the GIL while decoding) and the results come
back in file order, so the first bad row reported is always the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from monai.utils import optional_import
from PIL import Image

from monai_lesiongen.data.records import DatasetFormatError

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["IMAGE_MODE", "PROGRESS_MIN_IMAGES", "ImageCheck", "check_image_file", "check_image_files"]

IMAGE_MODE = "RGB"
"""The PIL mode every image must have: the models take 3-channel, 8-bit RGB."""

PROGRESS_MIN_IMAGES = 500
"""Show a progress bar (on a terminal, with tqdm installed) when checking at least this many images."""

_MAX_WORKERS = 8  # decoding threads; more only adds memory (one decoded image per thread)
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "8-bit grayscale",
    "LA": "grayscale with an alpha channel",
    "I": "32-bit integer grayscale",
    "F": "32-bit float grayscale",
    "P": "a palette image",
    "PA": "a palette image with an alpha channel",
    "RGBA": "RGB with an alpha channel",
    "RGBX": "RGB with a padding channel",
    "CMYK": "CMYK (as print software saves JPEGs)",
    "YCbCr": "YCbCr",
    "LAB": "CIELAB",
    "HSV": "HSV",
}
_BINARY_VALUES = (frozenset({0, 255}), frozenset({0, 1}))


@dataclass(frozen=True)
class ImageCheck:
    """One image, its optional mask, and where a problem with them is reported.

    Attributes:
        image: the image file.
        mask: its lesion mask file, or None.
        file: the file errors are reported against: the CSV naming the image, or the image itself.
        row: the CSV row naming the image, or None.
        field_name: the field naming the image; mask errors are reported against the field ``mask``.
    """

    image: Path
    mask: Path | None
    file: str
    row: int | None
    field_name: str

    def error(self, message: str, field_name: str | None = None) -> DatasetFormatError:
        """A `DatasetFormatError` at this check's file and row, about the image field or `field_name`."""
        return DatasetFormatError(self.file, message, self.row, field_name or self.field_name)


class _Decoded(NamedTuple):
    size: tuple[int, int]
    problem: str | None


def _describe_mode(img: Image.Image) -> str:
    if img.mode.startswith("I;16"):
        return "16-bit grayscale"
    if img.mode == "P" and "transparency" in img.info:
        return "a palette image with transparency"
    return _MODE_NAMES.get(img.mode, f"mode {img.mode}")


def _rgb_problem(path: Path, img: Image.Image) -> str | None:
    if img.mode == IMAGE_MODE:
        return None
    return (
        f"image {path} is {_describe_mode(img)} (PIL mode {img.mode!r}), not RGB; the models take 3-channel 8-bit "
        f"RGB images: convert it (e.g. Image.open(path).convert('RGB').save(path)) or skip the row with "
        "on_error='skip'."
    )


def _mask_values(img: Image.Image) -> list[float]:
    """The distinct pixel values of a single-channel image, sorted (what ``LoadImage`` will read)."""
    if img.mode in ("1", "L", "P"):
        return [float(value) for value, count in enumerate(img.histogram()) if count]
    return [float(v) for v in np.unique(np.asarray(img))]


def _mask_problem(path: Path, img: Image.Image) -> str | None:
    fix = (
        "a mask must be single-channel with 0 for background and 255 (or 1) for lesion: save it as an 8-bit "
        "grayscale PNG (mode 'L'), thresholded, never as JPEG (its compression blurs the edges), or skip the row "
        "with on_error='skip'."
    )
    bands = img.getbands()
    if len(bands) != 1:
        return f"mask {path} has {len(bands)} channels (PIL mode {img.mode!r}); {fix}"
    values = _mask_values(img)
    if any(set(values) <= allowed for allowed in _BINARY_VALUES):
        return None
    background, lesion = (0.0, 1.0) if max(values) <= 1 else (0.0, 255.0)
    offending = [f"{v:g}" for v in values if v not in (background, lesion)]
    shown = ", ".join(offending[:5]) + (", ..." if len(offending) > 5 else "")
    return (
        f"mask {path} is not binary: it holds {len(values)} distinct values, {shown} besides "
        f"{background:g} and {lesion:g}; {fix}"
    )


def _decode(
    path: Path, check: ImageCheck, field_name: str, inspect: Callable[[Path, Image.Image], str | None]
) -> _Decoded:
    """Open and fully decode `path`, then `inspect` the pixels; raise naming the file when it cannot be decoded."""
    img: Image.Image | None = None
    try:
        img = Image.open(path)
        size = img.size
        if img.format == "JPEG" and img.mode == IMAGE_MODE:
            # decode at 1/8 scale: the whole compressed stream is still read and decoded (a truncated or broken
            # file fails as in a full decode), with an eighth of the inverse DCT work
            img.draft(img.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
        img.load()
    except _READ_ERRORS as e:
        if img is not None:
            img.close()
        raise check.error(
            f"cannot read image file {path} ({e}); the file is damaged or truncated: replace it (download it "
            "again) or skip the row with on_error='skip'.",
            field_name,
        ) from e
    with img:
        return _Decoded(size, inspect(path, img))


def check_image_file(check: ImageCheck) -> None:
    """Decode `check`'s image (and mask) and check that the image is RGB and the mask binary and of its size.

    Raises:
        DatasetFormatError: naming the file, the row and the field (``mask`` for the mask), for a file PIL cannot
            decode (damaged or truncated), an image that is not RGB, a mask that is not single-channel with values
            0/255 or 0/1 (or all one of them), or a mask of another size than its image.
    """
    image = _decode(check.image, check, check.field_name, _rgb_problem)
    if image.problem is not None:
        raise check.error(image.problem)
    if check.mask is None:
        return
    mask = _decode(check.mask, check, "mask", _mask_problem)
    if mask.size != image.size:
        raise check.error(
            f"mask {check.mask} is {mask.size[0]}x{mask.size[1]} but its image {check.image} is "
            f"{image.size[0]}x{image.size[1]}; a mask must have the size of its image.",
            "mask",
        )
    if mask.problem is not None:
        raise check.error(mask.problem, "mask")


def _error_of(check: ImageCheck) -> DatasetFormatError | None:
    try:
        check_image_file(check)
    except DatasetFormatError as e:
        return e
    return None


def check_image_files(checks: Sequence[ImageCheck], stop_at_first: bool = False) -> dict[int, DatasetFormatError]:
    """Run `check_image_file` on every check, decoding in threads, with a progress bar for many images.

    Args:
        checks: the images to check, in file order.
        stop_at_first: stop at the first bad image in file order (for ``on_error="raise"``: the later ones would not
            be reported anyway).

    Returns:
        The position in `checks` -> the error, for each image that failed (only the first one with `stop_at_first`).
    """
    if not checks:
        return {}
    errors: dict[int, DatasetFormatError] = {}
    pool = ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, os.cpu_count() or 1, len(checks)))
    try:
        results = pool.map(_error_of, checks)
        if has_tqdm and len(checks) >= PROGRESS_MIN_IMAGES:
            results = tqdm(results, total=len(checks), desc="checking images", unit="image", leave=False, disable=None)
        for index, error in enumerate(results):
            if error is not None:
                errors[index] = error
                if stop_at_first:
                    break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return errors
