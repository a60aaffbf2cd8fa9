from __future__ import annotations

from .conditioned import ConditionedDiffusionInferer, SamplingGuidance
from .generation import ConditionedSampler, SyntheticDatasetWriter
from .guidance import ClassifierGuidance, ClassifierGuidedSampler
from .paired_writer import PairedDatasetWriter

__all__ = [
    "ClassifierGuidance",
    "ClassifierGuidedSampler",
    "ConditionedDiffusionInferer",
    "ConditionedSampler",
    "PairedDatasetWriter",
    "SamplingGuidance",
    "SyntheticDatasetWriter",
]
