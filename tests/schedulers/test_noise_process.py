from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler, RFlowScheduler

from monai_lesiongen.schedulers import RectifiedFlowProcess, VariancePreservingProcess, noise_process

PROCESSES = [
    ("ddpm", "epsilon"),
    ("ddpm", "v_prediction"),
    ("ddpm", "sample"),
    ("rflow", "v_prediction"),
]


def _scheduler(kind: str) -> DDPMScheduler | RFlowScheduler:
    if kind == "rflow":
        return RFlowScheduler(1000, use_discrete_timesteps=True, sample_method="logit-normal")
    return DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195)


@pytest.mark.parametrize("kind, prediction_type", PROCESSES)
def test_target_and_estimates_invert_the_noising(kind: str, prediction_type: str) -> None:
    torch.manual_seed(0)
    process = noise_process(_scheduler(kind), prediction_type)
    x0, noise = torch.rand(5, 3, 4, 4) * 2 - 1, torch.randn(5, 3, 4, 4)
    t = torch.tensor([0, 10, 500, 900, 999])
    noisy = process.add_noise(x0, noise, t)
    target = process.target(x0, noise, t)
    torch.testing.assert_close(process.original_sample(target, noisy, t), x0, atol=2e-4, rtol=0)
    torch.testing.assert_close(process.noise_estimate(target, noisy, t), noise, atol=2e-4, rtol=0)
    torch.testing.assert_close(process.model_output(x0, noise, t), target, atol=1e-5, rtol=0)
    a, s = process.coefficients(t, 4)
    torch.testing.assert_close(noisy, a * x0 + s * noise, atol=1e-5, rtol=0)


def test_rectified_flow_is_monai_rflow() -> None:
    """x_t = (1 - t/T) x0 + (t/T) eps, the velocity x0 - eps, and the x0 estimate x_t + (t/T) v of MONAI's step."""
    scheduler = _scheduler("rflow")
    process = noise_process(scheduler)
    assert isinstance(process, RectifiedFlowProcess) and process.prediction_type == "v_prediction"
    x0, noise, t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), torch.tensor([250, 750])
    noisy = process.add_noise(x0, noise, t)
    torch.testing.assert_close(noisy, torch.tensor([0.75, 0.25]).view(-1, 1, 1, 1) * x0 + torch.tensor(
        [0.25, 0.75]).view(-1, 1, 1, 1) * noise)  # fmt: skip
    velocity = process.target(x0, noise, t)
    torch.testing.assert_close(velocity, x0 - noise)
    scheduler.set_timesteps(4)
    _, monai_estimate = scheduler.step(velocity[:1], 250, noisy[:1], next_timestep=0)
    torch.testing.assert_close(process.original_sample(velocity, noisy, t)[:1], monai_estimate)
    drawn = process.sample_timesteps(torch.zeros(4000, 1, 2, 2))
    assert 0 <= float(drawn.min()) and float(drawn.max()) < 1000
    assert abs(float(drawn.float().median()) - 500) < 40  # logit-normal(0, 1): centred, unlike ...
    assert float(((drawn < 100) | (drawn > 900)).float().mean()) < 0.1  # ... the uniform draw's 0.2 in the tails


def test_variance_preserving_figures_are_ddpm_ones() -> None:
    scheduler = _scheduler("ddpm")
    t = torch.tensor([0, 100, 500, 999])
    alpha_bar = scheduler.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    epsilon, velocity = noise_process(scheduler, "epsilon"), noise_process(scheduler, "v_prediction")
    torch.testing.assert_close(epsilon.signal_fraction(t), alpha_bar)
    torch.testing.assert_close(epsilon.snr(t), snr)
    torch.testing.assert_close(epsilon.min_snr_weights(t, 5.0), snr.clamp(max=5.0) / snr)
    torch.testing.assert_close(velocity.min_snr_weights(t, 5.0), snr.clamp(max=5.0) / (snr + 1))
    assert isinstance(epsilon, VariancePreservingProcess) and epsilon.terminal_snr > 0
    for sampling in (DDIMScheduler(1000), PNDMScheduler(1000)):
        assert isinstance(noise_process(sampling), VariancePreservingProcess)


def test_flow_min_snr_weights_are_those_of_the_x0_loss() -> None:
    """A velocity error e is an x0 error (t/T) e: the weight is min(SNR, gamma) (t/T)^2."""
    process = noise_process(_scheduler("rflow"))
    t = torch.tensor([100, 500, 900])
    s = t.float() / 1000
    snr = (1 - s) ** 2 / s**2
    torch.testing.assert_close(process.min_snr_weights(t, 5.0), snr.clamp(max=5.0) * s**2)


@pytest.mark.parametrize("kind, prediction_type", PROCESSES)
def test_guidance_moves_the_noise_estimate_and_keeps_x_t(kind: str, prediction_type: str) -> None:
    torch.manual_seed(0)
    process = noise_process(_scheduler(kind), prediction_type)
    x0, noise, t = torch.rand(3, 2, 4, 4) * 2 - 1, torch.randn(3, 2, 4, 4), torch.tensor([100, 400, 800])
    noisy = process.add_noise(x0, noise, t)
    output = process.target(x0, noise, t)
    shift = torch.randn_like(x0)
    guided = process.guide(output, noisy, t, shift)
    _, s = process.coefficients(t, 4)
    torch.testing.assert_close(process.noise_estimate(guided, noisy, t), noise - s * shift, atol=2e-4, rtol=0)
    torch.testing.assert_close(process.guide(output, noisy, t, torch.zeros_like(x0)), output, atol=2e-4, rtol=0)
    clipped = process.original_sample(process.guide(output, noisy, t, 50 * shift, (-1.0, 1.0)), noisy, t)
    assert float(clipped.abs().max()) <= 1.0 + 1e-4


def test_guidance_leaves_pure_noise_alone() -> None:
    process = noise_process(_scheduler("rflow"))
    noisy, output = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    t = torch.tensor([1000])
    torch.testing.assert_close(process.guide(output, noisy, t, torch.randn(1, 1, 4, 4)), output)


def test_unknown_schedulers_and_prediction_types_are_refused() -> None:
    with pytest.raises(ValueError, match="RFlowScheduler supports prediction_type"):
        noise_process(_scheduler("rflow"), "epsilon")
    with pytest.raises(ValueError, match="DDPMScheduler supports prediction_type"):
        noise_process(_scheduler("ddpm"), "flow")
    with pytest.raises(TypeError, match="Identity is neither"):
        noise_process(torch.nn.Identity())  # type: ignore[arg-type]


def test_step_takes_only_what_the_scheduler_takes() -> None:
    ddim = noise_process(DDIMScheduler(100, clip_sample=False))
    assert ddim.stochastic
    with pytest.raises(ValueError, match="PNDMScheduler"):
        noise_process(PNDMScheduler(100)).check_step_arguments(eta=1.0)
    with pytest.raises(ValueError, match="RFlowScheduler"):
        noise_process(_scheduler("rflow")).check_step_arguments(eta=1.0)
    flow = noise_process(_scheduler("rflow"))
    flow.set_timesteps(4, (1, 1, 4, 4))
    assert flow.timesteps.tolist() == [1000, 750, 500, 250]
    sample, velocity = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    stepped = flow.step(velocity, flow.timesteps[1], torch.tensor(500), sample)
    torch.testing.assert_close(stepped, sample + 0.25 * velocity)
