"""Offline evaluation of synthetic data: downstream classifiers and segmenters trained on real, synthetic and
real + synthetic data and tested on real data, the evaluation runner of every bundle, and its report."""

from __future__ import annotations

from .classifier_report import ClassifierEvaluation, classification_report, write_classification_report
from .downstream import compare_training_sets, real_data_judge, train_classifier
from .downstream_segmentation import compare_segmentation, train_segmenter
from .report import SampleSet, write_report
from .synthetic_data import SyntheticDataEvaluation

__all__ = [
    "ClassifierEvaluation",
    "SampleSet",
    "SyntheticDataEvaluation",
    "classification_report",
    "compare_segmentation",
    "compare_training_sets",
    "real_data_judge",
    "train_classifier",
    "train_segmenter",
    "write_classification_report",
    "write_report",
]
