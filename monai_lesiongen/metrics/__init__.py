"""Metrics of generated images (FID, KID, precision/recall, diversity) and of downstream models (fairness)."""

from __future__ import annotations

from .fairness import (
    ConfidenceInterval,
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    dice_score,
    group_accuracy,
    jaccard_index,
    mean_ci_over_seeds,
    per_class_recall,
    threshold_jaccard,
    worst_group_accuracy,
)
from .feature_extractors import (
    FID_INCEPTION_INPUT_RANGE,
    ClassifierFeatureExtractor,
    InceptionV3FeatureExtractor,
    default_inception_weights_path,
    extract_features,
)
from .generative import (
    MS_SSIM_SMALL_IMAGE_WEIGHTS,
    DiversityResult,
    KIDResult,
    PrecisionRecall,
    SubgroupFrechetDistance,
    frechet_distance,
    kernel_inception_distance,
    ms_ssim_diversity,
    precision_recall,
    subgroup_frechet_distances,
)

__all__ = [
    "FID_INCEPTION_INPUT_RANGE",
    "MS_SSIM_SMALL_IMAGE_WEIGHTS",
    "ClassifierFeatureExtractor",
    "ConfidenceInterval",
    "DiversityResult",
    "InceptionV3FeatureExtractor",
    "KIDResult",
    "PrecisionRecall",
    "SubgroupFrechetDistance",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_ci",
    "default_inception_weights_path",
    "dice_score",
    "extract_features",
    "frechet_distance",
    "group_accuracy",
    "jaccard_index",
    "kernel_inception_distance",
    "mean_ci_over_seeds",
    "ms_ssim_diversity",
    "per_class_recall",
    "precision_recall",
    "subgroup_frechet_distances",
    "threshold_jaccard",
    "worst_group_accuracy",
]
