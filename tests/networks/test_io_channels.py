"""Widening a Stable Diffusion UNet for a paired mask: at step 0 the image output is the base model's, for any mask."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_stable_diffusion import write_tiny_sd

from monai_lesiongen.networks import ConditionedDiffusionUNet, load_sd_unet, widen_io_channels

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("sd"))


def test_widened_unet_reproduces_the_base_output_for_any_mask(sd_folder: Path) -> None:
    base = load_sd_unet(sd_folder).eval()
    widened = widen_io_channels(load_sd_unet(sd_folder), extra_in=1, extra_out=1).eval()
    assert isinstance(widened, ConditionedDiffusionUNet)
    assert (widened.in_channels, widened.out_channels, widened.mask_channels, widened.image_channels) == (5, 5, 1, 4)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(2, 4, 16, 16, generator=generator)
    timesteps, context = torch.tensor([0, 999]), torch.randn(2, 3, 24, generator=generator)
    with torch.no_grad():
        expected = base(image, timesteps, context)
        for mask in (torch.zeros(2, 1, 16, 16), torch.randn(2, 1, 16, 16, generator=generator)):
            output = widened(torch.cat([image, mask], dim=1), timesteps, context)
            assert output.shape == (2, 5, 16, 16)
            torch.testing.assert_close(output[:, :4], expected, atol=0, rtol=0)
            assert not output[:, 4:].any()


def test_widening_checks_its_counts(sd_folder: Path) -> None:
    with pytest.raises(ValueError, match="extra_in"):
        widen_io_channels(load_sd_unet(sd_folder), extra_in=2, extra_out=1)
    with pytest.raises(ValueError, match=">= 0"):
        widen_io_channels(load_sd_unet(sd_folder), extra_in=-1, extra_out=-1)
