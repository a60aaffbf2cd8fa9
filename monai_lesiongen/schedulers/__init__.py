from __future__ import annotations

from .diffusers_solver import SOLVERS, DiffusersSolver
from .noise_process import NoiseProcess, RectifiedFlowProcess, VariancePreservingProcess, noise_process
from .noise_schedules import rescale_to_zero_terminal_snr, scaled_linear_zero_snr

__all__ = [
    "SOLVERS",
    "DiffusersSolver",
    "NoiseProcess",
    "RectifiedFlowProcess",
    "VariancePreservingProcess",
    "noise_process",
    "rescale_to_zero_terminal_snr",
    "scaled_linear_zero_snr",
]
