"""Stable Diffusion weights from a local diffusers folder, as MONAI networks and schedulers.

A diffusers Stable Diffusion folder holds ``unet/``, ``vae/`` and ``scheduler/`` (and ``text_encoder/``,
``tokenizer/``, which `FrozenTextEncoder` reads). Each network folder has a ``config.json`` and its weights in
``diffusion_pytorch_model.safetensors`` (or ``.bin``, or safetensors shards with an ``.index.json``). The loaders build
the MONAI network the config describes and map every weight onto it by name; a weight left over, a weight missing or a
shape that differs is an error that names the keys. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler, Scheduler
from torch import nn

from .denoiser import ConditionedDiffusionUNet
from .sd_autoencoder import StableDiffusionAutoencoderKL
from .sd_checkpoint import diffusers_folder, load_converted_weights, read_diffusers_config, read_diffusers_weights

__all__ = [
    "load_sd_autoencoder",
    "load_sd_scheduler",
    "load_sd_unet",
    "sd_unet_arguments",
]

# (diffusers pattern, MONAI replacement); a key converts to the MONAI layout by these substitutions, applied in order
_UNET_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^conv_in\.", "conv_in.conv."),
        (r"^time_embedding\.linear_1\.", "time_embed.0."),
        (r"^time_embedding\.linear_2\.", "time_embed.2."),
        (r"^conv_norm_out\.", "out.0."),
        (r"^conv_out\.", "out.2.conv."),
        (r"^mid_block\.resnets\.0\.", "middle_block.resnet_1."),
        (r"^mid_block\.resnets\.1\.", "middle_block.resnet_2."),
        (r"^mid_block\.attentions\.0\.", "middle_block.attention."),
        (r"\.downsamplers\.0\.conv\.", ".downsampler.op.conv."),
        (r"\.upsamplers\.0\.conv\.", ".upsampler.postconv.conv."),
        (r"\.(conv1|conv2)\.", r".\1.conv."),
        (r"\.conv_shortcut\.", ".skip_connection.conv."),
        (r"\.(proj_in|proj_out)\.", r".\1.conv."),
        (r"\.to_out\.0\.", ".out_proj."),
        (r"\.ff\.net\.0\.proj\.", ".ff.linear1."),
        (r"\.ff\.net\.2\.", ".ff.linear2."),
    )
)

# settings of a diffusers UNet2DConditionModel config that the MONAI UNet reproduces only at these values (the
# diffusers defaults, those of Stable Diffusion 1.x and 2.x); a list value must hold one of them throughout
_UNET_FIXED: dict[str, tuple[Any, ...]] = {
    "center_input_sample": (False,),
    "flip_sin_to_cos": (True,),
    "freq_shift": (0,),
    "mid_block_type": ("UNetMidBlock2DCrossAttn",),
    "act_fn": ("silu",),
    "dropout": (0.0,),
    "transformer_layers_per_block": (1,),
    "reverse_transformer_layers_per_block": (None,),
    "dual_cross_attention": (False,),
    "only_cross_attention": (False,),
    "mid_block_only_cross_attention": (None, False),
    "class_embed_type": (None,),
    "num_class_embeds": (None,),
    "addition_embed_type": (None,),
    "encoder_hid_dim": (None,),
    "encoder_hid_dim_type": (None,),
    "resnet_time_scale_shift": ("default",),
    "resnet_skip_time_act": (False,),
    "resnet_out_scale_factor": (1.0,),
    "time_embedding_type": ("positional",),
    "time_embedding_dim": (None,),
    "time_embedding_act_fn": (None,),
    "timestep_post_act": (None,),
    "time_cond_proj_dim": (None,),
    "conv_in_kernel": (3,),
    "conv_out_kernel": (3,),
    "downsample_padding": (1,),
    "mid_block_scale_factor": (1.0,),
    "attention_type": ("default",),
    "class_embeddings_concat": (False,),
    "cross_attention_norm": (None,),
}
_VAE_FIXED: dict[str, tuple[Any, ...]] = {
    "act_fn": ("silu",),
    "mid_block_add_attention": (True,),
    "use_quant_conv": (True,),
    "use_post_quant_conv": (True,),
    "shift_factor": (None,),
    "latents_mean": (None,),
    "latents_std": (None,),
}
_DOWN_BLOCKS = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
_UP_BLOCKS = {True: "CrossAttnUpBlock2D", False: "UpBlock2D"}
_BETA_SCHEDULES = {"linear": "linear_beta", "scaled_linear": "scaled_linear_beta"}
_SCHEDULERS = ("ddpm", "ddim", "pndm")


def _unsupported(config: Mapping[str, Any], fixed: Mapping[str, tuple[Any, ...]]) -> list[str]:
    problems = []
    for key, allowed in fixed.items():
        if key not in config:
            continue
        value = config[key]
        values = value if isinstance(value, list | tuple) else [value]
        if not values or any(v not in allowed for v in values):
            problems.append(f"{key}={value!r} (supported: {' or '.join(repr(a) for a in allowed)})")
    return problems


def _per_level(key: str, value: Any, levels: int) -> list[Any]:
    values = list(value) if isinstance(value, list | tuple) else [value] * levels
    if len(values) != levels:
        raise ValueError(f"config.json: {key}={value!r} must have one entry per level ({levels}).")
    return values


def sd_unet_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `ConditionedDiffusionUNet` arguments for a diffusers ``UNet2DConditionModel`` config (``unet/config.json``).

    Attention heads: diffusers' ``attention_head_dim`` is the number of heads, not their width (Stable Diffusion 1.x
    has ``8``: 8 heads at every level; 2.x has ``[5, 10, 20, 20]``: 64-wide heads), unless ``num_attention_heads`` is
    set. MONAI takes the width, so level ``i`` gets ``num_head_channels = block_out_channels[i] // heads[i]``. The
    mid block uses the last level's heads in both. ``use_linear_projection`` (2.x) needs no argument: a linear
    projection of each pixel is the 1x1 convolution MONAI uses, and its weights are reshaped on loading.

    Args:
        config: the parsed ``config.json``.

    Returns:
        keyword arguments for `ConditionedDiffusionUNet`. ``norm_eps`` is not among them: `load_sd_unet` sets it on
        the built network. ``upcast_attention`` (SD 2.1) is accepted and not applied: it computes attention scores
        in float32 against float16 overflow, which PyTorch's SDPA kernels (``use_flash_attention``, the default) and
        autocast already do, while MONAI's own upcast option fails on a network converted to half precision.

    Raises:
        ValueError: listing every setting the MONAI UNet cannot reproduce (block types, class or added embeddings,
            several transformer layers, heads that do not divide the channels, ...).
    """
    problems = _unsupported(config, _UNET_FIXED)
    channels = list(config.get("block_out_channels", (320, 640, 1280, 1280)))
    levels = len(channels)
    down_types = list(config.get("down_block_types", ()))
    up_types = list(config.get("up_block_types", ()))
    attention_levels = [_DOWN_BLOCKS.get(t, False) for t in down_types]
    unknown = [t for t in down_types if t not in _DOWN_BLOCKS]
    if unknown or len(down_types) != levels:
        problems.append(
            f"down_block_types={down_types} (supported: one per level of {sorted(_DOWN_BLOCKS)}; got {unknown})"
        )
    expected_up = [_UP_BLOCKS[a] for a in reversed(attention_levels)]
    if up_types != expected_up:
        problems.append(f"up_block_types={up_types} (supported: the mirror of down_block_types, {expected_up})")
    in_channels, out_channels = config.get("in_channels", 4), config.get("out_channels", 4)
    if in_channels != out_channels:
        problems.append(
            f"in_channels={in_channels} with out_channels={out_channels} (supported: equal; widen an imported "
            "network with widen_io_channels instead)"
        )
    cross_attention_dims = set(_per_level("cross_attention_dim", config.get("cross_attention_dim"), levels))
    if len(cross_attention_dims) != 1 or None in cross_attention_dims:
        problems.append(f"cross_attention_dim={config.get('cross_attention_dim')!r} (supported: one integer)")
    if config.get("norm_num_groups", 32) is None:
        problems.append("norm_num_groups=None (supported: an integer)")
    heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
    heads_per_level = _per_level("attention_head_dim", heads, levels)
    num_head_channels = []
    for level, (width, count) in enumerate(zip(channels, heads_per_level, strict=True)):
        needed = (attention_levels[level] if level < len(attention_levels) else False) or level == levels - 1
        if width % count and needed:
            problems.append(f"{count} attention heads at level {level} do not divide its {width} channels")
        num_head_channels.append(width // count if width % count == 0 else width)
    if problems:
        raise ValueError(
            "the config describes a UNet that MONAI's DiffusionModelUNet does not reproduce:\n  "
            + "\n  ".join(problems)
        )
    layers = config.get("layers_per_block", 2)
    return {
        "image_channels": in_channels,
        "mask_channels": 0,
        "channels": channels,
        "attention_levels": attention_levels,
        "num_res_blocks": list(layers) if isinstance(layers, list | tuple) else layers,
        "num_head_channels": num_head_channels,
        "cross_attention_dim": cross_attention_dims.pop(),
        "num_classes": None,
        "norm_num_groups": config.get("norm_num_groups", 32),
    }


def _unet_key(key: str) -> str:
    for pattern, replacement in _UNET_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def _set_norm_eps(unet: nn.Module, norm_eps: float) -> None:
    """The epsilon of the residual blocks' and the output group norms (diffusers ``norm_eps``), which
    `ConditionedDiffusionUNet` does not take as an argument; the transformers' group norms keep 1e-6, as in diffusers.
    It is not in the state dict: a network rebuilt from `sd_unet_arguments` alone has MONAI's 1e-6 there."""
    for module in unet.modules():
        if isinstance(module, DiffusionUNetResnetBlock):
            module.norm1.eps = module.norm2.eps = norm_eps
    output_norm = unet.get_submodule("out.0")
    if isinstance(output_norm, nn.GroupNorm):
        output_norm.eps = norm_eps


def load_sd_unet(
    sd_path: str | os.PathLike,
    subfolder: str | None = "unet",
    variant: str | None = None,
    use_flash_attention: bool = True,
) -> ConditionedDiffusionUNet:
    """The denoiser of a Stable Diffusion folder as a `ConditionedDiffusionUNet`, with every weight imported.

    The network takes the latents (B, 4, H/8, W/8), timesteps and the text encoder's states as ``context``, like the
    diffusers UNet, and gives the same output in float32 (see `sd_unet_arguments` for the head-count convention and
    ``upcast_attention``).

    Args:
        sd_path: the Stable Diffusion folder (or the UNet folder itself with ``subfolder=None``).
        subfolder: the UNet's folder inside `sd_path`.
        variant: a weight variant such as ``"fp16"`` (``diffusion_pytorch_model.fp16.safetensors``).
        use_flash_attention: use PyTorch's SDPA attention.

    Returns:
        the network in float32, in training mode, as a freshly built MONAI network is.

    Raises:
        FileNotFoundError: when the folder has no ``config.json`` or no weights.
        ValueError: for a config the MONAI UNet cannot reproduce (the settings are listed).
        CheckpointMismatchError: when the weights do not fit the config (the keys are listed).
    """
    folder = diffusers_folder(sd_path, subfolder, "config.json")
    config = read_diffusers_config(folder)
    try:
        arguments = sd_unet_arguments(config)
    except ValueError as error:
        raise ValueError(f"{folder / 'config.json'}: {error}") from error
    unet = ConditionedDiffusionUNet(**arguments, use_flash_attention=use_flash_attention)
    _set_norm_eps(unet, float(config.get("norm_eps", 1e-5)))
    weights, source = read_diffusers_weights(folder, variant)
    load_converted_weights(unet, ((_unet_key(k), k, v) for k, v in weights.items()), source)
    return unet


def load_sd_autoencoder(
    sd_path: str | os.PathLike,
    subfolder: str | None = "vae",
    variant: str | None = None,
    use_flash_attention: bool = True,
) -> StableDiffusionAutoencoderKL:
    """The VAE of a Stable Diffusion folder as a MONAI `AutoencoderKL`, with every weight imported.

    ``encode`` gives the latent mean and standard deviation of diffusers' ``latent_dist`` and ``decode`` its decoder
    output; the latents the UNet works on are ``mean * scaling_factor`` (``autoencoder.scaling_factor``, read from
    the config; 0.18215 for Stable Diffusion 1.x and 2.x).

    Args:
        sd_path: the Stable Diffusion folder (or the VAE folder itself with ``subfolder=None``).
        subfolder: the VAE's folder inside `sd_path`.
        variant: a weight variant such as ``"fp16"``.
        use_flash_attention: use PyTorch's SDPA in the mid-block attention.

    Returns:
        a `StableDiffusionAutoencoderKL` (a MONAI `AutoencoderKL`) in float32.

    Raises:
        FileNotFoundError: when the folder has no ``config.json`` or no weights.
        ValueError: for a config the MONAI autoencoder cannot reproduce (the settings are listed).
        CheckpointMismatchError: when the weights do not fit the config (the keys are listed).
    """
    folder = diffusers_folder(sd_path, subfolder, "config.json")
    config = read_diffusers_config(folder)
    problems = _unsupported(config, _VAE_FIXED)
    channels = list(config.get("block_out_channels", (64,)))
    for key, supported in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        types = list(config.get(key, [supported] * len(channels)))
        if types != [supported] * len(channels):
            problems.append(f"{key}={types} (supported: {supported} at each of the {len(channels)} levels)")
    if problems:
        raise ValueError(
            f"{folder / 'config.json'} describes an autoencoder that MONAI's AutoencoderKL does not reproduce:\n  "
            + "\n  ".join(problems)
        )
    layers = int(config.get("layers_per_block", 1))
    latent_channels = int(config.get("latent_channels", 4))
    autoencoder = StableDiffusionAutoencoderKL(
        in_channels=int(config.get("in_channels", 3)),
        out_channels=int(config.get("out_channels", 3)),
        channels=channels,
        latent_channels=latent_channels,
        num_res_blocks=layers,
        norm_num_groups=int(config.get("norm_num_groups", 32)),
        scaling_factor=float(config.get("scaling_factor", 0.18215)),
        use_flash_attention=use_flash_attention,
    )
    weights, source = read_diffusers_weights(folder, variant)
    load_converted_weights(autoencoder, autoencoder.convert_diffusers_keys(weights), source)
    return autoencoder


def load_sd_scheduler(sd_path: str | os.PathLike, kind: str = "ddpm", subfolder: str | None = "scheduler") -> Scheduler:
    """A MONAI scheduler with the noise schedule of a Stable Diffusion folder's ``scheduler/scheduler_config.json``.

    Read: ``num_train_timesteps``, ``beta_schedule`` (``linear`` or ``scaled_linear``), ``beta_start``, ``beta_end``,
    ``prediction_type`` (``epsilon``, ``v_prediction``, ``sample``), ``clip_sample`` and ``clip_sample_range``
    (absent: no clipping, as latents must not be clipped), and, where the scheduler has them, ``variance_type``,
    ``set_alpha_to_one``, ``steps_offset`` and ``skip_prk_steps`` (absent: the diffusers defaults of that scheduler).
    The config may be that of any diffusers scheduler class: Stable Diffusion folders ship a PNDM or DDIM config.
    At sampling, MONAI's schedulers space the inference timesteps their own way (``timestep_spacing`` is not read),
    so a DDIM or PNDM sample may visit slightly different timesteps than diffusers' would.

    Args:
        sd_path: the Stable Diffusion folder (or the scheduler folder itself with ``subfolder=None``).
        kind: ``"ddpm"`` (training), ``"ddim"`` or ``"pndm"`` (sampling).
        subfolder: the scheduler's folder inside `sd_path`.

    Returns:
        a `DDPMScheduler`, `DDIMScheduler` or `PNDMScheduler`.

    Raises:
        FileNotFoundError: when the folder has no ``scheduler_config.json``.
        ValueError: for an unknown `kind`, or settings MONAI's schedulers do not reproduce (trained betas, other beta
            schedules, thresholding, zero-SNR rescaling).
    """
    if kind not in _SCHEDULERS:
        raise ValueError(f"kind must be one of {_SCHEDULERS}, got {kind!r}.")
    folder = diffusers_folder(sd_path, subfolder, "scheduler_config.json")
    config = read_diffusers_config(folder, "scheduler_config.json")
    problems = _unsupported(
        config,
        {"trained_betas": (None,), "thresholding": (False,), "rescale_betas_zero_snr": (False,)},
    )
    beta_schedule = config.get("beta_schedule", "linear")
    if beta_schedule not in _BETA_SCHEDULES:
        problems.append(f"beta_schedule={beta_schedule!r} (supported: {' or '.join(_BETA_SCHEDULES)})")
    if problems:
        raise ValueError(
            f"{folder / 'scheduler_config.json'} has settings MONAI's schedulers do not reproduce:\n  "
            + "\n  ".join(problems)
        )
    common: dict[str, Any] = {
        "num_train_timesteps": int(config.get("num_train_timesteps", 1000)),
        "schedule": _BETA_SCHEDULES[beta_schedule],
        "beta_start": float(config.get("beta_start", 0.0001)),
        "beta_end": float(config.get("beta_end", 0.02)),
        "prediction_type": config.get("prediction_type", "epsilon"),
    }
    clip_sample = bool(config.get("clip_sample", False))
    clip = float(config.get("clip_sample_range", 1.0))
    steps_offset = int(config.get("steps_offset", 0))
    if kind == "ddpm":
        return DDPMScheduler(
            **common,
            variance_type=config.get("variance_type", "fixed_small"),
            clip_sample=clip_sample,
            clip_sample_min=-clip,
            clip_sample_max=clip,
        )
    if kind == "ddim":
        return DDIMScheduler(
            **common,
            clip_sample=clip_sample,
            clip_sample_min=-clip,
            clip_sample_max=clip,
            set_alpha_to_one=bool(config.get("set_alpha_to_one", True)),
            steps_offset=steps_offset,
        )
    return PNDMScheduler(
        **common,
        skip_prk_steps=bool(config.get("skip_prk_steps", False)),
        set_alpha_to_one=bool(config.get("set_alpha_to_one", False)),
        steps_offset=steps_offset,
    )
