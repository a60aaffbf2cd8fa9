"""Noise schedules MONAI does not ship, registered in MONAI's own ``NoiseSchedules`` store so that every MONAI
scheduler (``DDPMScheduler``, ``DDIMScheduler``, ``PNDMScheduler``) takes them by name in a bundle config:
``schedule: scaled_linear_zero_snr``.
"""

from __future__ import annotations

import torch
from monai.networks.schedulers.scheduler import NoiseSchedules

__all__ = ["rescale_to_zero_terminal_snr", "scaled_linear_zero_snr"]


def rescale_to_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale a beta schedule so that its last step has zero signal-to-noise ratio (Lin et al., "Common Diffusion
    Noise Schedules and Sample Steps are Flawed", WACV 2024, Algorithm 1).

    sqrt(alpha_bar) is shifted so that its last value is 0 and scaled so that its first value is unchanged. A
    schedule whose last step keeps some signal trains the network to read the image's low frequencies (its mean
    colour) from x_T, which pure noise at sampling does not have; at zero terminal SNR the condition has to decide
    them. The network must then predict ``v`` or ``sample``: the noise alone says nothing about x0 at the last step.
    """
    root = torch.cumprod(1.0 - betas.double(), dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alphas_cumprod = root**2
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    return (1.0 - alphas).float()


@NoiseSchedules.add_def("scaled_linear_zero_snr", "Scaled linear beta schedule rescaled to zero terminal SNR")
def scaled_linear_zero_snr(num_train_timesteps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """MONAI's ``scaled_linear_beta`` schedule, rescaled by `rescale_to_zero_terminal_snr` (alpha_bar_T = 0)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return rescale_to_zero_terminal_snr(betas)
