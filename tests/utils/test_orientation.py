"""An image loaded by a bundle's own preprocessing and written back by every writer and the grid reads back with PIL
exactly as the original: one array layout (MONAI's) from loading to writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose
from PIL import Image

from monai_lesiongen.inferers import PairedDatasetWriter, SyntheticDatasetWriter
from monai_lesiongen.utils import make_image_grid

SKINDUALGEN_TRAIN = Path(__file__).resolve().parents[2] / "bundles" / "skindualgen" / "configs" / "train.yaml"


def _asymmetric_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB picture whose every pixel differs from its transpose and mirror images, and an L-shaped mask."""
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([rows * 255 // (height - 1), columns * 255 // (width - 1), (rows * 7 + columns * 3) % 256], -1)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[2 : height - 2, 2:5] = 255
    mask[height - 5 : height - 2, 2 : width - 2] = 255
    return image.astype(np.uint8), mask


def _bundle_loading(image_dim: int, resize: bool) -> Compose:
    """skindualgen's training preprocessing up to the stacked image + mask (the measuring and random steps left
    out), with the images of the test's size; a non-square image skips the square resize."""
    parser = ConfigParser()
    parser.read_config(str(SKINDUALGEN_TRAIN))
    parser["image_dim"] = image_dim
    targets = [
        "LoadImaged",
        "EnsureChannelFirstd",
        "ScaleIntensityRanged",
        "monai_lesiongen.transforms.StackImageMaskd",
    ]
    if resize:
        targets.append("Resized")
    steps = parser["train"]["preprocessing"]["transforms"]
    chosen = [i for i, step in enumerate(steps) if isinstance(step, dict) and step.get("_target_") in targets]
    assert len(chosen) == len(targets)
    return Compose([parser.get_parsed_content(f"train#preprocessing#transforms#{i}") for i in chosen])


@pytest.mark.parametrize("height, width", [(24, 24), (20, 28)])
def test_an_image_and_mask_read_back_as_they_were_loaded(tmp_path: Path, height: int, width: int) -> None:
    picture, mask = _asymmetric_pair(height, width)
    Image.fromarray(picture).save(tmp_path / "real.png")
    Image.fromarray(mask).save(tmp_path / "real_segmentation.png")
    loaded = _bundle_loading(height, resize=height == width)(
        {"image": str(tmp_path / "real.png"), "mask": str(tmp_path / "real_segmentation.png")}
    )["image"]
    sample = ((torch.as_tensor(loaded).float() + 1.0) / 2.0).clamp(0.0, 1.0)  # as a sampler returns it, in [0, 1]
    assert sample.shape == (4, width, height)  # MONAI's layout: spatial axis 0 is x

    SyntheticDatasetWriter(None, [{"caption": ""}], tmp_path / "images").save(sample[:3], {"file": "a.png"})  # type: ignore[arg-type]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "images" / "a.png")), picture)

    paired = PairedDatasetWriter(None, [{"caption": ""}], tmp_path / "pairs")  # type: ignore[arg-type]
    paired.save(sample, {"file": "b.png", "mask": "b_segmentation.png"})
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pairs" / "b.png")), picture)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pairs" / "b_segmentation.png")), mask)

    cell = np.asarray(make_image_grid(sample[None, :3], cell_size=max(height, width), padding=0))
    assert np.array_equal(cell[:height, :width], picture)


def test_a_nifti_image_reads_back_like_the_png(tmp_path: Path) -> None:
    from monai_lesiongen.evaluation.downstream_data import load_image_tensors

    picture, _ = _asymmetric_pair(16, 16)
    sample = torch.as_tensor(picture).permute(2, 1, 0).float() / 255.0  # (C, W, H), as LoadImage reads the PNG
    for ext in (".png", ".nii.gz"):
        writer = SyntheticDatasetWriter(None, [{"caption": ""}], tmp_path, output_ext=ext)  # type: ignore[arg-type]
        writer.save(sample, {"file": f"a{ext}"})
    png, nifti = load_image_tensors([{"image": str(tmp_path / "a.png")}, {"image": str(tmp_path / "a.nii.gz")}], 16)
    assert torch.allclose(png, sample[None], atol=1e-6) and torch.allclose(nifti, sample[None], atol=1e-6)
