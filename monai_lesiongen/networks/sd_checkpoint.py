"""Reading diffusers component folders and loading their converted weights strictly, with errors that name keys."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointMismatchError",
    "diffusers_folder",
    "load_converted_weights",
    "read_diffusers_config",
    "read_diffusers_weights",
]


class CheckpointMismatchError(ValueError):
    """The weights of a checkpoint do not fit the network built from its config: the keys are listed.

    Args:
        source: the weight file(s).
        unexpected: checkpoint keys (as written in the checkpoint) with no place in the network.
        missing: network parameters (MONAI names) that the checkpoint does not provide.
        mismatched: ``"<checkpoint key> <shape> -> <network key> <shape>"`` for each shape mismatch.
    """

    def __init__(
        self, source: str, unexpected: Sequence[str], missing: Sequence[str], mismatched: Sequence[str]
    ) -> None:
        self.unexpected = list(unexpected)
        self.missing = list(missing)
        self.mismatched = list(mismatched)
        lines = [f"the weights in {source} do not fit the network built from its config.json:"]
        for what, keys in (
            ("unexpected keys (in the checkpoint, not in the network)", self.unexpected),
            ("missing keys (network parameters the checkpoint lacks, MONAI names)", self.missing),
            ("shape mismatches (checkpoint -> network)", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... and {len(keys) - 20} more" if len(keys) > 20 else "")
                lines.append(f"  {len(keys)} {what}: {shown}")
        lines.append(
            "Use the config.json saved with these weights, and a Stable Diffusion 1.x/2.x layout in diffusers format."
        )
        super().__init__("\n".join(lines))


def diffusers_folder(sd_path: str | os.PathLike, subfolder: str | None, config_name: str) -> Path:
    """The folder of one component (``unet``, ``vae``, ``scheduler``) of a diffusers folder.

    Args:
        sd_path: the Stable Diffusion folder.
        subfolder: the component's folder inside it; None or ``""`` for `sd_path` itself.
        config_name: the config file the component must have.

    Returns:
        the component's folder.

    Raises:
        FileNotFoundError: when it has no `config_name`.
    """
    folder = Path(sd_path) / subfolder if subfolder else Path(sd_path)
    if not (folder / config_name).is_file():
        raise FileNotFoundError(
            f"{folder} has no {config_name}: point sd_path at a local Stable Diffusion folder in diffusers format "
            "(with unet/, vae/, scheduler/ and text_encoder/); nothing is downloaded."
        )
    return folder


def read_diffusers_config(folder: Path, config_name: str = "config.json") -> dict[str, Any]:
    """The parsed ``config.json`` (or `config_name`) of a component folder."""
    with open(folder / config_name, encoding="utf-8") as stream:
        config: dict[str, Any] = json.load(stream)
    return config


def read_diffusers_weights(folder: Path, variant: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The weights of a component folder, on the CPU, with the file they came from (for error messages).

    Reads ``diffusion_pytorch_model[.variant].safetensors``, else its shards listed in ``...safetensors.index.json``,
    else ``diffusion_pytorch_model[.variant].bin`` (with ``weights_only=True``).

    Args:
        folder: the component folder.
        variant: a weight variant such as ``"fp16"``; None for the default weights.

    Returns:
        the state dict and the path it was read from.

    Raises:
        FileNotFoundError: when none of the files is there.
    """
    from safetensors.torch import load_file

    stem = "diffusion_pytorch_model" + (f".{variant}" if variant else "")
    single = folder / f"{stem}.safetensors"
    if single.is_file():
        return load_file(str(single)), str(single)
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_diffusers_config(folder, index.name)["weight_map"].values()))
        weights: dict[str, torch.Tensor] = {}
        for shard in shards:
            weights.update(load_file(str(folder / shard)))
        return weights, str(index)
    binary = folder / f"{stem}.bin"
    if binary.is_file():
        return torch.load(binary, map_location="cpu", weights_only=True), str(binary)
    raise FileNotFoundError(f"{folder} has none of {single.name}, {index.name}, {binary.name}.")


def _fit(value: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """`value` in `shape`, reshaping only between a linear layer and a 1x1 convolution; None if it does not fit."""
    if value.shape == shape:
        return value
    if value.ndim == 2 and tuple(shape) == (*value.shape, 1, 1):
        return value[:, :, None, None]
    if value.ndim == 4 and value.shape[2:] == (1, 1) and tuple(shape) == tuple(value.shape[:2]):
        return value[:, :, 0, 0]
    return None


def load_converted_weights(network: nn.Module, converted: Iterable[tuple[str, str, torch.Tensor]], source: str) -> None:
    """Load converted weights into `network`: every parameter must be given once, with its shape.

    A linear layer's weight (O, I) loads into a 1x1 convolution (O, I, 1, 1) and back: the two are the same map of
    each pixel, and diffusers uses either depending on the checkpoint.

    Args:
        network: the MONAI network.
        converted: ``(MONAI key, checkpoint key, tensor)`` for every tensor of the checkpoint; a key with no place
            in the network keeps its checkpoint name as MONAI key.
        source: the weight file(s), for the message.

    Raises:
        CheckpointMismatchError: naming the unexpected, missing and misshapen keys, all of them.
    """
    expected = network.state_dict()
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected, mismatched = [], []
    for key, original, value in converted:
        if key not in expected:
            unexpected.append(original)
        elif key in origin:
            unexpected.append(f"{original} (maps to {key}, as {origin[key]} does)")
        else:
            fitted = _fit(value, expected[key].shape)
            origin[key] = original
            if fitted is None:
                mismatched.append(f"{original} {tuple(value.shape)} -> {key} {tuple(expected[key].shape)}")
            else:
                state[key] = fitted
    missing = [key for key in expected if key not in origin]
    if unexpected or missing or mismatched:
        raise CheckpointMismatchError(source, sorted(unexpected), missing, mismatched)
    network.load_state_dict(state, strict=True)
