"""``benchmarks/denoising_diagnostics.py``: the high-frequency energy that tells noisy samples from clean ones."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def diagnostics(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("denoising_diagnostics")


def test_high_frequency_energy_sees_pixel_noise_not_smooth_content(diagnostics: ModuleType) -> None:
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 32, 1).expand(4, 3, 32, 32)  # smooth content
    noise = torch.randn(4, 3, 32, 32, generator=generator)
    assert diagnostics.high_frequency(torch.zeros(4, 3, 32, 32)) == 0.0
    assert diagnostics.high_frequency(ramp) < 0.02  # only the border of the blur
    # white noise of std s: (1 - 1/9) of its variance is above the 3x3 box blur's band
    assert diagnostics.high_frequency(0.1 * noise) == pytest.approx(0.1 * (8 / 9) ** 0.5, rel=0.05)
    assert diagnostics.high_frequency(ramp + 0.1 * noise) == pytest.approx(0.1 * (8 / 9) ** 0.5, rel=0.1)
