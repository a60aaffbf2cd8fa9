"""Label and concept vocabularies shared by the readers, the demo data writer and the caption builder."""

from __future__ import annotations

__all__ = [
    "HAM10000_CLASSES",
    "HAM10000_CLASS_NAMES",
    "MALIGNANT_HAM10000_CLASSES",
    "SEVEN_POINT_CONCEPTS",
    "FITZPATRICK_TYPES",
]

HAM10000_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""HAM10000 diagnosis codes (the `dx` column), in the order used for integer labels."""

HAM10000_CLASS_NAMES: dict[str, str] = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
"""Readable diagnosis names, used in captions and reports."""

MALIGNANT_HAM10000_CLASSES: frozenset[str] = frozenset({"akiec", "bcc", "mel"})
"""Diagnoses counted as malignant for the binary benign/malignant task (as in Class-N-Diff)."""

SEVEN_POINT_CONCEPTS: dict[str, tuple[str, ...]] = {
    "pigment_network": ("absent", "typical", "atypical"),
    "streaks": ("absent", "regular", "irregular"),
    "pigmentation": ("absent", "diffuse regular", "diffuse irregular", "localized regular", "localized irregular"),
    "regression_structures": ("absent", "blue areas", "white areas", "combinations"),
    "dots_and_globules": ("absent", "regular", "irregular"),
    "blue_whitish_veil": ("absent", "present"),
    "vascular_structures": (
        "absent",
        "arborizing",
        "comma",
        "hairpin",
        "within regression",
        "wreath",
        "dotted",
        "linear irregular",
    ),
}
"""The derm7pt seven-point checklist: concept column -> allowed values (as written in derm7pt's `meta.csv`)."""

FITZPATRICK_TYPES: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
"""Fitzpatrick skin types I-VI as integers."""
