from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from monai_lesiongen.inferers import ConditionedDiffusionInferer
from monai_lesiongen.inferers.guidance import ClassifierGuidance, ClassifierGuidedSampler, guidance_settings
from monai_lesiongen.networks.classifier import NoiseAwareClassifier


class _Linear(torch.nn.Module):
    """log p(y | x) = log_softmax(w_y . x): its gradient in x is known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(2, 3 * 4 * 4))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def _expected_gradient(classifier: _Linear, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(classifier(x, torch.zeros(1)), dim=-1)
    return (classifier.weight[targets] - probs @ classifier.weight).view_as(x)


def test_epsilon_shift_is_scaled_log_probability_gradient() -> None:
    torch.manual_seed(0)
    classifier, scheduler = _Linear(), DDPMScheduler(100)
    x, eps, t, targets = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([10, 90]), torch.tensor([1, 0])
    guided = ClassifierGuidance(classifier, targets, scale=2.5)(eps, x, t, scheduler)
    alpha_bar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        expected = eps - 2.5 * (1 - alpha_bar).sqrt() * _expected_gradient(classifier, x, targets)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert ClassifierGuidance(classifier, targets, scale=0.0)(eps, x, t, scheduler) is eps


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_other_prediction_types_get_the_same_noise_shift(prediction_type: str) -> None:
    torch.manual_seed(0)
    classifier, scheduler = _Linear(), DDPMScheduler(100)
    x, eps, t, targets = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([10, 90]), torch.tensor([1, 0])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    output = a.sqrt() * eps - (1 - a).sqrt() * x0 if prediction_type == "v_prediction" else x0
    guided = ClassifierGuidance(classifier, targets, 2.0, prediction_type)(output, x, t, scheduler)  # type: ignore[arg-type]
    if prediction_type == "v_prediction":
        guided_eps = a.sqrt() * guided + (1 - a).sqrt() * x
    else:
        guided_eps = (x - a.sqrt() * guided) / (1 - a).sqrt()
    expected = ClassifierGuidance(classifier, targets, 2.0)(eps, x, t, scheduler)
    assert torch.allclose(guided_eps, expected, atol=1e-4)


def _ddim_step(output: torch.Tensor, x: torch.Tensor, a: torch.Tensor, a_prev: torch.Tensor) -> torch.Tensor:
    """A deterministic DDIM step from an epsilon output, clipping x0 to [-1, 1] as MONAI's DDIM does by default."""
    original = ((x - (1 - a).sqrt() * output) / a.sqrt()).clamp(-1, 1)
    return a_prev.sqrt() * original + (1 - a_prev).sqrt() * output


@pytest.mark.parametrize("data_range", [None, (-1.0, 1.0)])
def test_strong_guidance_turns_round_under_clipping_unless_clipped_itself(data_range) -> None:
    torch.manual_seed(0)
    classifier, scheduler = _Linear(), DDPMScheduler(100)
    x, eps, t, targets = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([60, 60]), torch.tensor([1, 1])
    a, a_prev = scheduler.alphas_cumprod[60], scheduler.alphas_cumprod[50]
    guided = ClassifierGuidance(classifier, targets, 50.0, data_range=data_range)(eps, x, t, scheduler)
    with torch.no_grad():
        moved = _ddim_step(guided, x, a, a_prev) - _ddim_step(eps, x, a, a_prev)
        along = float((moved * _expected_gradient(classifier, x, targets)).sum())
    assert (along > 0) == (data_range is not None)


def test_targets_are_checked() -> None:
    guidance = ClassifierGuidance(_Linear(), scale=1.0)
    x, t = torch.randn(2, 3, 4, 4), torch.tensor([1, 1])
    with pytest.raises(ValueError, match="set_targets"):
        guidance(x, x, t, DDPMScheduler(10))
    guidance.set_targets([0, 1, 1])
    with pytest.raises(ValueError, match="3 target labels for a batch of 2"):
        guidance(x, x, t, DDPMScheduler(10))
    assert guidance_settings("cfg", 3.0) == (3.0, False) and guidance_settings("classifier", 3.0) == (1.0, True)
    with pytest.raises(ValueError, match="guidance_mode"):
        guidance_settings("classifier-free", 3.0)


def _toy(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a bright square on dark skin; class 1: a dark square on bright skin (8 x 8, in [-1, 1])."""
    labels = torch.randint(0, 2, (count,), generator=generator)
    sign = (1 - 2 * labels.float()).view(-1, 1, 1, 1)
    images = torch.full((count, 3, 8, 8), -0.8) * sign
    images[:, :, 2:6, 2:6] = 0.8 * sign
    return images + 0.05 * torch.randn(images.shape, generator=generator), labels


def _fit(model: torch.nn.Module, loss_of, steps: int, lr: float = 3e-3) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of().backward()
        optimizer.step()


def test_classifier_guidance_raises_the_target_class_probability(tiny_denoiser) -> None:
    generator = torch.Generator().manual_seed(0)
    scheduler = DDPMScheduler(100)
    torch.manual_seed(0)
    # an unconditional tiny denoiser: it draws both classes
    denoiser = tiny_denoiser()

    def denoising_loss() -> torch.Tensor:
        x0, _ = _toy(32, generator)
        noise, t = torch.randn(x0.shape, generator=generator), torch.randint(0, 100, (32,), generator=generator)
        return F.mse_loss(denoiser(scheduler.add_noise(x0, noise, t), t), noise)

    _fit(denoiser, denoising_loss, 80)
    # the guiding classifier: noise-aware, trained on x_t at t
    classifier = NoiseAwareClassifier(
        num_classes=2, spatial_size=(8, 8), channels=(16, 32), attention_levels=(False, False), norm_num_groups=8
    )

    def noisy_loss() -> torch.Tensor:
        x0, y = _toy(32, generator)
        noise, t = torch.randn(x0.shape, generator=generator), torch.randint(0, 100, (32,), generator=generator)
        return F.cross_entropy(classifier(scheduler.add_noise(x0, noise, t), t), y)

    _fit(classifier, noisy_loss, 60)
    # the judge: an independent classifier (logistic regression) trained on clean images
    judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    clean_x, clean_y = _toy(256, generator)
    _fit(judge, lambda: F.cross_entropy(judge(clean_x), clean_y), 100)

    ddim = DDIMScheduler(100)
    seeds = list(range(16))
    common = {"sample_shape": (3, 8, 8), "num_inference_steps": 10, "guidance_scale": 1.0, "progress": False}
    unguided = ClassifierGuidedSampler(ConditionedDiffusionInferer(ddim), ddim, **common)(denoiser, seeds)
    guidance = ClassifierGuidance(classifier, scale=4.0, data_range=(-1.0, 1.0))  # DDIM clips x0 to [-1, 1]
    guided_sampler = ClassifierGuidedSampler(
        ConditionedDiffusionInferer(ddim), ddim, classifier_guidance=guidance, batch_size=8, **common
    )
    for target in (0, 1):
        guided = guided_sampler(denoiser, seeds, target_labels=[target] * len(seeds))
        with torch.no_grad():
            # the share of samples that the judge recognises as the target class
            p_unguided = (judge(unguided * 2 - 1).argmax(dim=-1) == target).float().mean()
            p_guided = (judge(guided * 2 - 1).argmax(dim=-1) == target).float().mean()
        assert p_guided > p_unguided + 0.2, (target, float(p_unguided), float(p_guided))
    with pytest.raises(ValueError, match="target_labels"):
        guided_sampler(denoiser, seeds)


class _ClassShift(torch.nn.Module):
    """A denoiser whose output moves with the class label and the timestep, in closed form."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embedding = torch.nn.Embedding(3, 3)

    def forward(self, x, timesteps, context=None, class_labels=None) -> torch.Tensor:
        shift = self.embedding(class_labels).view(-1, 3, 1, 1) * (timesteps.float() / 100).view(-1, 1, 1, 1)
        return 0.5 * x + shift


def test_guided_ddim_sampling_is_that_of_the_plain_formulas() -> None:
    """CFG + classifier guidance through the noise process reproduce a DDIM loop written with alpha_bar (to 1e-5)."""
    torch.manual_seed(0)
    denoiser, classifier = _ClassShift(), _Linear()
    scheduler = DDIMScheduler(100)
    noise, labels, targets = torch.randn(2, 3, 4, 4), torch.tensor([0, 1]), torch.tensor([1, 0])
    guidance = ClassifierGuidance(classifier, targets, scale=1.5, data_range=(-1.0, 1.0))
    sampled = ConditionedDiffusionInferer(DDPMScheduler(100)).sample(
        noise, denoiser, scheduler, 5, class_labels=labels, null_class_label=2, guidance_scale=2.0,
        guidance=[guidance], verbose=False,
    )  # fmt: skip
    reference = DDIMScheduler(100)
    reference.set_timesteps(5)
    x = noise
    with torch.no_grad():
        for t in reference.timesteps:
            t_batch = torch.full((2,), int(t))
            conditional = denoiser(x, t_batch, class_labels=labels)
            unconditional = denoiser(x, t_batch, class_labels=torch.full_like(labels, 2))
            eps = unconditional + 2.0 * (conditional - unconditional)
            alpha_bar = reference.alphas_cumprod[int(t)]
            eps = eps - 1.5 * (1 - alpha_bar).sqrt() * _expected_gradient(classifier, x, targets)
            original = ((x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).clamp(-1, 1)
            eps = (x - alpha_bar.sqrt() * original) / (1 - alpha_bar).sqrt()
            x = reference.step(eps, int(t), x)[0]
    torch.testing.assert_close(sampled, x, atol=1e-5, rtol=0)
