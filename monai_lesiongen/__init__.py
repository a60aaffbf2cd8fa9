"""monai_lesiongen: diffusion-based synthesis and evaluation of dermatology images, as MONAI components."""

from __future__ import annotations

# registers the noise schedules MONAI lacks in its NoiseSchedules store, so that bundle configs name them
from monai_lesiongen import schedulers  # noqa: F401, E402

__version__ = "0.1.0"

__all__ = ["__version__"]
