"""The stage-1 loss of latent diffusion: reconstruction + KL of `AutoencoderKL`'s outputs."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AutoencoderKLLoss"]


class AutoencoderKLLoss(nn.Module):
    """``L1(x_hat, x) + kl_weight * KL(q(z|x) || N(0, I))`` for the ``(x_hat, z_mu, z_sigma)`` that `AutoencoderKL`
    returns, so that MONAI's `SupervisedTrainer` trains the autoencoder with its default iteration (the target being
    the image itself).

    A small `kl_weight` (1e-6, as in MONAI's generative tutorials) keeps the latent space smooth without blurring
    reconstructions. No perceptual or adversarial term: their usual networks (VGG/LPIPS) would have to be
    downloaded.

    Args:
        kl_weight: weight of the KL term.
    """

    def __init__(self, kl_weight: float = 1e-6) -> None:
        super().__init__()
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
        self.kl_weight = kl_weight

    def forward(self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        reconstruction, z_mu, z_sigma = outputs
        reconstruction_loss = torch.nn.functional.l1_loss(reconstruction.float(), target.float())
        variance = z_sigma.float().pow(2)
        kl = 0.5 * (z_mu.float().pow(2) + variance - torch.log(variance.clamp_min(1e-12)) - 1)
        return reconstruction_loss + self.kl_weight * kl.flatten(1).sum(1).mean()
