from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

import monai_lesiongen  # noqa: F401  (registers the schedules)
from monai_lesiongen.engines import ConditionedDiffusionPrepareBatch
from monai_lesiongen.schedulers import rescale_to_zero_terminal_snr

SETTINGS = {"num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0195}


def test_the_rescaled_schedule_ends_at_zero_snr_and_starts_where_the_original_does() -> None:
    original = DDPMScheduler(schedule="scaled_linear_beta", **SETTINGS).alphas_cumprod
    rescaled = DDPMScheduler(schedule="scaled_linear_zero_snr", **SETTINGS).alphas_cumprod
    assert original[-1] > 1e-4 and rescaled[-1] == 0.0
    assert torch.allclose(rescaled[0], original[0], atol=1e-6)
    assert bool((rescaled[1:] < rescaled[:-1]).all())  # the signal falls at every step
    assert bool((rescaled <= original + 1e-6).all())  # never more signal than the original schedule


def test_rescaling_is_algorithm_1_of_lin_et_al() -> None:
    betas = torch.linspace(1e-4, 2e-2, 50)
    root = torch.cumprod(1 - rescale_to_zero_terminal_snr(betas).double(), 0).sqrt()
    original = torch.cumprod(1 - betas.double(), 0).sqrt()
    expected = (original - original[-1]) * original[0] / (original[0] - original[-1])
    assert torch.allclose(root, expected, atol=1e-6)


def test_ddim_samples_from_pure_noise_with_v_prediction() -> None:
    scheduler = DDIMScheduler(schedule="scaled_linear_zero_snr", prediction_type="v_prediction", **SETTINGS)
    scheduler.set_timesteps(10)
    x = torch.randn(2, 3, 4, 4)
    image = torch.full_like(x, 0.5)
    for t in scheduler.timesteps:
        alpha = scheduler.alphas_cumprod[t]
        velocity = (
            alpha.sqrt() * ((x - alpha.sqrt() * image) / (1 - alpha).sqrt().clamp(min=1e-8))
            - (1 - alpha).sqrt() * image
        )  # the v an exact denoiser of the constant image predicts
        x, _ = scheduler.step(velocity, int(t), x)
    assert torch.isfinite(x).all() and torch.allclose(x, image, atol=1e-3)


def test_epsilon_prediction_on_a_zero_snr_schedule_is_refused() -> None:
    scheduler = DDPMScheduler(schedule="scaled_linear_zero_snr", **SETTINGS)
    with pytest.raises(ValueError, match="zero terminal SNR"):
        ConditionedDiffusionPrepareBatch(1000, scheduler=scheduler, prediction_type="epsilon")
    ConditionedDiffusionPrepareBatch(1000, scheduler=scheduler, prediction_type="v_prediction")
