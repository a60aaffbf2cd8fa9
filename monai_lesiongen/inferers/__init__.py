from __future__ import annotations

from .conditioned import ConditionedDiffusionInferer, SamplingGuidance
from .generation import ConditionedSampler, SyntheticDatasetWriter
from .paired_writer import PairedDatasetWriter

__all__ = [
    "ConditionedDiffusionInferer",
    "ConditionedSampler",
    "PairedDatasetWriter",
    "SamplingGuidance",
    "SyntheticDatasetWriter",
]
