from __future__ import annotations

import pytest
import torch
from monai.data import CacheDataset
from monai.networks.nets import AutoencoderKL
from monai.transforms import Compose, Flipd

from monai_lesiongen.losses import AutoencoderKLLoss
from monai_lesiongen.networks import LatentDecoder, latent_scale_factor
from monai_lesiongen.transforms import EncodeLatentd, RandMirroredLatentd


def _autoencoder() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        spatial_dims=2, in_channels=3, out_channels=3, channels=(8, 16), attention_levels=(False, False),
        latent_channels=2, num_res_blocks=1, norm_num_groups=8,
        with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
    )  # fmt: skip


def test_encode_latent_is_deterministic_scaled_and_cacheable() -> None:
    autoencoder = _autoencoder()
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    scale = latent_scale_factor(autoencoder, images)
    transform = EncodeLatentd(keys="image", autoencoder=autoencoder, scale_factor=scale)
    dataset = CacheDataset([{"image": image} for image in images], transform=transform, progress=False)
    latents = torch.stack([dataset[i]["image"] for i in range(3)])
    assert latents.shape == (3, 2, 8, 8)
    assert abs(float(latents.std()) - 1.0) < 0.05  # the scale factor brings the latents to unit variance
    with torch.no_grad():
        expected = autoencoder.encode(images)[0] * scale
    assert torch.allclose(latents, expected, atol=1e-5)


def test_the_mirror_image_is_encoded_and_cached_and_picked_at_random() -> None:
    autoencoder = _autoencoder()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    encode = EncodeLatentd(keys="image", autoencoder=autoencoder, scale_factor=2.0, mirrored_suffix="_mirrored")
    pick = RandMirroredLatentd(keys="image", mirrored_suffix="_mirrored", prob=0.5)
    dataset = CacheDataset([{"image": image} for image in images], transform=Compose([encode, pick]), progress=False)
    cached = dataset._cache[0]  # the encoder runs once, before the random pick
    mirrored_image = Flipd(keys="image", spatial_axis=1)({"image": images[0]})["image"]
    with torch.no_grad():
        expected = autoencoder.encode(torch.stack([images[0], torch.as_tensor(mirrored_image)]))[0] * 2.0
    assert torch.allclose(cached["image"], expected[0], atol=1e-5)
    assert torch.allclose(cached["image_mirrored"], expected[1], atol=1e-5)  # the latent of the flipped image
    pick.set_random_state(seed=0)
    draws = [dataset[0] for _ in range(40)]
    assert all(set(d) == {"image"} for d in draws)
    chose_mirror = [torch.equal(d["image"], cached["image_mirrored"]) for d in draws]
    assert 5 < sum(chose_mirror) < 35 and all(
        m or torch.equal(d["image"], cached["image"]) for m, d in zip(chose_mirror, draws, strict=True)
    )
    with pytest.raises(KeyError, match="mirrored_suffix='_mirrored'"):
        pick({"image": torch.zeros(2, 8, 8)})


def test_decoder_inverts_the_scaling() -> None:
    autoencoder = _autoencoder()
    z = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        expected = autoencoder.decode(z)
    assert torch.allclose(LatentDecoder(autoencoder, scale_factor=4.0)(z * 4.0), expected, atol=1e-5)


def test_autoencoder_loss_trains_reconstruction() -> None:
    autoencoder = _autoencoder()
    loss_function = AutoencoderKLLoss(kl_weight=1e-6)
    torch.manual_seed(1)
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=16, mode="bilinear", align_corners=False)
    images = smooth * 2 - 1
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_function(autoencoder(images), images)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    # the KL term is the closed form against N(0, I): zero for a standard normal posterior
    zero_kl = AutoencoderKLLoss(kl_weight=1.0)((images, torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)), images)
    assert float(zero_kl) == 0.0
