from __future__ import annotations

from .checkpoint import (
    AtomicCheckpointSaver,
    AtomicDiskSaver,
    RandomStates,
    ResumableEMAHandler,
    ResumeFromLatestCheckpoint,
    latest_checkpoint,
    remove_partial_checkpoints,
)
from .distributed import DistributedRandomStates, DistributedStartCheck, rank_and_world_size
from .fidelity_validation import ConditionFidelityValidator
from .generative_metrics import FeatureStatisticsMetric, FrechetDistance, ImprovedPrecisionRecall, KernelDistance
from .sample_grid import SampleGridSaver

__all__ = ["ConditionFidelityValidator", "RandomStates", "ResumeFromLatestCheckpoint", "SampleGridSaver"]
__all__ += ["latest_checkpoint"]
__all__ += ["AtomicCheckpointSaver", "AtomicDiskSaver", "ResumableEMAHandler", "remove_partial_checkpoints"]
__all__ += ["FeatureStatisticsMetric", "FrechetDistance", "ImprovedPrecisionRecall", "KernelDistance"]
__all__ += ["DistributedRandomStates", "DistributedStartCheck", "rank_and_world_size"]
