from __future__ import annotations

from .noise_schedules import rescale_to_zero_terminal_snr, scaled_linear_zero_snr

__all__ = ["rescale_to_zero_terminal_snr", "scaled_linear_zero_snr"]
