from __future__ import annotations

from .checkpoint_saver import AtomicCheckpointSaver, AtomicDiskSaver, latest_checkpoint, remove_partial_checkpoints
from .distributed import DistributedRandomStates, DistributedStartCheck, rank_and_world_size
from .ema import ResumableEMAHandler
from .fidelity_validation import ConditionFidelityValidator
from .generative_metrics import FeatureStatisticsMetric, FrechetDistance, ImprovedPrecisionRecall, KernelDistance
from .random_states import RandomStates
from .resume import ResumeFromLatestCheckpoint
from .sample_grid import SampleGridSaver

__all__ = ["ConditionFidelityValidator", "RandomStates", "ResumeFromLatestCheckpoint", "SampleGridSaver"]
__all__ += ["latest_checkpoint"]
__all__ += ["AtomicCheckpointSaver", "AtomicDiskSaver", "ResumableEMAHandler", "remove_partial_checkpoints"]
__all__ += ["FeatureStatisticsMetric", "FrechetDistance", "ImprovedPrecisionRecall", "KernelDistance"]
__all__ += ["DistributedRandomStates", "DistributedStartCheck", "rank_and_world_size"]
