"""LoRA fine-tuning of a MONAI network with `peft`: add adapters, save and load only them, merge them for export."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "LoraWeights",
    "add_lora",
    "load_lora",
    "lora_state_dict",
    "merge_lora",
    "save_lora",
]

NetworkType = TypeVar("NetworkType", bound=nn.Module)

# the attention projections of MONAI's transformer blocks (SABlock, CrossAttentionBlock): query, key, value and output
DEFAULT_LORA_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "out_proj")
_ADAPTER = "default"


def _lora_config(network: nn.Module) -> Any:
    config = getattr(network, "peft_config", {}).get(_ADAPTER)
    if config is None:
        raise ValueError(
            f"{type(network).__name__} has no LoRA adapters: call add_lora(network, rank, alpha, ...) first, with the "
            "settings the adapters were trained with."
        )
    return config


def _listing(keys: Sequence[str], shown: int = 10) -> str:
    return "[" + ", ".join(keys[:shown]) + (f", ... and {len(keys) - shown} more" if len(keys) > shown else "") + "]"


def add_lora(
    network: NetworkType,
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_LORA_TARGETS,
    trainable_modules: Sequence[str] = (),
) -> NetworkType:
    """Add LoRA adapters (Hu et al. 2022) to the linear layers `target_modules` of `network`, in place, and freeze the
    rest, so that an optimizer over the parameters that require gradients trains the adapters only.

    Each adapted layer computes ``W x + (alpha / rank) B A x`` with ``B`` zero at first, so the network is unchanged
    until training. In a MONAI `DiffusionModelUNet` the defaults adapt the query, key, value and output projections of
    every self- and cross-attention (``attn1``, ``attn2``), as LoRA fine-tuning of Stable Diffusion does.

    Args:
        network: the (pretrained) network, e.g. from `load_sd_unet`.
        rank: the rank of the adapters.
        alpha: the scale numerator; the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapters' input.
        target_modules: names (or name suffixes) of the linear layers to adapt.
        trainable_modules: names of modules trained in full next to the adapters, and saved with them, e.g.
            ``("conv_in", "out.2")`` after `widen_io_channels` (peft's ``modules_to_save``).

    Returns:
        `network`, with the adapters.

    Raises:
        ValueError: for a rank below 1, a dropout outside [0, 1), a network that has adapters already, or target
            modules that match no layer (from peft).
    """
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if hasattr(network, "peft_config"):
        raise ValueError(f"{type(network).__name__} has LoRA adapters already; merge_lora them first.")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # annotated int in peft; any number scales alpha / rank
        lora_dropout=dropout,
        target_modules=list(target_modules),
        modules_to_save=list(trainable_modules) or None,
    )
    inject_adapter_in_model(config, network, adapter_name=_ADAPTER)  # in place: returns `network`
    return network


def lora_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of `network` (and those of its `trainable_modules`), detached, on the CPU.

    Raises:
        ValueError: when `network` has no adapters.
    """
    from peft import get_peft_model_state_dict

    _lora_config(network)
    state = get_peft_model_state_dict(network, adapter_name=_ADAPTER)
    return {key: value.detach().cpu().contiguous() for key, value in state.items()}


def _set_lora_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    from peft import set_peft_model_state_dict

    expected = lora_state_dict(network)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"the LoRA weights of {source} do not fit the adapters of the network (check rank, target_modules and "
            f"trainable_modules of add_lora): missing {_listing(missing)}, unexpected {_listing(unexpected)}, shape "
            f"mismatches {_listing(mismatched)}."
        )
    result = set_peft_model_state_dict(network, dict(state), adapter_name=_ADAPTER)
    not_loaded = sorted(getattr(result, "unexpected_keys", ()))
    if not_loaded:
        raise ValueError(f"the LoRA weights of {source} were not all loaded: {_listing(not_loaded)}.")


def save_lora(network: nn.Module, path: str | os.PathLike) -> Path:
    """Write the adapter weights of `network` (only them, and those of its trainable modules) as safetensors.

    The file's metadata records the rank, alpha and target modules, so that `load_lora` can say when the network's
    adapters differ.

    Args:
        network: a network with adapters (`add_lora`).
        path: the ``.safetensors`` file to write; its folder is created.

    Returns:
        the path written.

    Raises:
        ValueError: when `network` has no adapters.
    """
    from safetensors.torch import save_file

    config = _lora_config(network)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": "pt",
        "lora_rank": str(config.r),
        "lora_alpha": str(config.lora_alpha),
        "target_modules": json.dumps(sorted(config.target_modules)),
    }
    save_file(lora_state_dict(network), str(path), metadata=metadata)
    return path


def load_lora(network: NetworkType, path: str | os.PathLike) -> NetworkType:
    """Load adapter weights written by `save_lora` into a network that has the same adapters (`add_lora`).

    Args:
        network: the base network with adapters added, e.g. ``add_lora(load_sd_unet(sd_path), rank, alpha)``.
        path: the ``.safetensors`` file.

    Returns:
        `network`, with the adapter weights loaded.

    Raises:
        ValueError: when `network` has no adapters, when its rank or alpha differ from the file's, or when the keys or
            shapes differ (all listed).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = _lora_config(network)
    with safe_open(str(path), framework="pt") as stream:
        metadata = stream.metadata() or {}
    for key, value in (("lora_rank", config.r), ("lora_alpha", config.lora_alpha)):
        if key in metadata and float(metadata[key]) != float(value):
            raise ValueError(f"{path} was saved with {key}={metadata[key]}, the network's adapters have {value}.")
    device = next(network.parameters()).device
    _set_lora_state_dict(network, load_file(str(path), device=str(device)), str(path))
    return network


def merge_lora(network: NetworkType) -> NetworkType:
    """Merge the adapters into the weights they adapt and remove them, in place: a plain network again, for export.

    The trained copies of `trainable_modules` replace the originals. All parameters require gradients again, as in a
    freshly built network.

    Args:
        network: a network with adapters.

    Returns:
        `network` with the merged weights and none of peft's modules, of its original class.

    Raises:
        ValueError: when `network` has no adapters.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    _lora_config(network)
    wrappers = (BaseTunerLayer, AuxiliaryTrainingWrapper)
    replaced: list[str] = []
    for name, module in list(network.named_modules()):
        if not isinstance(module, wrappers) or any(name.startswith(f"{outer}.") for outer in replaced):
            continue
        if isinstance(module, AuxiliaryTrainingWrapper):
            plain = module.unload_and_optionally_merge_module(merge=True, safe_merge=True, adapter_names=None)
        else:
            module.merge(safe_merge=True)
            plain = module.get_base_layer()
        parent_name, _, child = name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, child, plain)
        replaced.append(name)
    del network.peft_config
    network.requires_grad_(True)
    return network


class LoraWeights:
    """The adapter weights of a network as a stateful object (``state_dict`` / ``load_state_dict``), so that
    checkpoint handlers such as `CheckpointSaver` save and restore only them rather than the whole pretrained network.

    Args:
        network: a network with adapters (`add_lora`), or its EMA copy.
    """

    def __init__(self, network: nn.Module) -> None:
        _lora_config(network)
        self.network = network

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter weights (see `lora_state_dict`)."""
        return lora_state_dict(self.network)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load adapter weights saved by `state_dict`.

        Raises:
            ValueError: when keys or shapes differ (all listed).
        """
        _set_lora_state_dict(self.network, state, "the checkpoint")
