"""A short training with a bundle's own noise schedule and prediction type yields samples whose colour follows the
condition, through the text path (lesiongen) and the class path (classndiff), judged on the pixels. The classndiff
defaults (v-prediction on a zero-terminal-SNR schedule since issue 14) and rectified flow (lesiongen's default since
issue 15) do; epsilon prediction on the scaled-linear schedule does not (strict xfail: the test fails once it does,
and the mark is then removed).

The toy set is what decides the skin type in the demo images: a global colour set by the condition, under a lesion
placed at random. With the scaled-linear schedule and epsilon prediction (the defaults until issue 14), sampling
from pure noise drew the darker colour 0.4 away from its target on every seed tried; the sample's colour came from
the starting noise, not from the condition.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from monai_lesiongen.engines import ConditionedDiffusionPrepareBatch, DiffusionTrainingStep
from monai_lesiongen.inferers import ConditionedDiffusionInferer, ConditionedSampler

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
COLOURS = (torch.tensor([0.5, 0.2, 0.0]), torch.tensor([-0.1, -0.35, -0.5]))  # light and dark skin, in [-1, 1]
CAPTIONS = ("light skin", "dark brown skin")
LESION_SHIFT = -0.5  # a 4x4 lesion, darker than the skin, somewhere in the 8x8 image
MEAN_SHIFT = LESION_SHIFT * 16 / 64


def _toy_set(count: int = 64) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    items = []
    for index in range(count):
        condition = index % 2
        image = COLOURS[condition].view(3, 1, 1).repeat(1, 8, 8) + 0.05 * torch.randn(3, 8, 8, generator=generator)
        row, column = torch.randint(0, 4, (2,), generator=generator).tolist()
        image[:, row : row + 4, column : column + 4] += LESION_SHIFT
        items.append({"image": image, "label": condition, "caption": CAPTIONS[condition]})
    return items


ZERO_TERMINAL_SNR: dict[str, object] = {
    "prediction_type": "v_prediction",
    "scheduler#schedule": "scaled_linear_zero_snr",
    "sampling_scheduler#schedule": "scaled_linear_zero_snr",
}
"""Hypothesis 1 of benchmarks/RESULTS.md: it passes here; on the demo data it made classndiff's skin follow its class
(its default since), and lesiongen's only with the skin type as a class condition beside the caption."""


def _bundle_schedulers(
    bundle: str, overrides: dict[str, object], extra_configs: tuple[str, ...] = ()
) -> tuple[str, object, object, float]:
    """The bundle's prediction type, training and sampling schedulers and noise offset, as its train.yaml (and the
    `extra_configs` merged after it) define them."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name) for name in ("train.yaml", *extra_configs)])
    for key, value in overrides.items():
        parser[key] = value
    return (
        parser.get_parsed_content("prediction_type"),
        parser.get_parsed_content("scheduler"),
        parser.get_parsed_content("sampling_scheduler"),
        float(parser.get_parsed_content("noise_offset", default=0.0)),
    )


EPSILON: dict[str, object] = {
    "prediction_type": "epsilon",
    "scheduler#schedule": "scaled_linear_beta",
    "sampling_scheduler#schedule": "scaled_linear_beta",
}
"""The settings the bundles had before issue 14 (skindualgen's default still)."""

DDPM = ("ddpm.yaml",)
"""The bundles' DDPM configuration (lesiongen's default until issue 15, classndiff's until 0.4; now rectified flow)."""

EPSILON_DOES_NOT_FOLLOW = pytest.mark.xfail(
    strict=True, reason="issue 14: with epsilon on scaled_linear_beta the sample colour comes from the starting noise"
)

OFFSET_TOO_SMALL_AT_8PX = pytest.mark.xfail(
    strict=True, reason="an offset of 0.1 is smaller than the spread of an 8x8 image's noise mean (1/8)"
)


@pytest.mark.parametrize(
    "bundle, path, overrides, configs",
    [
        pytest.param("lesiongen", "text", EPSILON, DDPM, marks=EPSILON_DOES_NOT_FOLLOW, id="lesiongen-epsilon"),
        pytest.param("classndiff", "class", EPSILON, DDPM, marks=EPSILON_DOES_NOT_FOLLOW, id="classndiff-epsilon"),
        pytest.param("lesiongen", "text", ZERO_TERMINAL_SNR, DDPM, id="lesiongen-zero-snr"),
        pytest.param("classndiff", "class", {}, DDPM, id="classndiff-ddpm-zero-snr"),
        # lesiongen's DDPM skin type travels by its class embedding, on epsilon with offset noise 0.1: on the 32 px
        # demo data it follows (ITA match 0.88, benchmarks/RESULTS.md H5); on this 8x8 set the mean of x_T (std 1/8)
        # outweighs an offset of 0.1, and the darker colour stays 0.35 off
        pytest.param("lesiongen", "class", {}, DDPM, marks=OFFSET_TOO_SMALL_AT_8PX, id="lesiongen-ddpm-skin-class"),
        # rectified flow (lesiongen's default since issue 15, classndiff's since 0.4) starts from pure noise
        pytest.param("lesiongen", "text", {}, (), id="lesiongen-defaults-text"),
        pytest.param("lesiongen", "class", {}, (), id="lesiongen-defaults-skin-class"),
        pytest.param("classndiff", "class", {}, (), id="classndiff-defaults"),
    ],
)
def test_samples_follow_the_condition_colour(
    tiny_denoiser, text_encoder, bundle: str, path: str, overrides: dict[str, object], configs: tuple[str, ...]
) -> None:
    set_determinism(1)
    prediction_type, scheduler, sampling_scheduler, noise_offset = _bundle_schedulers(bundle, overrides, configs)
    text = path == "text"
    network = tiny_denoiser(cross_attention_dim=text_encoder.hidden_size if text else None,
                            num_classes=None if text else 2, seed=1)  # fmt: skip
    prepare_batch = ConditionedDiffusionPrepareBatch(
        scheduler.num_train_timesteps, scheduler, prediction_type=prediction_type,  # type: ignore[attr-defined]
        text_encoder=text_encoder if text else None, caption_key="caption" if text else None,
        class_key=None if text else "label", num_classes=None if text else 2, noise_offset=noise_offset,
    )  # fmt: skip
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=50,
        train_data_loader=DataLoader(_toy_set(), batch_size=16, shuffle=True),
        network=network,
        optimizer=torch.optim.AdamW(network.parameters(), lr=2e-3),
        loss_function=torch.nn.MSELoss(reduction="none"),
        inferer=ConditionedDiffusionInferer(scheduler),  # type: ignore[arg-type]
        prepare_batch=prepare_batch,
        iteration_update=DiffusionTrainingStep(scheduler, prediction_type=prediction_type),  # type: ignore[arg-type]
    )
    trainer.run()
    sampler = ConditionedSampler(
        ConditionedDiffusionInferer(scheduler), sampling_scheduler, (3, 8, 8), num_inference_steps=10,  # type: ignore[arg-type]
        guidance_scale=1.0, text_encoder=text_encoder if text else None, null_class_label=2, batch_size=32,
        progress=False,
    )  # fmt: skip
    conditions = [0] * 16 + [1] * 16
    samples = sampler(
        network,
        list(range(32)),
        captions=[CAPTIONS[c] for c in conditions] if text else None,
        class_labels=None if text else conditions,
    )
    colours = (samples * 2 - 1).mean(dim=(2, 3))  # each sample's mean colour, in the data range
    for condition in (0, 1):
        drawn = colours[torch.tensor(conditions) == condition]
        error = (drawn - COLOURS[condition] - MEAN_SHIFT).abs().mean().item()
        assert error < 0.15, f"condition {condition}: mean colour {drawn.mean(0).tolist()} is {error:.3f} off"
    set_determinism(None)
