from __future__ import annotations

from .checkpoint import RandomStates, ResumeFromLatestCheckpoint, latest_checkpoint
from .generative_metrics import FeatureStatisticsMetric, FrechetDistance, ImprovedPrecisionRecall, KernelDistance
from .sample_grid import SampleGridSaver

__all__ = ["RandomStates", "ResumeFromLatestCheckpoint", "SampleGridSaver", "latest_checkpoint"]
__all__ += ["FeatureStatisticsMetric", "FrechetDistance", "ImprovedPrecisionRecall", "KernelDistance"]
