from __future__ import annotations

from .conditioned import ConditionedDiffusionInferer, SamplingGuidance
from .generation import ConditionedSampler, SyntheticDatasetWriter

__all__ = ["ConditionedDiffusionInferer", "ConditionedSampler", "SamplingGuidance", "SyntheticDatasetWriter"]
