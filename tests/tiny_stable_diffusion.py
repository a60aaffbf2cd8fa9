"""Tiny random Stable Diffusion folders in the diffusers layout, for tests (diffusers builds them; nothing is
downloaded). Imported by the tests as ``tiny_stable_diffusion`` (pytest puts ``tests/`` on the path for conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

UNET_COMMON = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 24,
    "norm_num_groups": 8,
}
# SD 1.x: one head count for every level, 1x1-convolution projections; SD 2.x: head counts per level, linear
# projections, upcast attention
UNET_VARIANTS = {
    "sd1": {"attention_head_dim": 4},
    "sd2": {"attention_head_dim": [2, 4], "use_linear_projection": True, "upcast_attention": True},
}
# the scheduler of the tiny folders: the noise schedule of Stable Diffusion, and v-prediction (as SD 2.x at 768 px)
PREDICTION_TYPE = "v_prediction"


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Random values for every parameter (diffusers and MONAI zero some at initialisation, which would hide errors)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


def write_tiny_sd(root: Path, variant: str = "sd1") -> Path:
    """A Stable Diffusion folder in the diffusers layout with tiny random unet/, vae/, scheduler/, text_encoder/ and
    tokenizer/."""
    import diffusers

    unet = diffusers.UNet2DConditionModel(**UNET_COMMON, **UNET_VARIANTS[variant])
    _randomise(unet, seed=0)
    unet.save_pretrained(root / "unet")
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=0.25,
    )
    _randomise(vae, seed=1)
    vae.save_pretrained(root / "vae")
    diffusers.DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=PREDICTION_TYPE,
        clip_sample=False,
    ).save_pretrained(root / "scheduler")
    _write_text_encoder(root)
    return root


def _write_text_encoder(root: Path) -> None:
    """A tiny random CLIP text encoder of the UNet's context width; its tokenizer is the shipped MiniLM one (a CLIP
    tokenizer needs vocabulary files that no installed package ships), with a vocabulary to match."""
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    from monai_lesiongen.networks import default_text_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(2)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=UNET_COMMON["cross_attention_dim"],
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
    )
    CLIPTextModel(config).save_pretrained(root / "text_encoder")
