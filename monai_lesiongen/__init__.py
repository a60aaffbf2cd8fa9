"""monai_lesiongen: diffusion-based synthesis and evaluation of dermatology images, as MONAI components."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
