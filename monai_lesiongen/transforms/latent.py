"""Encoding images into an autoencoder's latent space inside a MONAI pipeline, so latents can be cached."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.networks.nets import AutoencoderKL
from monai.transforms import MapTransform, RandomizableTransform

__all__ = [
    "EncodeLatentd",
    "EncodeLatentD",
    "EncodeLatentDict",
    "RandMirroredLatentd",
    "RandMirroredLatentD",
    "RandMirroredLatentDict",
]


class EncodeLatentd(MapTransform):
    """Replace an image (C, H, W) by its scaled latent (L, H/f, W/f) under a frozen `AutoencoderKL`.

    The latent is the encoder's mean (not a sample), times `scale_factor`, so the transform is deterministic and a
    `CacheDataset` keeps the latents when it comes before the first random transform: the latent diffusion model then
    trains with no autoencoder cost per step. A random flip of the image cannot follow the encoding; with
    `mirrored_suffix`, the mirror image is encoded too (under ``key + mirrored_suffix``), and `RandMirroredLatentd`
    picks one of the two cached latents at random: the latent of the flipped image, exactly, at no cost per step.

    Args:
        keys: keys of the images to encode.
        autoencoder: the trained stage-1 autoencoder.
        scale_factor: multiplies the latents so their standard deviation is about 1 (see `latent_scale_factor`).
        device: where to run the encoder; the result is returned on the CPU.
        mirrored_suffix: also encode the image flipped along `spatial_axis`, under ``key + mirrored_suffix``.
        spatial_axis: the spatial axis of the mirror image (1: the second spatial axis, as ``RandFlipd``).
        allow_missing_keys: do not raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        autoencoder: AutoencoderKL,
        scale_factor: float = 1.0,
        device: torch.device | str = "cpu",
        mirrored_suffix: str | None = None,
        spatial_axis: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.autoencoder = autoencoder
        self.scale_factor = scale_factor
        self.device = torch.device(device)
        self.mirrored_suffix = mirrored_suffix
        self.spatial_axis = spatial_axis

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        z_mu, _ = self.autoencoder.encode(image.float().unsqueeze(0).to(self.device))
        latent: torch.Tensor = (z_mu[0] * self.scale_factor).cpu()
        return latent

    @torch.no_grad()
    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.autoencoder.eval()
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            d[key] = self._encode(image)
            if self.mirrored_suffix is not None:
                d[f"{key}{self.mirrored_suffix}"] = self._encode(image.flip(1 + self.spatial_axis))
        return d


class RandMirroredLatentd(RandomizableTransform, MapTransform):
    """With probability `prob`, replace each latent by the latent of its mirror image that `EncodeLatentd` cached
    (``key + mirrored_suffix``); the mirrored latents are removed either way. The latent-space counterpart of
    ``RandFlipd`` on the image before encoding.

    Args:
        keys: keys of the latents.
        mirrored_suffix: as given to `EncodeLatentd`.
        prob: the probability of the mirror image.
        allow_missing_keys: do not raise for missing keys.

    Raises:
        KeyError: when a latent has no mirrored latent beside it (no `EncodeLatentd` with `mirrored_suffix` before).
    """

    def __init__(
        self,
        keys: KeysCollection,
        mirrored_suffix: str = "_mirrored",
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.mirrored_suffix = mirrored_suffix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            mirrored_key = f"{key}{self.mirrored_suffix}"
            if mirrored_key not in d:
                raise KeyError(
                    f"RandMirroredLatentd: no '{mirrored_key}' beside '{key}': encode with "
                    f"EncodeLatentd(mirrored_suffix='{self.mirrored_suffix}') before this transform."
                )
            mirrored = d.pop(mirrored_key)
            if self._do_transform:
                d[key] = mirrored
        return d


EncodeLatentD = EncodeLatentDict = EncodeLatentd
RandMirroredLatentD = RandMirroredLatentDict = RandMirroredLatentd
