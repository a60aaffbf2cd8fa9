from __future__ import annotations

import os

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine
from torch.utils.data import DataLoader

from monai_lesiongen.engines import ConditionedDiffusionPrepareBatch, DiffusionTrainingStep
from monai_lesiongen.inferers import ConditionedDiffusionInferer
from monai_lesiongen.networks import ConditionedDiffusionUNet, FrozenTextEncoder

# Tests run offline and on two CPU cores: never reach a model hub, and keep torch from oversubscribing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def text_encoder() -> FrozenTextEncoder:
    """The shipped MiniLM encoder with short captions (16 tokens), loaded once per test session."""
    return FrozenTextEncoder(max_length=16, cache_size=64)


def _tiny_denoiser(
    cross_attention_dim: int | None = None, num_classes: int | None = None, mask_channels: int = 0, seed: int = 0
) -> ConditionedDiffusionUNet:
    torch.manual_seed(seed)
    network = ConditionedDiffusionUNet(
        mask_channels=mask_channels,
        channels=(16, 32),
        attention_levels=(False, True),
        num_res_blocks=1,
        num_head_channels=16,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        num_classes=num_classes,
    )
    # MONAI zero-initialises the output and attention projections; untrained test networks need them non-zero
    # so that outputs depend on the input and the conditions.
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(0.0, 0.05)
    return network


@pytest.fixture
def tiny_denoiser():
    """A factory of small (~80k-parameter) conditioned UNets for fast tests."""
    return _tiny_denoiser


def _two_class_images(count: int = 64) -> list[dict]:
    """Class 0: a bright square on dark; class 1: dark on bright."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for i in range(count):
        label = i % 2
        image = torch.full((3, 8, 8), -0.8 if label == 0 else 0.8)
        image[:, 2:6, 2:6] = 0.8 if label == 0 else -0.8
        items.append({"image": image + 0.05 * torch.randn(3, 8, 8, generator=generator), "label": label})
    return items


def _trainer(network, max_epochs: int, scheduler, weighting: str = "none", handlers=(), lr: float = 2e-3):
    prediction_type = str(getattr(scheduler, "prediction_type", "epsilon"))  # rectified flow: its velocity
    loader = DataLoader(_two_class_images(), batch_size=16, shuffle=True)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=network,
        optimizer=optimizer,
        loss_function=torch.nn.MSELoss(reduction="none"),
        inferer=ConditionedDiffusionInferer(scheduler),
        prepare_batch=ConditionedDiffusionPrepareBatch(
            100, scheduler, prediction_type=prediction_type, class_key="label", num_classes=2
        ),
        iteration_update=DiffusionTrainingStep(scheduler, prediction_type=prediction_type, loss_weighting=weighting),
        train_handlers=list(handlers),
    )
    losses: list[float] = []
    loss_of = from_engine(["loss"], first=True)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(loss_of(e.state.output))))
    return trainer, optimizer, losses


@pytest.fixture
def make_trainer():
    """A factory of `SupervisedTrainer`s with the diffusion step, on a two-class 8x8 toy set: (trainer, optimizer,
    per-iteration losses)."""
    return _trainer
