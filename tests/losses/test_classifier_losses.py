from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from monai_lesiongen.engines import NoisyClassificationPrepareBatch, predict_original_sample
from monai_lesiongen.losses import DiffusionStepState
from monai_lesiongen.losses.classifier import (
    ClassifierInducedLoss,
    NoisyClassifierLoss,
)
from monai_lesiongen.networks.classifier import NoiseAwareClassifier

NULL = 4  # the tiny denoisers here have 4 classes; 4 is their null class


def _classifier() -> NoiseAwareClassifier:
    torch.manual_seed(1)
    return NoiseAwareClassifier(
        num_classes=2, spatial_size=(8, 8), channels=(16, 32), attention_levels=(False, False), norm_num_groups=8
    )


def _state(denoiser, dropped=(False, False, False, False), max_t: int = 20) -> DiffusionStepState:
    """One training step's state: 4 samples at small timesteps, so that x0_hat stays within the data range."""
    scheduler = DDPMScheduler(100)
    torch.manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8) * 1.6 - 0.8
    noise = torch.randn_like(x0)
    timesteps = torch.randint(0, max_t, (4,))
    labels = torch.tensor([0, 1, 1, 0])
    class_labels = torch.where(torch.tensor(dropped), torch.full_like(labels, NULL), labels + 2)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    prediction = denoiser(noisy, timesteps, class_labels=class_labels)
    return DiffusionStepState(
        inputs=x0, noisy=noisy, noise=noise, timesteps=timesteps, prediction=prediction,
        original_estimate=predict_original_sample(scheduler, "epsilon", prediction, noisy, timesteps),
        conditions={"class_labels": class_labels}, batchdata={"label": labels}, network=denoiser,
    )  # fmt: skip


@pytest.mark.parametrize("update_classifier", [True, False])
def test_induced_loss_gradient_reaches_the_denoiser(tiny_denoiser, update_classifier: bool) -> None:
    denoiser, classifier = tiny_denoiser(num_classes=NULL), _classifier()
    loss = ClassifierInducedLoss(classifier, weight=0.2, probability=1.0, update_classifier=update_classifier)
    value = loss(_state(denoiser))
    assert value > 0
    value.backward()
    grads = [p.grad.abs().sum() for p in denoiser.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0
    assert denoiser.conv_in.conv.weight.grad.abs().sum() > 0
    classifier_grads = [p.grad for p in classifier.parameters() if p.grad is not None]
    assert bool(classifier_grads) == update_classifier


def test_induced_loss_skips_dropped_and_too_noisy_samples(tiny_denoiser) -> None:
    denoiser, classifier = tiny_denoiser(num_classes=NULL), _classifier()
    loss = ClassifierInducedLoss(classifier, probability=1.0)
    assert float(loss(_state(denoiser, dropped=(True,) * 4))) == 0.0  # null class from the network
    state = _state(denoiser, dropped=(True, False, True, False))
    assert loss.selected(state).tolist() == [False, True, False, True]
    early = ClassifierInducedLoss(classifier, probability=1.0, max_timestep=int(state.timesteps.min()) - 1)
    assert not early.selected(state).any() and float(early(state)) == 0.0
    assert float(ClassifierInducedLoss(classifier, probability=0.0)(state)) == 0.0


def test_induced_loss_runs_on_the_set_share_of_steps(tiny_denoiser) -> None:
    state = _state(tiny_denoiser(num_classes=NULL))
    state.original_estimate = state.original_estimate.detach()
    loss = ClassifierInducedLoss(_classifier(), probability=0.25)
    torch.manual_seed(3)
    with torch.no_grad():
        active = [float(loss(state)) > 0 for _ in range(300)]
    assert 0.18 < sum(active) / len(active) < 0.32


def test_noisy_classifier_loss_trains_the_classifier_on_noisy_and_clean_inputs_only(tiny_denoiser) -> None:
    denoiser, classifier = tiny_denoiser(num_classes=NULL), _classifier()
    seen: list[torch.Tensor] = []
    classifier.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    state = _state(denoiser)
    loss = NoisyClassifierLoss(classifier, label_map=[1, 0])
    loss(state).backward()
    assert torch.equal(seen[0], torch.cat([state.timesteps, torch.zeros(4, dtype=torch.long)]))
    assert all(p.grad is None for p in denoiser.parameters())  # detached from the denoiser
    assert all(p.grad is not None for p in classifier.parameters())
    with pytest.raises(KeyError, match="label_key"):
        NoisyClassifierLoss(classifier, label_key="dx")(state)


def test_prepare_batch_for_the_classifier_alone() -> None:
    prepare = NoisyClassificationPrepareBatch(DDPMScheduler(100), 100, label_map=[0, 1, 1])
    images, labels, args, kwargs = prepare({"image": torch.zeros(3, 3, 8, 8), "label": torch.tensor([0, 1, 2])})
    assert images.shape == (6, 3, 8, 8) and args == ()
    assert labels.tolist() == [0, 1, 1, 0, 1, 1]
    assert kwargs["timesteps"][3:].tolist() == [0, 0, 0] and torch.equal(images[3:], torch.zeros(3, 3, 8, 8))


def test_alpha_bar_weighting_scales_each_sample_by_its_signal_fraction(tiny_denoiser) -> None:
    scheduler = DDPMScheduler(100)
    state = _state(tiny_denoiser(num_classes=NULL))
    state.timesteps = torch.full((4,), 15)
    plain = ClassifierInducedLoss(_classifier(), probability=1.0)
    weighted = ClassifierInducedLoss(plain.classifier, probability=1.0, weighting="alpha_bar", scheduler=scheduler)
    torch.manual_seed(0)  # the same dropout masks in both calls
    expected = plain(state) * scheduler.alphas_cumprod[15]
    torch.manual_seed(0)
    assert torch.allclose(weighted(state), expected, atol=1e-6)
    with pytest.raises(ValueError, match="scheduler"):
        ClassifierInducedLoss(plain.classifier, weighting="alpha_bar")
