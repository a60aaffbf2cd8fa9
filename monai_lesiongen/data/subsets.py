"""Subsets of a real training split for the utility protocol: a thinned skin-type group, and scarce data.

Both draw whole lesions (``group_id``), never single images, so that no lesion has images on both sides of a cut, and
both draw per diagnosis from one seeded order, so that the same seed gives the same subset and a smaller fraction is
a subset of a larger one (10% inside 25% inside 50%): a curve over fractions then adds data, it does not redraw it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from monai_lesiongen.data.joint_labels import estimate_fitzpatrick

__all__ = ["scarce_subset", "thin_skin_types", "training_subset"]

RecordT = TypeVar("RecordT", bound=Mapping[str, Any])


def _check_fraction(fraction: float, name: str) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {fraction!r}.")


def _kept_groups(
    records: Sequence[Mapping[str, Any]], group_ids: Collection[str], fraction: float, seed: int, min_per_label: int
) -> set[str]:
    """The `fraction` of `group_ids` kept per diagnosis (a group's most frequent label), from one seeded order."""
    labels: dict[str, list[Any]] = {}
    for record in records:
        if record["group_id"] in group_ids:
            labels.setdefault(record["group_id"], []).append(record["label"])
    strata: dict[Any, list[str]] = {}
    for group_id, group_labels in labels.items():
        label = min(set(group_labels), key=lambda k: (-group_labels.count(k), str(k)))
        strata.setdefault(label, []).append(group_id)
    kept: set[str] = set()
    rng = random.Random(seed)
    for label in sorted(strata, key=str):
        stratum = sorted(strata[label])
        rng.shuffle(stratum)
        count = max(min(min_per_label, len(stratum)), math.floor(fraction * len(stratum) + 0.5))
        kept.update(stratum[:count])
    return kept


def thin_skin_types(
    records: Sequence[RecordT],
    keep_fraction: float = 0.1,
    fitzpatrick_types: Collection[int] = (5, 6),
    seed: int = 0,
    estimate_missing: bool = False,
) -> tuple[list[RecordT], list[RecordT]]:
    """Thin one skin-type group of a training split: keep `keep_fraction` of its lesions, per diagnosis.

    A lesion is in the group when any of its images has one of `fitzpatrick_types`; the other lesions are all kept.
    Per diagnosis, ``round(keep_fraction * n)`` of the group's n lesions are kept (halves round up).

    Args:
        records: the training records (``group_id``, ``label``, ``fitzpatrick``).
        keep_fraction: the share of the group's lesions to keep, in [0, 1].
        fitzpatrick_types: the skin types of the thinned group (V-VI by default: the types data sets lack most).
        seed: seed of the draw.
        estimate_missing: decide for a record without a skin type from the ITA of its image
            (`estimate_fitzpatrick`); the records are returned as they are. False makes a missing type an error.

    Returns:
        ``(kept, removed)``, each in the order of `records`.

    Raises:
        ValueError: for a fraction outside [0, 1], or a record without a skin type when `estimate_missing` is False
            (naming it).
    """
    _check_fraction(keep_fraction, "keep_fraction")
    missing = [r.get("id") for r in records if r.get("fitzpatrick") is None]
    if missing and not estimate_missing:
        raise ValueError(
            f"{len(missing)} records have no 'fitzpatrick' type (first: {missing[:3]}): fill them in, or estimate "
            "them from the skin tone (estimate_missing=True) to thin a skin-type group."
        )
    types = {int(t) for t in fitzpatrick_types}

    def skin_type(record: Mapping[str, Any]) -> int:
        if record.get("fitzpatrick") is not None:
            return int(record["fitzpatrick"])
        return estimate_fitzpatrick(str(record["image"]), record.get("mask"))

    thinned = {r["group_id"] for r in records if skin_type(r) in types}
    kept_groups = _kept_groups(records, thinned, keep_fraction, seed, min_per_label=0)
    kept = [r for r in records if r["group_id"] not in thinned or r["group_id"] in kept_groups]
    removed = [r for r in records if r["group_id"] in thinned and r["group_id"] not in kept_groups]
    return kept, removed


def scarce_subset(records: Sequence[RecordT], fraction: float, seed: int = 0) -> list[RecordT]:
    """A `fraction` of a training split's lesions, per diagnosis, at least one lesion of every diagnosis present.

    Per diagnosis, ``round(fraction * n)`` of its n lesions are kept (halves round up; at least one when
    ``fraction > 0``), so every diagnosis stays in a scarce split; the same seed gives nested subsets.

    Args:
        records: the training records (``group_id``, ``label``).
        fraction: the share of lesions to keep, in [0, 1].
        seed: seed of the draw.

    Returns:
        The kept records, in the order of `records`.

    Raises:
        ValueError: for a fraction outside [0, 1].
    """
    _check_fraction(fraction, "fraction")
    groups = {r["group_id"] for r in records}
    kept_groups = _kept_groups(records, groups, fraction, seed, min_per_label=1 if fraction > 0 else 0)
    return [r for r in records if r["group_id"] in kept_groups]


def training_subset(
    records: Sequence[RecordT],
    thin_keep_fraction: float | None = None,
    thin_fitzpatrick_types: Collection[int] = (5, 6),
    fraction: float | None = None,
    seed: int = 0,
) -> list[RecordT]:
    """The training records a bundle trains on under the utility protocol: thinned and/or scarce, or all of them.

    Args:
        records: the training split.
        thin_keep_fraction: keep this share of the `thin_fitzpatrick_types` lesions (`thin_skin_types`, missing types
            estimated from the images); None keeps them all.
        thin_fitzpatrick_types: the skin types of the thinned group.
        fraction: then keep this share of every diagnosis's lesions (`scarce_subset`); None keeps them all.
        seed: seed of both draws.
    """
    kept = list(records)
    if thin_keep_fraction is not None:
        kept = thin_skin_types(kept, thin_keep_fraction, thin_fitzpatrick_types, seed, estimate_missing=True)[0]
    if fraction is not None:
        kept = scarce_subset(kept, fraction, seed)
    return kept
