"""MONAI's `AutoencoderKL` in the layout of the Stable Diffusion VAE, so that its weights load one to one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from monai.networks.blocks import Convolution, SpatialAttentionBlock, Upsample
from monai.networks.nets import AutoencoderKL
from monai.networks.nets.autoencoderkl import AEKLDownsample, AEKLResBlock, Decoder, Encoder
from torch import nn

__all__ = ["StableDiffusionAutoencoderKL"]


def _vae_plan(levels: int, layers: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The diffusers modules of the VAE encoder and decoder with their kind, in the order of MONAI's blocks."""
    mid = [("mid_block.resnets.0", "res"), ("mid_block.attentions.0", "attn"), ("mid_block.resnets.1", "res")]
    encoder = [("conv_in", "conv")]
    decoder = [("conv_in", "conv"), *mid]
    for i in range(levels):
        encoder += [(f"down_blocks.{i}.resnets.{j}", "res") for j in range(layers)]
        decoder += [(f"up_blocks.{i}.resnets.{j}", "res") for j in range(layers + 1)]
        if i < levels - 1:
            encoder.append((f"down_blocks.{i}.downsamplers.0", "down"))
            decoder.append((f"up_blocks.{i}.upsamplers.0", "up"))
    encoder += [*mid, ("conv_norm_out", "norm"), ("conv_out", "conv")]
    decoder += [("conv_norm_out", "norm"), ("conv_out", "conv")]
    return encoder, decoder


_VAE_KINDS: dict[str, type[nn.Module]] = {
    "conv": Convolution,
    "res": AEKLResBlock,
    "attn": SpatialAttentionBlock,
    "down": AEKLDownsample,
    "up": Upsample,
    "norm": nn.GroupNorm,
}
# inside a module of each kind: diffusers submodule -> MONAI submodule (older diffusers names for the attention too)
_VAE_INNER: dict[str, dict[str, str]] = {
    "conv": {"": "conv"},
    "norm": {"": ""},
    "down": {"conv": "conv.conv"},
    "up": {"conv": "postconv.conv"},
    "res": {
        "norm1": "norm1",
        "conv1": "conv1.conv",
        "norm2": "norm2",
        "conv2": "conv2.conv",
        "conv_shortcut": "nin_shortcut.conv",
    },
    "attn": {
        "group_norm": "norm",
        "to_q": "attn.to_q",
        "to_k": "attn.to_k",
        "to_v": "attn.to_v",
        "to_out.0": "attn.out_proj",
        "query": "attn.to_q",
        "key": "attn.to_k",
        "value": "attn.to_v",
        "proj_attn": "attn.out_proj",
    },
}


def _activate_before_output(blocks: nn.ModuleList) -> None:
    """Put a SiLU between the final group norm and the output convolution of a MONAI encoder or decoder."""
    blocks.insert(len(blocks) - 1, nn.SiLU())


class StableDiffusionAutoencoderKL(AutoencoderKL):
    """A MONAI `AutoencoderKL` with the four details by which the Stable Diffusion VAE (diffusers ``AutoencoderKL``,
    the KL-f8 autoencoder of Rombach et al. 2022) differs from MONAI's default layout:

    - the encoder ends with ``2 * latent_channels`` channels, and one 1x1 convolution over all of them gives the mean
      and the log-variance (diffusers ``quant_conv``); here its two halves are ``quant_conv_mu`` and
      ``quant_conv_log_sigma``, each reading all ``2 * latent_channels`` channels;
    - the encoder and the decoder apply a SiLU between their final group norm and output convolution;
    - each decoder level has ``num_res_blocks + 1`` residual blocks (the encoder has ``num_res_blocks``);
    - no attention inside the levels; both mid blocks have one single-head self-attention.

    Everything else (`encode`, `decode`, `sampling`, the class used by MONAI's latent inferers) is MONAI's, and the
    parameter names follow MONAI's flat ``encoder.blocks`` / ``decoder.blocks`` lists.

    Args:
        in_channels: image channels.
        out_channels: reconstructed image channels.
        channels: output channels of each level (diffusers ``block_out_channels``).
        latent_channels: latent channels.
        num_res_blocks: residual blocks per encoder level (diffusers ``layers_per_block``).
        norm_num_groups: groups of the group norms.
        norm_eps: epsilon of the group norms.
        scaling_factor: the factor the latents are multiplied by for diffusion (0.18215 for Stable Diffusion 1.x and
            2.x); stored for configs, not used by the network.
        use_flash_attention: use PyTorch's SDPA in the mid-block attention.

    Raises:
        ValueError: for channels the group norm cannot divide (from `AutoencoderKL`), or a non-positive
            `scaling_factor` or `num_res_blocks`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        channels: Sequence[int] = (128, 256, 512, 512),
        latent_channels: int = 4,
        num_res_blocks: int = 2,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-6,
        scaling_factor: float = 0.18215,
        use_flash_attention: bool = True,
    ) -> None:
        if num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}.")
        if scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be positive, got {scaling_factor}.")
        levels = len(channels)
        no_attention = (False,) * levels
        super().__init__(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_channels,
            num_res_blocks=num_res_blocks,
            channels=channels,
            attention_levels=no_attention,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            with_encoder_nonlocal_attn=True,
            with_decoder_nonlocal_attn=True,
            use_flash_attention=use_flash_attention,
        )
        encoder = Encoder(
            spatial_dims=2,
            in_channels=in_channels,
            channels=channels,
            out_channels=2 * latent_channels,
            num_res_blocks=(num_res_blocks,) * levels,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            attention_levels=no_attention,
            with_nonlocal_attn=True,
            use_flash_attention=use_flash_attention,
        )
        decoder = Decoder(
            spatial_dims=2,
            channels=channels,
            in_channels=latent_channels,
            out_channels=out_channels,
            num_res_blocks=(num_res_blocks + 1,) * levels,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            attention_levels=no_attention,
            with_nonlocal_attn=True,
            use_flash_attention=use_flash_attention,
        )
        _activate_before_output(encoder.blocks)
        _activate_before_output(decoder.blocks)
        self.encoder = encoder
        self.decoder = decoder
        self.quant_conv_mu = Convolution(
            spatial_dims=2, in_channels=2 * latent_channels, out_channels=latent_channels, kernel_size=1, conv_only=True
        )
        self.quant_conv_log_sigma = Convolution(
            spatial_dims=2, in_channels=2 * latent_channels, out_channels=latent_channels, kernel_size=1, conv_only=True
        )
        self.scaling_factor = scaling_factor
        self.levels = len(channels)
        self.res_blocks_per_level = num_res_blocks

    def _diffusers_prefixes(self) -> dict[str, tuple[str, str]]:
        """diffusers module prefix -> (MONAI module prefix, kind), for every module of the encoder and decoder."""
        prefixes = {}
        for part, plan in zip(("encoder", "decoder"), _vae_plan(self.levels, self.res_blocks_per_level), strict=True):
            blocks = self.get_submodule(f"{part}.blocks")
            if not isinstance(blocks, nn.ModuleList):
                raise RuntimeError(f"the {part} of {type(self).__name__} has no list of blocks.")
            indices = [i for i, block in enumerate(blocks) if not isinstance(block, nn.SiLU)]
            if len(indices) != len(plan) or not all(
                isinstance(blocks[i], _VAE_KINDS[kind]) for i, (_, kind) in zip(indices, plan, strict=True)
            ):
                raise RuntimeError(f"the {part} blocks of {type(self).__name__} do not follow the diffusers layout.")
            for index, (name, kind) in zip(indices, plan, strict=True):
                prefixes[f"{part}.{name}"] = (f"{part}.blocks.{index}", kind)
        return prefixes

    def convert_diffusers_keys(self, weights: Mapping[str, torch.Tensor]) -> Iterator[tuple[str, str, torch.Tensor]]:
        """The weights of a diffusers ``AutoencoderKL`` with the names of this network.

        Args:
            weights: the diffusers state dict (current names, or the older ``query``/``key``/``value``/``proj_attn``
                names of the attention).

        Yields:
            ``(MONAI key, diffusers key, tensor)`` for every tensor; a key with no MONAI counterpart is yielded under
            its own name (so that loading reports it as unexpected). The diffusers ``quant_conv`` yields two tensors,
            its mean and log-variance halves.
        """
        prefixes = self._diffusers_prefixes()
        for key, value in weights.items():
            module, _, param = key.rpartition(".")
            if module == "quant_conv" and value.shape[0] == 2 * self.latent_channels:
                yield f"quant_conv_mu.conv.{param}", key, value[: self.latent_channels]
                yield f"quant_conv_log_sigma.conv.{param}", key, value[self.latent_channels :]
                continue
            if module == "quant_conv":  # not two halves: reported whole, against the mean's shape
                yield f"quant_conv_mu.conv.{param}", key, value
                continue
            if module == "post_quant_conv":
                yield f"post_quant_conv.conv.{param}", key, value
                continue
            parts = module.split(".")
            for cut in range(len(parts), 0, -1):
                prefix = ".".join(parts[:cut])
                inner = _VAE_INNER[prefixes[prefix][1]].get(".".join(parts[cut:])) if prefix in prefixes else None
                if inner is not None:
                    yield ".".join(p for p in (prefixes[prefix][0], inner, param) if p), key, value
                    break
            else:
                yield key, key, value
