from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler
from monai.transforms import Compose, Flipd
from PIL import Image

from monai_lesiongen.data.readers import read_dataset
from monai_lesiongen.inferers import ConditionedDiffusionInferer, ConditionedSampler, PairedDatasetWriter
from monai_lesiongen.transforms import SplitImageMaskd, StackImageMaskd


@pytest.fixture
def paired_sampler(tiny_denoiser):
    network = tiny_denoiser(num_classes=2, mask_channels=1)
    scheduler = DDIMScheduler(50)
    sampler = ConditionedSampler(
        ConditionedDiffusionInferer(scheduler), scheduler, (4, 8, 8), num_inference_steps=2,
        guidance_scale=1.0, batch_size=4, progress=False,
    )  # fmt: skip
    return network, sampler


def test_pairs_come_from_one_sample_and_read_back_as_isic2018_task1(paired_sampler, tmp_path: Path) -> None:
    network, sampler = paired_sampler
    plan = [{"label": 0, "label_name": "bcc"}, {"label": 1, "label_name": "mel"}]
    writer = PairedDatasetWriter(sampler, plan, tmp_path, num_per_row=2, seed=5, caption_key=None, label_key="label")
    writer.run(network)
    rows = list(csv.DictReader(open(tmp_path / "manifest.csv")))
    assert len(rows) == 4 and rows[0]["mask"].endswith("ISIC_9000000_segmentation.png")
    samples = sampler(network, seeds=[5, 6, 7, 8], class_labels=[0, 0, 1, 1])
    for row, sample in zip(rows, samples, strict=True):
        image = np.asarray(Image.open(tmp_path / row["file"]))
        mask = np.asarray(Image.open(tmp_path / row["mask"]))
        # samples are (C, W, H) as MONAI loads a PNG; the files are pictures (H, W, C)
        assert np.abs(image.astype(float) - sample[:3].permute(2, 1, 0).numpy() * 255).max() <= 1
        assert np.array_equal(mask > 0, sample[3].numpy().T > 0.5)  # the mask is the same sample's fourth channel
    records = read_dataset("isic2018_task1", tmp_path)
    assert sorted(r["id"] for r in records) == [f"ISIC_900000{i}" for i in range(4)]
    assert all(Path(r["mask"]).is_file() for r in records)


def test_interrupted_generation_resumes_without_regenerating(paired_sampler, tmp_path: Path) -> None:
    network, sampler = paired_sampler
    writer = PairedDatasetWriter(sampler, [{"label": 1}], tmp_path, num_per_row=3, caption_key=None, label_key="label")
    writer.run(network)
    first = tmp_path / "ISIC2018_Task1-2_Training_Input" / "ISIC_9000000.png"
    stamp = first.stat().st_mtime_ns
    (tmp_path / "ISIC2018_Task1-2_Training_Input" / "ISIC_9000002.png").unlink()
    writer.run(network)
    assert first.stat().st_mtime_ns == stamp
    assert len(list(csv.DictReader(open(tmp_path / "manifest.csv")))) == 3


def test_paired_transforms_keep_image_and_mask_aligned() -> None:
    image = torch.rand(3, 8, 8) * 2 - 1
    mask = torch.zeros(1, 8, 8)
    mask[:, 1:4, 0:3] = 1
    pipeline = Compose([StackImageMaskd(), Flipd(keys="image", spatial_axis=1), SplitImageMaskd()])
    out = pipeline({"image": image, "mask": mask})
    assert torch.allclose(torch.as_tensor(out["image"]), image.flip(-1))
    assert torch.equal(torch.as_tensor(out["mask"]).float(), mask.flip(-1))
