"""Checks that make a bad bundle configuration fail before any data is read or any step is trained.

MONAI's `ConfigParser` accepts any override: ``--num_epoch 5`` (a typo of ``num_epochs``) adds a new key that nothing
reads, and ``--num_epochs five`` fails deep inside Ignite after the data set has been cached. These checks compare
the overrides with the configuration files they override, and the text encoder with the denoiser it conditions, and
raise one `ConfigError` that names every bad key and its fix.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.utils import optional_import
from torch import nn

fire_parser, has_fire = optional_import("fire.parser")

__all__ = [
    "ConfigError",
    "MONAI_RUN_ARGUMENTS",
    "check_command_line",
    "check_overrides",
    "check_text_condition",
    "load_network_weights",
]

MONAI_RUN_ARGUMENTS: frozenset[str] = frozenset(
    {
        "run_id",
        "init_id",
        "final_id",
        "meta_file",
        "config_file",
        "logging_file",
        "tracking",
        "args_file",
        "workflow_name",
        "workflow_type",
        "properties_path",
    }
)
"""Arguments of ``python -m monai.bundle run`` itself: not overrides of the configuration."""

_ID_SEPARATOR = "#"
_EXPRESSION_PREFIXES = ("$", "@", "%")


class ConfigError(ValueError):
    """A bundle configuration that cannot run as given; the message names each key and its fix."""


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_EXPRESSION_PREFIXES)


def _child(node: Any, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of `key` inside a config dict or list."""
    if isinstance(node, Mapping):
        return (key in node, node.get(key))
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return (True, node[int(key)])
    return (False, None)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _fits_default(value: Any, default: Any) -> bool:
    """Whether `value` has the type of the literal `default` (an int fits a float default, a tuple a list)."""
    if default is None or _is_expression(default) or _is_expression(value):
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    if isinstance(default, Mapping):
        return isinstance(value, Mapping)
    return True


def _override_problem(config: Mapping[str, Any], key: str, value: Any) -> str | None:
    """What is wrong with overriding `key` of `config` by `value`, or None."""
    parts = key.split(_ID_SEPARATOR)
    node: Any = config
    for depth, part in enumerate(parts):
        found, child = _child(node, part)
        if found:
            node = child
            continue
        if depth == len(parts) - 1 and depth > 0 and isinstance(node, Mapping):
            return None  # a new argument of an existing component or mapping, e.g. network_def#norm_num_groups
        siblings = [str(k) for k in node] if isinstance(node, Mapping) else []
        close = difflib.get_close_matches(part, siblings, n=3, cutoff=0.6)
        parent = _ID_SEPARATOR.join(parts[:depth])
        where = f"under '{parent}'" if parent else "at the top level"
        hint = (
            f" Did you mean {' or '.join(repr(_ID_SEPARATOR.join([*parts[:depth], c])) for c in close)}?"
            if close
            else ""
        )
        return f"unknown key '{key}': the configuration has no '{part}' {where}.{hint}"
    if not _fits_default(value, node):
        return (
            f"'{key}' must be {_type_name(node)} like its default {node!r}, got {value!r} ({_type_name(value)}); "
            f"pass e.g. --{key} {node!r}."
        )
    return None


def check_overrides(
    config: Mapping[str, Any], overrides: Mapping[str, Any], config_files: Sequence[str | Path] = ()
) -> None:
    """Raise a `ConfigError` when an override names a key the configuration does not have, or changes its type.

    A key is an id of MONAI's config syntax (``num_epochs``, ``network_def#channels``). It must exist in `config`,
    except for a new last part under an existing mapping (a further argument of a component, such as
    ``network_def#norm_num_groups``). A value must have the type of the key's default where that default is a
    literal (an integer, a number, a boolean, a string, a list, a mapping); expressions (``$...``, ``@...``,
    ``%...``) on either side are not checked, and a null default takes anything.

    Args:
        config: the merged configuration files, as read (not parsed).
        overrides: id -> value, as given on the command line or to `ConfigWorkflow`.
        config_files: the files `config` was read from, for the message.

    Raises:
        ConfigError: listing every bad override.
    """
    problems = [p for key, value in overrides.items() if (p := _override_problem(config, str(key), value)) is not None]
    if problems:
        files = f" of {[str(f) for f in config_files]}" if config_files else ""
        raise ConfigError(f"bad overrides of the configuration{files}:\n  " + "\n  ".join(problems))


def _parse_command_line(arguments: Sequence[str]) -> dict[str, Any]:
    """``--key value``, ``--key=value`` and bare ``--flag`` (True) pairs, values parsed the way `fire` parses them."""
    parse = fire_parser.DefaultParseValue if has_fire else (lambda text: text)
    pairs: dict[str, Any] = {}
    index = 0
    while index < len(arguments):
        token = arguments[index]
        index += 1
        if not token.startswith("--"):
            continue
        key, separator, text = token[2:].partition("=")
        if not separator:
            if index < len(arguments) and not arguments[index].startswith("--"):
                text = arguments[index]
                index += 1
            else:
                pairs[key] = True
                continue
        pairs[key] = parse(text)
    return pairs


def check_command_line(argv: Sequence[str] | None = None) -> None:
    """Check the overrides of a ``python -m monai.bundle run ...`` command line against its configuration files.

    Does nothing when the process was not started that way (a `ConfigWorkflow` built in Python, a notebook): there
    the overrides are the caller's own code, and `check_overrides` can be called directly. Overrides in an
    ``--args_file`` are checked too; the command line wins over the file, as in MONAI.

    Args:
        argv: the command line; `sys.argv` when None.

    Raises:
        ConfigError: listing every unknown key and every value of the wrong type.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py"):
        return
    pairs = _parse_command_line(argv[1:])
    if "args_file" in pairs:
        pairs = {**dict(ConfigParser.load_config_file(str(pairs["args_file"]))), **pairs}
    config_files = pairs.get("config_file")
    if not config_files:
        return
    files = [config_files] if isinstance(config_files, str | Path) else list(config_files)
    config = ConfigParser.load_config_files(files)
    overrides = {k: v for k, v in pairs.items() if k not in MONAI_RUN_ARGUMENTS}
    check_overrides(config, overrides, files)


def _cross_attention_width(network: nn.Module) -> int | None:
    """The context width the cross-attention layers of a MONAI diffusion UNet take (their key projection's input)."""
    for name, module in network.named_modules():
        if name.endswith("attn2.to_k") and hasattr(module, "in_features"):
            return int(module.in_features)
    return None


def check_text_condition(network: nn.Module, text_encoder: Any) -> None:
    """Raise a `ConfigError` when the denoiser's cross-attention width differs from the text encoder's.

    The width is read from the network's cross-attention layers (MONAI's ``attn2.to_k``), so it also holds for a
    denoiser imported from Stable Diffusion or wrapped (LoRA, DistributedDataParallel).

    Args:
        network: a MONAI diffusion UNet, possibly wrapped.
        text_encoder: an encoder with ``hidden_size`` (`FrozenTextEncoder`), or None for no text condition.

    Raises:
        ConfigError: for a width mismatch, or a text encoder given to a denoiser without cross-attention.
    """
    if text_encoder is None:
        return
    encoder_width = int(text_encoder.hidden_size)
    width = _cross_attention_width(network)
    if width is None:
        raise ConfigError(
            f"the text encoder gives {encoder_width}-d states but the network has no cross-attention: set "
            "'network_def#cross_attention_dim' to '$@text_encoder.hidden_size'."
        )
    if width != encoder_width:
        raise ConfigError(
            f"the network's cross-attention takes {width}-d context ('network_def#cross_attention_dim') but the text "
            f"encoder ('text_encoder_path') gives {encoder_width}-d states: set 'network_def#cross_attention_dim' to "
            f"'$@text_encoder.hidden_size' (the default), or 'text_encoder_path' to an encoder of width {width}."
        )


def load_network_weights(
    network: nn.Module, path: str | Path, map_location: Any = None, key: str = "ckpt_path"
) -> None:
    """Load a weights file into `network`, with an error that says which setting to change when it does not fit.

    Args:
        network: the network built from the configuration.
        path: a file written by `torch.save(state_dict)` (``model.pt``, ``model_ema.pt``).
        map_location: passed to `torch.load`.
        key: the configuration key that holds `path`, for the message.

    Raises:
        ConfigError: when the file is missing, or its tensors' names or shapes differ from the network's.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"'{key}': weights file {path} does not exist; run the bundle's training first, or set '{key}' to a "
            "trained model."
        )
    state = torch.load(path, map_location=map_location, weights_only=True)
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        details = [
            *(f"{k}: file {tuple(state[k].shape)}, network {tuple(own[k].shape)}" for k in mismatched[:3]),
            *(f"{k}: not in the file" for k in missing[:3]),
            *(f"{k}: not in the network" for k in unexpected[:3]),
        ]
        raise ConfigError(
            f"'{key}': {path} does not fit the network built from this configuration ({len(mismatched)} shapes differ, "
            f"{len(missing)} tensors missing, {len(unexpected)} unexpected), e.g.\n  " + "\n  ".join(details) + "\n"
            "Use the settings the model was trained with (image_dim, network_def, text_encoder_path, classes)."
        )
    network.load_state_dict(state)
