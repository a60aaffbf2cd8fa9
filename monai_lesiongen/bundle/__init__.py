"""What the bundles need beyond MONAI's own bundle tools: configuration checks that run before any training."""

from __future__ import annotations

from .config_checks import (
    MONAI_RUN_ARGUMENTS,
    ConfigError,
    check_command_line,
    check_overrides,
    check_text_condition,
    load_network_weights,
)

__all__ = [
    "ConfigError",
    "MONAI_RUN_ARGUMENTS",
    "check_command_line",
    "check_overrides",
    "check_text_condition",
    "load_network_weights",
]
