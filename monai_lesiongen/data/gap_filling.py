"""Generation plans that fill the gaps of a real data set, cell by cell (diagnosis x skin-type group).

A balanced grid (`condition_grid_plan`) asks for the same number of images everywhere, so it adds as many images to
a cell the data set has plenty of as to one it lacks. A gap-filling plan counts the real training records per cell
and asks for what brings every cell to a target:

- ``uniform``: every cell up to the largest cell's count (a data set balanced over diagnosis and skin type);
- ``top_up``: every cell up to ``target`` images (cells that hold more keep what they have);
- ``match``: the cells in the proportions of a reference distribution (over cells, skin-type groups or diagnoses),
  at the smallest total that needs no real image removed, or at a total ``target``.

Each plan row asks for one Fitzpatrick type (a caption states a type, not a group), so a cell's images are dealt over
its group's types so that the types end as even as possible (real + synthetic). Every row carries the cell it fills,
the cell's real and target counts, and its own number of images under ``count`` (`SyntheticDatasetWriter`'s
``count_key``), so the manifest says which gap each image fills.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai_lesiongen.data.joint_labels import SKIN_TYPE_GROUPS, JointLabelEncoder

__all__ = ["GAP_FILLING_MODES", "cell_name", "count_cells", "cell_targets", "gap_filling_plan"]

GAP_FILLING_MODES: tuple[str, ...] = ("uniform", "top_up", "match")
"""The ways a gap-filling plan sets every cell's target count."""

Cell = tuple[str, str]
"""(diagnosis code, skin-type group name)."""


def cell_name(cell: Cell) -> str:
    """The name of a cell in plans, manifests and references: ``<diagnosis>/<skin-type group>``, e.g. ``mel/darker``."""
    return f"{cell[0]}/{cell[1]}"


def count_cells(
    records: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    groups: Mapping[str, Sequence[int]] = SKIN_TYPE_GROUPS,
    estimate_missing: bool = True,
) -> dict[Cell, dict[int, int]]:
    """Real records per cell and Fitzpatrick type: ``{(diagnosis, group): {type: count}}``, every cell and type listed.

    Args:
        records: `LesionRecord`s (``label_name``, ``fitzpatrick``; ``image`` where a type is to be estimated).
        classes: the diagnosis codes, in label order.
        groups: skin-type group name -> Fitzpatrick types.
        estimate_missing: estimate a missing skin type from the image's ITA (`JointLabelEncoder.label_records`);
            False makes it an error.

    Raises:
        ValueError: for a record whose diagnosis is not among `classes` (naming the record), or a missing skin type
            when `estimate_missing` is False.
    """
    encoder = JointLabelEncoder(classes, groups)
    counts: dict[Cell, dict[int, int]] = {
        (code, group): {t: 0 for t in types} for group, types in encoder.groups.items() for code in encoder.class_names
    }
    for record in records:
        if record.get("label_name") not in encoder.class_names:
            raise ValueError(
                f"record {record.get('id')!r}: diagnosis {record.get('label_name')!r} is not among the classes "
                f"{list(encoder.class_names)}."
            )
    labelled = [dict(r, label=encoder.class_names.index(r["label_name"])) for r in records]
    for record in encoder.label_records(labelled, estimate_missing=estimate_missing):
        counts[(record["label_name"], record["skin_group_name"])][int(record["fitzpatrick"])] += 1
    return counts


def _reference_weights(
    reference: Mapping[str, float], totals: Mapping[Cell, int], classes: Sequence[str], groups: Sequence[str]
) -> dict[Cell, float]:
    """Cell weights from a reference over cells, groups or diagnoses; a marginal one takes the other marginal of the
    real data (a reference over groups keeps the data's diagnosis mix)."""
    bad = [(k, v) for k, v in reference.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise ValueError(f"reference weights must be numbers >= 0, got {dict(bad)}.")
    if not any(reference.values()):
        raise ValueError(f"the reference distribution {dict(reference)} has no positive weight.")
    cells = {cell_name(c): c for c in totals}
    if all(k in cells for k in reference):
        return {c: float(reference.get(cell_name(c), 0.0)) for c in totals}
    total = sum(totals.values()) or 1
    if all(k in groups for k in reference):
        share = {d: sum(n for (code, _), n in totals.items() if code == d) / total for d in classes}
        return {(d, g): float(reference.get(g, 0.0)) * share[d] for d, g in totals}
    if all(k in classes for k in reference):
        share = {g: sum(n for (_, group), n in totals.items() if group == g) / total for g in groups}
        return {(d, g): float(reference.get(d, 0.0)) * share[g] for d, g in totals}
    raise ValueError(
        f"reference keys {sorted(reference)} must all be cells (e.g. {next(iter(cells))!r}), all skin-type groups "
        f"{list(groups)} or all diagnoses {list(classes)}."
    )


def cell_targets(
    totals: Mapping[Cell, int],
    mode: str = "uniform",
    target: int | None = None,
    reference: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> dict[Cell, int]:
    """The count every cell should hold once the synthetic images are added (never below its real count).

    Args:
        totals: real records per cell.
        mode: one of `GAP_FILLING_MODES`.
        target: ``top_up``: the count every cell is brought to (required); ``match``: the total of the matched set
            (at least the smallest total that removes no real image); unused by ``uniform``.
        reference: ``match``: weights over cells (``mel/darker``), skin-type groups or diagnoses.
        classes: the diagnoses, for a reference over diagnoses or groups (those of `totals` by default).
        groups: the skin-type group names, likewise.

    Raises:
        ValueError: for an unknown mode, a missing or invalid target or reference, or a ``match`` total too small.
    """
    if mode not in GAP_FILLING_MODES:
        raise ValueError(f"gap-filling mode must be one of {list(GAP_FILLING_MODES)}, got {mode!r}.")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
        raise ValueError(f"the gap-filling target must be an integer >= 0, got {target!r}.")
    if mode == "uniform":
        if target is not None:
            raise ValueError("mode 'uniform' brings every cell to the largest one: give no target (or use 'top_up').")
        largest = max(totals.values(), default=0)
        return {cell: largest for cell in totals}
    if mode == "top_up":
        if target is None:
            raise ValueError("mode 'top_up' needs a target: the number of images every cell is brought to.")
        return {cell: max(n, target) for cell, n in totals.items()}
    if reference is None:
        raise ValueError("mode 'match' needs a reference distribution over cells, skin-type groups or diagnoses.")
    class_names = list(classes) if classes is not None else list(dict.fromkeys(c for c, _ in totals))
    group_names = list(groups) if groups is not None else list(dict.fromkeys(g for _, g in totals))
    weights = _reference_weights(reference, totals, class_names, group_names)
    norm = sum(weights.values())
    if norm <= 0:
        raise ValueError(f"the reference {dict(reference)} gives no weight to any cell of the data.")
    shares = {cell: w / norm for cell, w in weights.items()}
    smallest = max((totals[c] / s for c, s in shares.items() if s > 0), default=0.0)
    kept = sum(n for c, n in totals.items() if shares[c] == 0)  # real images of cells the reference has no share of
    if target is not None and target - kept < smallest - 1e-9:
        raise ValueError(
            f"a matched set of {target} images would need real images removed: the smallest total that keeps every "
            f"real image is {math.ceil(smallest - 1e-9) + kept}."
        )
    scale = float(target - kept) if target is not None else smallest
    return {c: totals[c] if s == 0 else max(totals[c], math.ceil(scale * s - 1e-9)) for c, s in shares.items()}


def gap_filling_plan(
    records: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    mode: str = "uniform",
    target: int | None = None,
    reference: Mapping[str, float] | None = None,
    groups: Mapping[str, Sequence[int]] = SKIN_TYPE_GROUPS,
    caption_builder: Callable[[Mapping[str, Any]], str] | None = None,
    extra_fields: Mapping[str, Any] | None = None,
    estimate_missing: bool = True,
) -> list[dict[str, Any]]:
    """The plan rows that bring every (diagnosis x skin-type group) cell of `records` to its target count.

    Every row has ``label`` (the diagnosis index), ``label_name``, ``fitzpatrick``, ``skin_group``, ``count`` (its
    number of images), ``gap_cell``, ``cell_real_count``, ``cell_target_count``, any `extra_fields`, and a
    ``caption`` when `caption_builder` is given. A cell's images are dealt over its group's types one at a time, each
    to the type that then holds the fewest images (real + synthetic; the lower type on a tie); rows of no image are
    left out, and rows go
    through the diagnoses of each group in turn, groups and types in order.

    Args:
        records: the real training records (`LesionRecord`s).
        classes: the diagnosis codes the model was trained on, in label order.
        mode, target, reference: how the targets are set (`cell_targets`).
        groups: skin-type group name -> Fitzpatrick types (the cells' skin axis).
        caption_builder: builds a row's caption (a text-conditioned bundle's `CaptionBuilder`).
        extra_fields: fields added to every row (a site, an age, ...).
        estimate_missing: estimate missing skin types from the images (`count_cells`).

    Raises:
        ValueError: as `count_cells` and `cell_targets`, and when every cell already holds its target.
    """
    per_type = count_cells(records, classes, groups, estimate_missing)
    totals = {cell: sum(types.values()) for cell, types in per_type.items()}
    targets = cell_targets(totals, mode, target, reference, classes, list(groups))
    rows: list[dict[str, Any]] = []
    for cell, types in per_type.items():
        share = {t: 0 for t in types}
        for _ in range(targets[cell] - totals[cell]):  # one image at a time to the type that then holds the fewest
            share[min(types, key=lambda t: (types[t] + share[t], t))] += 1
        for skin_type in sorted(types):
            if share[skin_type] == 0:
                continue
            row: dict[str, Any] = {
                "label": list(classes).index(cell[0]),
                "label_name": cell[0],
                "fitzpatrick": skin_type,
                "skin_group": cell[1],
                "count": share[skin_type],
                "gap_cell": cell_name(cell),
                "cell_real_count": totals[cell],
                "cell_target_count": targets[cell],
                **(extra_fields or {}),
            }
            if caption_builder is not None:
                row["caption"] = caption_builder(row)
            rows.append(row)
    if not rows:
        raise ValueError(
            f"every cell already holds its target (mode {mode!r}, target {target!r}): nothing to generate; the real "
            f"counts per cell are { ({cell_name(c): n for c, n in totals.items()}) }."
        )
    return rows
