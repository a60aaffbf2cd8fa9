"""Helpers for latent diffusion: the latent scale factor and decoding sampled latents back to images."""

from __future__ import annotations

import torch
from monai.networks.nets import AutoencoderKL
from torch import nn

__all__ = ["LatentDecoder", "latent_scale_factor"]


@torch.no_grad()
def latent_scale_factor(autoencoder: AutoencoderKL, images: torch.Tensor) -> float:
    """``1 / std`` of the encoder's latent means for a batch of images, as in Rombach et al. (2022): it brings the
    latents to unit variance, which the diffusion noise schedule assumes."""
    autoencoder.eval()
    z_mu, _ = autoencoder.encode(images)
    return float(1.0 / z_mu.flatten().std().clamp_min(1e-8))


class LatentDecoder(nn.Module):
    """Maps latents sampled by a latent diffusion model back to images: ``decode(z / scale_factor)``.

    Args:
        autoencoder: the trained stage-1 autoencoder.
        scale_factor: the factor the latents were multiplied by for training.
    """

    def __init__(self, autoencoder: AutoencoderKL, scale_factor: float) -> None:
        super().__init__()
        if scale_factor <= 0:
            raise ValueError(f"scale_factor must be positive, got {scale_factor}.")
        self.autoencoder = autoencoder
        self.scale_factor = scale_factor

    @torch.no_grad()
    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        self.autoencoder.eval()
        images: torch.Tensor = self.autoencoder.decode(latents / self.scale_factor)
        return images
