from __future__ import annotations

import torch
from monai.networks.schedulers import DDPMScheduler

from monai_lesiongen.engines import predict_original_sample
from monai_lesiongen.losses import DiffusionStepState, MaskConsistencyLoss, PairedMaskLoss, mask_probability


def _state(network, scheduler, timesteps) -> DiffusionStepState:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    masks = -torch.ones(2, 1, 8, 8)
    masks[:, :, 2:6, 2:6] = 1.0
    inputs = torch.cat([images, masks], 1)
    noise = torch.randn_like(inputs)
    noisy = scheduler.add_noise(inputs, noise, timesteps)
    prediction = network(noisy, timesteps)
    return DiffusionStepState(
        inputs=inputs, noisy=noisy, noise=noise, timesteps=timesteps, prediction=prediction,
        original_estimate=predict_original_sample(scheduler, "epsilon", prediction, noisy, timesteps),
        conditions={}, batchdata={}, network=network,
    )  # fmt: skip


def test_dice_term_gradient_reaches_the_denoiser(tiny_denoiser) -> None:
    scheduler = DDPMScheduler(100)
    network = tiny_denoiser(mask_channels=1)
    loss = PairedMaskLoss(scheduler, dice_weight=1.0, bce_weight=0.0)(_state(network, scheduler, torch.tensor([3, 7])))
    assert loss > 0
    loss.backward()
    assert float(network.conv_in.conv.weight.grad.abs().sum()) > 0
    assert float(network.out[2].conv.weight.grad[3].abs().sum()) > 0  # the mask output channel learns


def test_loss_is_small_for_the_true_mask_and_weighted_towards_low_noise() -> None:
    scheduler = DDPMScheduler(1000)
    mask = -torch.ones(1, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    inputs = torch.cat([torch.zeros(1, 3, 8, 8), mask], 1)

    def state(estimate: torch.Tensor, t: int) -> DiffusionStepState:
        return DiffusionStepState(
            inputs=inputs, noisy=inputs, noise=inputs, timesteps=torch.tensor([t]), prediction=inputs,
            original_estimate=estimate, conditions={}, batchdata={}, network=torch.nn.Identity(),
        )  # fmt: skip

    loss = PairedMaskLoss(scheduler, dice_weight=1.0, bce_weight=1.0)
    wrong = torch.cat([torch.zeros(1, 3, 8, 8), -mask], 1)
    assert float(loss(state(inputs, 0))) < 0.05 < float(loss(state(wrong, 0)))
    assert float(loss(state(wrong, 999))) < 0.01 * float(loss(state(wrong, 0)))


def test_consistency_compares_the_mask_with_a_segmentation_of_the_image(tiny_denoiser) -> None:
    scheduler = DDPMScheduler(100)
    network = tiny_denoiser(mask_channels=1)

    def dark_pixels(image: torch.Tensor) -> torch.Tensor:  # a stand-in segmenter: lesion = dark
        return 20 * (0.5 - image.mean(1, keepdim=True))

    loss = MaskConsistencyLoss(scheduler, dark_pixels, weight=1.0)(_state(network, scheduler, torch.tensor([1, 2])))
    loss.backward()
    assert loss > 0 and float(network.conv_in.conv.weight.grad.abs().sum()) > 0
    assert torch.equal(mask_probability(torch.tensor([-1.0, 0.0, 1.0, 3.0])), torch.tensor([0.0, 0.5, 1.0, 1.0]))
