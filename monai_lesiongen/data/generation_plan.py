"""Generation plans: which conditions to sample, e.g. every diagnosis on every skin type, balanced."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["check_plan_rows", "condition_grid_plan"]


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


def check_plan_rows(
    rows: Sequence[Mapping[str, Any]], classes: Sequence[str], source: str = "plan_rows"
) -> list[dict[str, Any]]:
    """Return `rows` (a hand-written generation plan) as dicts after checking the conditions they ask for.

    Every row needs a non-empty ``caption`` or a ``label_name``; a ``label_name`` must be one of `classes`, a
    ``label`` the index of its ``label_name`` (or of a class), a ``fitzpatrick`` type 1-6. Rows with a ``label_name``
    and no ``label`` get the label, so the manifest records it.

    Args:
        rows: the plan rows.
        classes: the class codes the model was trained on, in label order.
        source: the configuration key the rows came from, for the message.

    Raises:
        ValueError: naming the row, the field, and the valid values.
    """
    if not rows:
        raise ValueError(
            f"'{source}' is empty: give at least one row, e.g. [{{'caption': '...', 'label_name': 'mel'}}]."
        )
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"'{source}' row {index} must be a mapping of fields, got {row!r}.")
        item = dict(row)
        name = item.get("label_name")
        if name is not None and name not in classes:
            raise ValueError(f"'{source}' row {index}: unknown diagnosis {name!r}; valid ones: {list(classes)}.")
        label = item.get("label")
        if label is not None:
            expected = classes.index(name) if name is not None else None
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(classes):
                raise ValueError(
                    f"'{source}' row {index}: label {label!r} is not a class index 0-{len(classes) - 1} "
                    f"of {list(classes)}."
                )
            if expected is not None and label != expected:
                raise ValueError(
                    f"'{source}' row {index}: label {label} is {classes[label]!r} but label_name is {name!r} "
                    f"(label {expected}); give one of them or make them agree."
                )
        elif name is not None:
            item["label"] = classes.index(name)
        skin_type = item.get("fitzpatrick")
        if skin_type is not None and (isinstance(skin_type, bool) or skin_type not in range(1, 7)):
            raise ValueError(
                f"'{source}' row {index}: unknown Fitzpatrick skin type {skin_type!r}; valid ones: [1, 2, 3, 4, 5, 6]."
            )
        caption = item.get("caption")
        if name is None and not (isinstance(caption, str) and caption.strip()):
            raise ValueError(f"'{source}' row {index} has neither a caption nor a label_name: nothing to condition on.")
        checked.append(item)
    return checked
