"""Generation plans: which conditions to sample, e.g. every diagnosis on every skin type, balanced."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_lesiongen.data.gap_filling import gap_filling_plan
from monai_lesiongen.data.joint_labels import SKIN_TYPE_GROUPS
from monai_lesiongen.data.plan_file import read_plan_csv
from monai_lesiongen.data.vocabulary import FITZPATRICK_TYPES

__all__ = ["PLAN_GAPS_KEYS", "check_plan_rows", "condition_grid_plan", "select_plan"]

PLAN_GAPS_KEYS: tuple[str, ...] = ("mode", "target", "reference")
"""The keys of a bundle's ``plan_gaps`` setting (`gap_filling_plan`'s arguments)."""


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


def select_plan(
    classes: Sequence[str],
    caption_builder: Callable[[Mapping[str, Any]], str] | None = None,
    plan_rows: Sequence[Mapping[str, Any]] | None = None,
    plan_csv: str | Path | None = None,
    plan_gaps: Mapping[str, Any] | None = None,
    gap_records: Sequence[Mapping[str, Any]] = (),
    fitzpatrick_types: Sequence[int] | None = FITZPATRICK_TYPES,
    extra_fields: Mapping[str, Any] | None = None,
    selected_classes: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[int]] = SKIN_TYPE_GROUPS,
) -> list[dict[str, Any]]:
    """The generation plan a bundle's inference asks for, from at most one source; the balanced grid by default.

    Args:
        classes: the class codes the model was trained on, in label order.
        caption_builder: builds the captions of grid, gap and CSV rows (None for a class-only model).
        plan_rows: hand-written rows (`check_plan_rows`).
        plan_csv: a CSV plan file (`read_plan_csv`), one request per row with its ``count``.
        plan_gaps: fill the cells of `gap_records` (`gap_filling_plan`): ``{"mode": "uniform"}``, ``{"mode":
            "top_up", "target": N}`` or ``{"mode": "match", "reference": {...}}`` (and ``target``, a total).
        gap_records: the real training records whose gaps `plan_gaps` fills.
        fitzpatrick_types, selected_classes: the grid's skin types and classes (`condition_grid_plan`).
        extra_fields: fields added to every grid and gap row.
        groups: the skin-type groups of the gap cells.

    Raises:
        ValueError: for more than one source, a ``plan_gaps`` key other than `PLAN_GAPS_KEYS`, and as each source.
    """
    given = [name for name, value in (("plan_rows", plan_rows), ("plan_csv", plan_csv), ("plan_gaps", plan_gaps))
             if value is not None]  # fmt: skip
    if len(given) > 1:
        raise ValueError(f"give one plan source, not {given}: set the others to null.")
    if plan_rows is not None:
        return check_plan_rows(plan_rows, classes)
    if plan_csv is not None:
        return read_plan_csv(plan_csv, classes, caption_builder)
    if plan_gaps is not None:
        unknown = sorted(set(plan_gaps) - set(PLAN_GAPS_KEYS))
        if unknown:
            raise ValueError(f"'plan_gaps' keys {unknown} are unknown; valid ones: {list(PLAN_GAPS_KEYS)}.")
        return gap_filling_plan(
            gap_records, classes, groups=groups, caption_builder=caption_builder, extra_fields=extra_fields,
            **dict(plan_gaps),
        )  # fmt: skip
    return condition_grid_plan(classes, fitzpatrick_types, caption_builder, extra_fields, selected_classes)
