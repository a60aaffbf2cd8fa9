"""Widening a pretrained UNet's input and output for extra channels (a paired mask) without changing what it does."""

from __future__ import annotations

from typing import TypeVar, cast

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from .denoiser import ConditionedDiffusionUNet

__all__ = ["widen_io_channels"]

UNetType = TypeVar("UNetType", bound=DiffusionModelUNet)


def _widened(conv: nn.Conv2d, extra_in: int, extra_out: int) -> nn.Conv2d:
    """A copy of `conv` with `extra_in` more input and `extra_out` more output channels, all their weights zero."""
    wide = nn.Conv2d(
        conv.in_channels + extra_in,
        conv.out_channels + extra_out,
        kernel_size=cast(tuple[int, int], conv.kernel_size),
        stride=cast(tuple[int, int], conv.stride),
        padding=cast(tuple[int, int], conv.padding),
        dilation=cast(tuple[int, int], conv.dilation),
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[: conv.out_channels, : conv.in_channels] = conv.weight
        if wide.bias is not None and conv.bias is not None:
            wide.bias.zero_()
            wide.bias[: conv.out_channels] = conv.bias
    wide.requires_grad_(conv.weight.requires_grad)
    return wide


def widen_io_channels(unet: UNetType, extra_in: int, extra_out: int) -> UNetType:
    """Give a (pretrained) MONAI UNet `extra_in` more input and `extra_out` more output channels, in place.

    For SkinDualGen-style paired generation from Stable Diffusion: the mask channels are appended after the image
    (latent) channels. The new input weights are zero, so the mask cannot change anything yet, and the new output
    channels are zero, so the image channels of the output are exactly those of the original network, for any mask,
    until fine-tuning (which must train ``conv_in`` and ``out.2``: see `add_lora`'s ``trainable_modules``) teaches
    both. Widen before `add_lora`.

    Args:
        unet: a `DiffusionModelUNet` or `ConditionedDiffusionUNet` (2D).
        extra_in: input channels to add.
        extra_out: output channels to add.

    Returns:
        `unet`, widened; a `ConditionedDiffusionUNet` gets ``mask_channels`` increased by the added channels.

    Raises:
        ValueError: for negative counts, or different counts for a `ConditionedDiffusionUNet` (whose mask channels are
            denoised with the image, so they are both input and output).
    """
    if extra_in < 0 or extra_out < 0:
        raise ValueError(f"extra_in and extra_out must be >= 0, got {extra_in} and {extra_out}.")
    if isinstance(unet, ConditionedDiffusionUNet) and extra_in != extra_out:
        raise ValueError(
            f"a ConditionedDiffusionUNet denoises its mask channels, so extra_in ({extra_in}) must equal extra_out "
            f"({extra_out}); use a plain DiffusionModelUNet for different counts."
        )
    conv_in, conv_out = unet.get_submodule("conv_in.conv"), unet.get_submodule("out.2.conv")
    if not isinstance(conv_in, nn.Conv2d) or not isinstance(conv_out, nn.Conv2d):
        raise ValueError("widen_io_channels needs a 2D DiffusionModelUNet (conv_in.conv and out.2.conv as Conv2d).")
    unet.get_submodule("conv_in").conv = _widened(conv_in, extra_in, 0)
    unet.get_submodule("out.2").conv = _widened(conv_out, 0, extra_out)
    unet.in_channels += extra_in
    unet.out_channels += extra_out
    if isinstance(unet, ConditionedDiffusionUNet):
        unet.mask_channels += extra_in
    return unet
