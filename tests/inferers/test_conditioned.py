from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler

from monai_lesiongen.inferers import ConditionedDiffusionInferer, ConditionedSampler


class _Recorder(torch.nn.Module):
    """Wraps a network and counts forward calls and batch sizes."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.batch_sizes: list[int] = []

    def forward(self, x, timesteps, context=None, class_labels=None):
        self.batch_sizes.append(x.shape[0])
        return self.network(x, timesteps, context=context, class_labels=class_labels)


def _two_pass_cfg(network, noise, scheduler, context, uncond, labels, null, scale):
    """Reference: classifier-free guidance with separate conditional and unconditional forwards."""
    sample = noise
    for t in scheduler.timesteps:
        t_batch = torch.full((noise.shape[0],), int(t), dtype=torch.long)
        cond = network(sample, t_batch, context=context, class_labels=labels)
        unc = network(sample, t_batch, context=uncond, class_labels=torch.full_like(labels, null))
        sample, _ = scheduler.step(unc + scale * (cond - unc), int(t), sample)
    return sample


def test_cfg_in_one_batched_forward_equals_two_separate_passes(tiny_denoiser) -> None:
    network = tiny_denoiser(cross_attention_dim=8, num_classes=3).eval()
    recorder = _Recorder(network)
    torch.manual_seed(0)
    noise = torch.randn(2, 3, 8, 8)
    context, uncond = torch.randn(2, 4, 8), torch.zeros(2, 4, 8)
    labels = torch.tensor([0, 2])
    scheduler = DDIMScheduler(50)
    inferer = ConditionedDiffusionInferer(scheduler)
    batched = inferer.sample(
        noise, recorder, scheduler, num_inference_steps=5, conditioning=context, unconditional_conditioning=uncond,
        class_labels=labels, null_class_label=3, guidance_scale=4.0, verbose=False,
    )  # fmt: skip
    assert recorder.batch_sizes == [4] * 5  # one forward per step, conditional and unconditional together
    scheduler.set_timesteps(5)
    with torch.no_grad():
        reference = _two_pass_cfg(network, noise, scheduler, context, uncond, labels, 3, 4.0)
    assert torch.allclose(batched, reference, atol=1e-5)
    # guidance changes the result
    plain = inferer.sample(noise, network, scheduler, 5, conditioning=context, class_labels=labels, verbose=False)
    assert not torch.allclose(plain, batched, atol=1e-3)
    # the same guidance as two forwards of the batch (faster on a CPU)
    recorder.batch_sizes.clear()
    separate = ConditionedDiffusionInferer(scheduler, batched_guidance=False).sample(
        noise, recorder, scheduler, num_inference_steps=5, conditioning=context, unconditional_conditioning=uncond,
        class_labels=labels, null_class_label=3, guidance_scale=4.0, verbose=False,
    )  # fmt: skip
    assert recorder.batch_sizes == [2] * 10
    assert torch.allclose(separate, batched, atol=1e-5)


@pytest.mark.parametrize(
    "scheduler_type, eta", [(DDPMScheduler, 0.0), (DDIMScheduler, 0.0), (DDIMScheduler, 1.0), (PNDMScheduler, 0.0)]
)
def test_sampler_is_seeded_and_batch_independent(tiny_denoiser, scheduler_type, eta) -> None:
    """Deterministic or stochastic steps (DDPM, DDIM with eta 1), an image depends on its seed, not on its batch."""
    network = tiny_denoiser(num_classes=2)
    scheduler = scheduler_type(100, skip_prk_steps=True) if scheduler_type is PNDMScheduler else scheduler_type(100)
    sampler = ConditionedSampler(
        ConditionedDiffusionInferer(scheduler), scheduler, (3, 8, 8), num_inference_steps=4,
        guidance_scale=2.0, null_class_label=2, batch_size=4, progress=False, eta=eta,
    )  # fmt: skip
    first = sampler(network, seeds=[0, 1, 2], class_labels=[0, 1, 0])
    again = sampler(network, seeds=[0, 1, 2], class_labels=[0, 1, 0])
    assert first.shape == (3, 3, 8, 8)
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[2])  # other seed, other image
    alone = sampler(network, seeds=[2], class_labels=[0])
    assert torch.allclose(alone[0], first[2], atol=1e-5)


def test_ddim_eta_adds_step_noise_and_needs_a_scheduler_that_takes_it(tiny_denoiser) -> None:
    network = tiny_denoiser().eval()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    inferer = ConditionedDiffusionInferer(DDIMScheduler(100))

    def draw(eta: float, seed: int) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(seed + i) for i in range(2)]
        return inferer.sample(noise, network, num_inference_steps=5, eta=eta, generator=generators, verbose=False)

    deterministic = draw(0.0, 0)
    assert torch.equal(deterministic, draw(0.0, 1))  # eta 0: the step generators are not used
    stochastic = draw(1.0, 0)
    assert torch.equal(stochastic, draw(1.0, 0))
    assert not torch.allclose(stochastic, draw(1.0, 1), atol=1e-3)  # eta 1: the step noise changes the image
    assert not torch.allclose(stochastic, deterministic, atol=1e-3)
    with pytest.raises(ValueError, match="generators for a batch of 2"):
        inferer.sample(noise, network, num_inference_steps=2, eta=1.0, generator=[torch.Generator()], verbose=False)
    with pytest.raises(ValueError, match="PNDMScheduler"):
        inferer.sample(noise, network, PNDMScheduler(100, skip_prk_steps=True), 2, eta=1.0, verbose=False)


def test_missing_unconditional_inputs_are_errors(tiny_denoiser) -> None:
    network = tiny_denoiser(cross_attention_dim=8, num_classes=3)
    inferer = ConditionedDiffusionInferer(DDIMScheduler(10))
    noise = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="unconditional_conditioning"):
        inferer.sample(noise, network, num_inference_steps=2, conditioning=torch.zeros(1, 2, 8), guidance_scale=2.0)
    with pytest.raises(ValueError, match="null_class_label"):
        inferer.sample(noise, network, num_inference_steps=2, class_labels=torch.tensor([1]), guidance_scale=2.0)


def test_guidance_rescale_matches_the_conditional_spread(tiny_denoiser) -> None:
    """phi = 1 gives each step's output the conditional output's standard deviation; phi = 0 is plain CFG."""
    network = tiny_denoiser(num_classes=3).eval()
    torch.manual_seed(0)
    sample, t_batch = torch.randn(2, 3, 8, 8), torch.tensor([700, 700])
    labels_in = torch.tensor([3, 3, 0, 2])  # the null class for the unconditional half
    plain = ConditionedDiffusionInferer(DDIMScheduler(1000))
    rescaled = ConditionedDiffusionInferer(DDIMScheduler(1000), guidance_rescale=1.0)
    half = ConditionedDiffusionInferer(DDIMScheduler(1000), guidance_rescale=0.5)
    with torch.no_grad():
        guided = plain._guided_output(network, sample, t_batch, None, labels_in, 7.5)
        conditional = network(sample, t_batch, class_labels=labels_in[2:])
        full = rescaled._guided_output(network, sample, t_batch, None, labels_in, 7.5)
        mixed = half._guided_output(network, sample, t_batch, None, labels_in, 7.5)
    assert not torch.allclose(guided.std(dim=(1, 2, 3)), conditional.std(dim=(1, 2, 3)), rtol=0.05)
    assert torch.allclose(full.std(dim=(1, 2, 3)), conditional.std(dim=(1, 2, 3)), rtol=1e-4)
    assert torch.allclose(mixed, 0.5 * full + 0.5 * guided, atol=1e-6)
    with pytest.raises(ValueError, match="guidance_rescale"):
        ConditionedDiffusionInferer(DDIMScheduler(1000), guidance_rescale=1.5)


def test_guidance_interval_guides_only_the_steps_inside_it(tiny_denoiser) -> None:
    network = tiny_denoiser(num_classes=3).eval()
    recorder = _Recorder(network)
    torch.manual_seed(0)
    noise, labels = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    scheduler = DDIMScheduler(1000)
    guided = dict(class_labels=labels, null_class_label=3, guidance_scale=4.0, verbose=False)

    def run(interval, **kwargs):
        inferer = ConditionedDiffusionInferer(scheduler, guidance_interval=interval)
        return inferer.sample(noise, recorder, scheduler, num_inference_steps=5, **kwargs)

    everywhere = run(None, **guided)
    assert torch.equal(run((0.0, 1.0), **guided), everywhere)
    recorder.batch_sizes.clear()
    nowhere = run((0.8, 0.9), **guided)  # MONAI's DDIM-5 on 1000 steps: t = 999, 749, 500, 250, 0
    assert recorder.batch_sizes == [2] * 5  # the conditional pass alone: no unconditional forward
    assert torch.allclose(nowhere, run(None, class_labels=labels, verbose=False), atol=1e-6)
    recorder.batch_sizes.clear()
    middle = run((0.2, 0.8), **guided)
    assert recorder.batch_sizes == [2, 4, 4, 4, 2]  # guided at t = 749, 500 and 250 only
    assert not torch.allclose(middle, everywhere, atol=1e-4) and not torch.allclose(middle, nowhere, atol=1e-4)
    with pytest.raises(ValueError, match="guidance_interval"):
        ConditionedDiffusionInferer(scheduler, guidance_interval=(0.8, 0.2))
