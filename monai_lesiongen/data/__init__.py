from __future__ import annotations

from .captions import CaptionBuilder
from .condition_classes import ConditionClasses
from .datasets import DATASET_NAMES, load_records, load_split, require_masks, to_datalist
from .demo import ensure_demo_dataset, write_demo_dataset
from .gap_filling import GAP_FILLING_MODES, gap_filling_plan
from .generation_plan import PLAN_GAPS_KEYS, check_plan_rows, condition_grid_plan, select_plan
from .lesion_measurements import LesionMeasurements, measure_lesion
from .plan_file import read_plan_csv
from .readers import READERS, read_dataset
from .records import RECORD_KEYS, DatasetFormatError, LesionRecord, SkipReport
from .skin_tone import NUM_SKIN_TYPES, estimate_ita, ita_group_name, ita_to_fitzpatrick, skin_type_class
from .splits import check_no_group_leak, split_records
from .subsets import scarce_subset, thin_skin_types, training_subset
from .vocabulary import FITZPATRICK_TYPES, HAM10000_CLASS_NAMES, HAM10000_CLASSES, SEVEN_POINT_CONCEPTS

__all__ = [
    "CaptionBuilder",
    "ConditionClasses",
    "DATASET_NAMES",
    "DatasetFormatError",
    "FITZPATRICK_TYPES",
    "GAP_FILLING_MODES",
    "HAM10000_CLASSES",
    "HAM10000_CLASS_NAMES",
    "LesionMeasurements",
    "LesionRecord",
    "NUM_SKIN_TYPES",
    "PLAN_GAPS_KEYS",
    "READERS",
    "RECORD_KEYS",
    "SEVEN_POINT_CONCEPTS",
    "SkipReport",
    "check_no_group_leak",
    "check_plan_rows",
    "condition_grid_plan",
    "ensure_demo_dataset",
    "estimate_ita",
    "gap_filling_plan",
    "ita_group_name",
    "ita_to_fitzpatrick",
    "load_records",
    "load_split",
    "measure_lesion",
    "read_dataset",
    "read_plan_csv",
    "require_masks",
    "scarce_subset",
    "select_plan",
    "skin_type_class",
    "split_records",
    "thin_skin_types",
    "to_datalist",
    "training_subset",
    "write_demo_dataset",
]
