"""Encoding images into an autoencoder's latent space inside a MONAI pipeline, so latents can be cached."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.networks.nets import AutoencoderKL
from monai.transforms import MapTransform

__all__ = ["EncodeLatentd", "EncodeLatentD", "EncodeLatentDict"]


class EncodeLatentd(MapTransform):
    """Replace an image (C, H, W) by its scaled latent (L, H/f, W/f) under a frozen `AutoencoderKL`.

    The latent is the encoder's mean (not a sample), times `scale_factor`, so the transform is deterministic and a
    `CacheDataset` keeps the latents: the latent diffusion model then trains with no autoencoder cost per step.

    Args:
        keys: keys of the images to encode.
        autoencoder: the trained stage-1 autoencoder.
        scale_factor: multiplies the latents so their standard deviation is about 1 (see `latent_scale_factor`).
        device: where to run the encoder; the result is returned on the CPU.
        allow_missing_keys: do not raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        autoencoder: AutoencoderKL,
        scale_factor: float = 1.0,
        device: torch.device | str = "cpu",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.autoencoder = autoencoder
        self.scale_factor = scale_factor
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.autoencoder.eval()
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).float().unsqueeze(0).to(self.device)
            z_mu, _ = self.autoencoder.encode(image)
            d[key] = (z_mu[0] * self.scale_factor).cpu()
        return d


EncodeLatentD = EncodeLatentDict = EncodeLatentd
