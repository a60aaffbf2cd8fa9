"""Generation plans: which conditions to sample, e.g. every diagnosis on every skin type, balanced."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["condition_grid_plan"]


def condition_grid_plan(
    classes: Sequence[str],
    fitzpatrick_types: Sequence[int] | None = None,
    caption_builder: Callable[[Mapping[str, Any]], str] | None = None,
    extra_fields: Mapping[str, Any] | None = None,
    selected_classes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One plan row per (skin type, diagnosis): the balanced grid a synthetic data set is drawn from.

    Rows go through the classes for each skin type in turn, so a grid with one column per class shows one skin type
    per row.

    Each row has ``label`` (the class index), ``label_name``, ``fitzpatrick`` (when skin types are given), any
    `extra_fields`, and ``caption`` built from the row by `caption_builder` (for a text-conditioned model).

    Args:
        classes: the class codes, in label order.
        fitzpatrick_types: skin types 1-6 to cross with the classes; None for classes only.
        caption_builder: builds a caption from a row (e.g. a `CaptionBuilder`); None for no captions.
        extra_fields: fields added to every row (a site, an age, ...).
        selected_classes: plan only these classes (labels stay their indices in `classes`); all when None.

    Raises:
        ValueError: for no classes, a selected class not in `classes`, or a skin type outside 1-6.
    """
    if not classes:
        raise ValueError("classes is empty: nothing to plan.")
    types: Sequence[int | None] = list(fitzpatrick_types) if fitzpatrick_types else [None]
    bad = [t for t in types if t is not None and t not in range(1, 7)]
    if bad:
        raise ValueError(f"Fitzpatrick types must be 1-6, got {bad}.")
    unknown = [c for c in selected_classes or () if c not in classes]
    if unknown:
        raise ValueError(f"selected classes {unknown} are not among the classes {list(classes)}.")
    rows = []
    for skin_type in types:
        for label, name in enumerate(classes):
            if selected_classes is not None and name not in selected_classes:
                continue
            row: dict[str, Any] = {"label": label, "label_name": name, **(extra_fields or {})}
            if skin_type is not None:
                row["fitzpatrick"] = skin_type
            if caption_builder is not None:
                row["caption"] = caption_builder(row)
            rows.append(row)
    return rows
