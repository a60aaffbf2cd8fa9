from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler, RFlowScheduler
from monai.utils import set_determinism

from monai_lesiongen.engines import predict_original_sample, snr_weights
from monai_lesiongen.losses import DiffusionStepState


@pytest.mark.parametrize("weighting", ["none", "min_snr"])
def test_short_training_lowers_the_loss(tiny_denoiser, make_trainer, weighting: str) -> None:
    set_determinism(0)
    scheduler = DDPMScheduler(100)
    trainer, _, losses = make_trainer(tiny_denoiser(num_classes=2), 15, scheduler, weighting)
    trainer.run()
    assert len(losses) == 60
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    assert "loss_diffusion" in trainer.state.output[0]
    set_determinism(None)


@pytest.mark.parametrize("weighting", ["none", "min_snr"])
def test_short_rectified_flow_training_lowers_the_loss(tiny_denoiser, make_trainer, weighting: str) -> None:
    set_determinism(0)
    scheduler = RFlowScheduler(100, use_discrete_timesteps=False, sample_method="logit-normal")
    trainer, _, losses = make_trainer(tiny_denoiser(num_classes=2), 15, scheduler, weighting)
    trainer.run()
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    set_determinism(None)


def test_original_sample_estimate_inverts_the_noising() -> None:
    scheduler = DDPMScheduler(100)
    x0, noise = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    t = torch.tensor([0, 10, 50, 99])
    noisy = scheduler.add_noise(x0, noise, t)
    assert torch.allclose(predict_original_sample(scheduler, "epsilon", noise, noisy, t), x0, atol=1e-4)
    velocity = scheduler.get_velocity(x0, noise, t)
    assert torch.allclose(predict_original_sample(scheduler, "v_prediction", velocity, noisy, t), x0, atol=1e-4)


def test_min_snr_weights() -> None:
    scheduler = DDPMScheduler(1000)
    t = torch.tensor([0, 100, 500, 999])
    weights = snr_weights(scheduler, t, "epsilon", gamma=5.0)
    alpha = scheduler.alphas_cumprod[t]
    snr = alpha / (1 - alpha)
    assert torch.allclose(weights, torch.clamp(snr, max=5.0) / snr)
    assert weights[0] < 0.1 and torch.isclose(weights[-1], torch.tensor(1.0))  # low noise down-weighted


def test_auxiliary_loss_gradient_reaches_the_denoiser(tiny_denoiser) -> None:
    scheduler = DDPMScheduler(100)
    network = tiny_denoiser()
    images = torch.randn(2, 3, 8, 8)
    noise = torch.randn_like(images)
    t = torch.tensor([5, 60])
    noisy = scheduler.add_noise(images, noise, t)
    prediction = network(noisy, t)
    state = DiffusionStepState(
        inputs=images, noisy=noisy, noise=noise, timesteps=t, prediction=prediction,
        original_estimate=predict_original_sample(scheduler, "epsilon", prediction, noisy, t),
        conditions={}, batchdata={}, network=network,
    )  # fmt: skip
    aux = (state.original_estimate - images).abs().mean()
    aux.backward()
    grads = [p.grad for p in network.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
