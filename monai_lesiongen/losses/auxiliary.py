"""What an auxiliary loss term of a diffusion training step sees, and the protocol such a term follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

__all__ = ["AuxiliaryLoss", "DiffusionStepState"]


@dataclass
class DiffusionStepState:
    """What an auxiliary loss can see of one training step.

    Attributes:
        inputs: the clean samples x0.
        noisy: the noised samples x_t.
        noise: the noise added.
        timesteps: the timesteps t (B,).
        prediction: the network output at (x_t, t).
        original_estimate: the model's estimate of x0 (differentiable in the network's parameters).
        conditions: the condition keyword arguments the network received.
        batchdata: the batch as the data loader gave it (labels, masks, metadata).
        network: the trained network.
    """

    inputs: torch.Tensor
    noisy: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    prediction: torch.Tensor
    original_estimate: torch.Tensor
    conditions: dict[str, Any]
    batchdata: Any
    network: torch.nn.Module
    extras: dict[str, Any] = field(default_factory=dict)


class AuxiliaryLoss(Protocol):
    """A loss term added to the diffusion loss (classifier loss, mask Dice, ...); `name` labels it in the logs."""

    name: str

    def __call__(self, state: DiffusionStepState) -> torch.Tensor: ...
