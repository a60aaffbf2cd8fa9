"""Stable Diffusion import: tiny random diffusers models saved in the diffusers layout, then loaded as MONAI networks.

Outputs are compared in float32 with ``atol=1e-5`` (the measured differences are below 1e-6: the same operations run
in both libraries, only in a different order of modules).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from monai.networks.nets import AutoencoderKL
from safetensors.torch import load_file, save_file
from tiny_stable_diffusion import UNET_COMMON, UNET_VARIANTS, write_tiny_sd

from monai_lesiongen.networks import (
    CheckpointMismatchError,
    ConditionedDiffusionUNet,
    load_sd_autoencoder,
    load_sd_scheduler,
    load_sd_unet,
    sd_unet_arguments,
)

diffusers = pytest.importorskip("diffusers")

ATOL = 1e-5


@pytest.fixture(scope="module")
def sd_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: write_tiny_sd(tmp_path_factory.mktemp(name), name) for name in UNET_VARIANTS}


def _unet_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 16, 16, generator=generator)
    context = torch.randn(2, 7, 24, generator=generator)
    return x, torch.tensor([3, 870]), context


@pytest.mark.parametrize("variant", sorted(UNET_VARIANTS))
@pytest.mark.parametrize("use_flash_attention", [True, False])
def test_unet_gives_the_diffusers_output(sd_folders: dict[str, Path], variant: str, use_flash_attention: bool) -> None:
    reference = diffusers.UNet2DConditionModel.from_pretrained(sd_folders[variant] / "unet").eval()
    network = load_sd_unet(sd_folders[variant], use_flash_attention=use_flash_attention).eval()
    assert isinstance(network, ConditionedDiffusionUNet)
    x, timesteps, context = _unet_inputs()
    with torch.no_grad():
        expected = reference(x, timesteps, encoder_hidden_states=context).sample
        output = network(x, timesteps, context=context)
    assert expected.abs().max() > 0.05  # a real signal, not zeros
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)


def test_head_counts_follow_the_diffusers_convention() -> None:
    sd1 = {**UNET_COMMON, "block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": 8}
    sd1["down_block_types"] = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    sd1["up_block_types"] = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
    assert sd_unet_arguments(sd1)["num_head_channels"] == [40, 80, 160, 160]  # 8 heads everywhere
    sd2 = {**sd1, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": True}
    assert sd_unet_arguments(sd2)["num_head_channels"] == [64, 64, 64, 64]  # 64-wide heads
    assert sd_unet_arguments(sd1)["attention_levels"] == [True, True, True, False]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"class_embed_type": "timestep"}, "class_embed_type"),
        ({"transformer_layers_per_block": 2}, "transformer_layers_per_block"),
        ({"down_block_types": ("AttnDownBlock2D", "DownBlock2D")}, "AttnDownBlock2D"),
        ({"up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D")}, "up_block_types"),
        ({"attention_head_dim": 3}, "attention heads at level 0"),
        ({"in_channels": 9}, "in_channels=9"),
    ],
)
def test_unsupported_unet_settings_are_named(change: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        sd_unet_arguments({**UNET_COMMON, "attention_head_dim": 4, **change})


def _copy_with_weights(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source / "unet", target / "unet")
    weights_file = target / "unet" / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(weights_file))
    edit(weights)
    save_file(weights, str(weights_file))
    return target


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda w: w.update({"mid_block.extra.weight": torch.zeros(3)}), "mid_block.extra.weight"),
        (
            lambda w: w.pop("up_blocks.1.resnets.0.conv_shortcut.bias"),
            "up_blocks.1.resnets.0.skip_connection.conv.bias",
        ),
        (
            lambda w: w.update({"conv_in.weight": torch.zeros(32, 5, 3, 3)}),
            "conv_in.weight (32, 5, 3, 3) -> conv_in.conv.weight (32, 4, 3, 3)",
        ),
    ],
    ids=["unexpected", "missing", "shape"],
)
def test_a_mismatched_checkpoint_names_its_keys(sd_folders: dict[str, Path], tmp_path: Path, edit, named: str) -> None:
    folder = _copy_with_weights(sd_folders["sd1"], tmp_path, edit)
    with pytest.raises(CheckpointMismatchError) as raised:
        load_sd_unet(folder)
    assert named in str(raised.value)
    assert "diffusion_pytorch_model.safetensors" in str(raised.value)


def test_a_config_that_does_not_match_its_weights_is_refused(sd_folders: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(sd_folders["sd1"] / "unet", tmp_path / "unet")
    config_file = tmp_path / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config["cross_attention_dim"] = 16
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=r"attn2\.to_k\.weight \(32, 24\) -> .*attn2\.to_k\.weight"):
        load_sd_unet(tmp_path)


def test_a_folder_without_weights_or_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_sd_unet(tmp_path)
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({**UNET_COMMON, "attention_head_dim": 4}))
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model"):
        load_sd_unet(tmp_path)


def test_autoencoder_gives_the_diffusers_latents_and_images(sd_folders: dict[str, Path]) -> None:
    reference = diffusers.AutoencoderKL.from_pretrained(sd_folders["sd1"] / "vae").eval()
    autoencoder = load_sd_autoencoder(sd_folders["sd1"]).eval()
    assert isinstance(autoencoder, AutoencoderKL)
    assert autoencoder.scaling_factor == 0.25
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(2, 3, 32, 32, generator=generator)
    latents = torch.randn(2, 4, 16, 16, generator=generator)
    with torch.no_grad():
        distribution = reference.encode(images).latent_dist
        z_mu, z_sigma = autoencoder.encode(images)
        expected_images = reference.decode(latents).sample
        decoded = autoencoder.decode(latents)
    torch.testing.assert_close(z_mu, distribution.mean, atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.log(z_sigma.square()), distribution.logvar, atol=ATOL, rtol=0)
    assert expected_images.abs().max() > 0.05
    torch.testing.assert_close(decoded, expected_images, atol=ATOL, rtol=0)


def test_autoencoder_reads_the_older_attention_names(sd_folders: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(sd_folders["sd1"] / "vae", tmp_path / "vae")
    weights_file = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    old_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    weights = {}
    for key, value in load_file(str(weights_file)).items():
        for new, old in old_names.items():
            key = key.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        weights[key] = value
    assert "encoder.mid_block.attentions.0.query.weight" in weights
    save_file(weights, str(weights_file))
    latents = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        expected = load_sd_autoencoder(sd_folders["sd1"]).decode(latents)
        torch.testing.assert_close(load_sd_autoencoder(tmp_path).decode(latents), expected, atol=0, rtol=0)


def test_a_mismatched_autoencoder_checkpoint_names_its_keys(sd_folders: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(sd_folders["sd1"] / "vae", tmp_path / "vae")
    weights_file = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(weights_file))
    weights.pop("decoder.up_blocks.1.resnets.1.conv2.weight")
    weights["quant_conv.weight"] = torch.zeros(6, 6, 1, 1)
    save_file(weights, str(weights_file))
    with pytest.raises(CheckpointMismatchError) as raised:
        load_sd_autoencoder(tmp_path)
    message = str(raised.value)
    assert "quant_conv.weight (6, 6, 1, 1) -> quant_conv_mu.conv.weight (4, 8, 1, 1)" in message
    assert "decoder.blocks" in message and "conv2.conv.weight" in message  # the missing one, by its MONAI name


def test_unsupported_autoencoder_settings_are_named(sd_folders: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(sd_folders["sd1"] / "vae", tmp_path / "vae")
    config_file = tmp_path / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    config["down_block_types"] = ["AttnDownEncoderBlock2D", "DownEncoderBlock2D"]
    config["mid_block_add_attention"] = False
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"(?s)mid_block_add_attention=False.*down_block_types"):
        load_sd_autoencoder(tmp_path)


@pytest.mark.parametrize("kind", ["ddpm", "ddim", "pndm"])
def test_scheduler_settings_come_from_the_folder(sd_folders: dict[str, Path], kind: str) -> None:
    scheduler = load_sd_scheduler(sd_folders["sd1"], kind)
    reference = diffusers.DDPMScheduler.from_pretrained(sd_folders["sd1"] / "scheduler")
    assert type(scheduler).__name__ == f"{kind.upper()}Scheduler"
    assert scheduler.prediction_type == "v_prediction"
    assert scheduler.num_train_timesteps == 1000
    torch.testing.assert_close(scheduler.betas, reference.betas, atol=1e-8, rtol=0)
    torch.testing.assert_close(scheduler.alphas_cumprod, reference.alphas_cumprod, atol=1e-6, rtol=0)
    if kind != "pndm":
        assert scheduler.clip_sample is False


def test_unsupported_scheduler_settings_are_named(sd_folders: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(sd_folders["sd1"] / "scheduler", tmp_path / "scheduler")
    config_file = tmp_path / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "beta_schedule": "squaredcos_cap_v2", "thresholding": True}))
    with pytest.raises(ValueError, match=r"(?s)thresholding=True.*beta_schedule='squaredcos_cap_v2'"):
        load_sd_scheduler(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_sd_scheduler(sd_folders["sd1"], "euler")
