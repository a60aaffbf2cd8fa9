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

    Raises:
        ValueError: for no classes, or a skin type outside 1-6.
    """
    if not classes:
        raise ValueError("classes is empty: nothing to plan.")
    types: Sequence[int | None] = list(fitzpatrick_types) if fitzpatrick_types else [None]
    bad = [t for t in types if t is not None and t not in range(1, 7)]
    if bad:
        raise ValueError(f"Fitzpatrick types must be 1-6, got {bad}.")
    rows = []
    for skin_type in types:
        for label, name in enumerate(classes):
            row: dict[str, Any] = {"label": label, "label_name": name, **(extra_fields or {})}
            if skin_type is not None:
                row["fitzpatrick"] = skin_type
            if caption_builder is not None:
                row["caption"] = caption_builder(row)
            rows.append(row)
    return rows
