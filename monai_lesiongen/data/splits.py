"""Train/valid/test splits of reader records that never put one lesion (or patient) in two splits.

Images of the same lesion or patient look alike; if they fall in both the training and the test split, test
scores and generative metrics are inflated. `split_records` therefore assigns whole groups (``group_id``), and
balances the labels across splits at the group level.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from monai_lesiongen.data.records import LesionRecord

__all__ = ["SPLIT_NAMES", "split_records", "check_no_group_leak"]

SPLIT_NAMES: tuple[str, str, str] = ("train", "valid", "test")
"""The split keys, in the order of ``fractions``."""


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(f) for f in fractions)
    if len(values) != len(SPLIT_NAMES) or any(f < 0 or not math.isfinite(f) for f in values):
        raise ValueError(f"fractions must be 3 non-negative numbers (train, valid, test), got {tuple(fractions)}.")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)} (sum {sum(values)}).")
    return values


def _official_splits(records: Sequence[LesionRecord]) -> dict[str, list[LesionRecord]]:
    splits: dict[str, list[LesionRecord]] = {name: [] for name in SPLIT_NAMES}
    for record in records:
        split = record["split"]
        if split not in splits:
            raise ValueError(
                f"record {record['id']!r} has split {split!r}; official splits must be one of {list(SPLIT_NAMES)}."
            )
        splits[split].append(record)
    return splits


def split_records(
    records: Sequence[LesionRecord],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = True,
) -> dict[str, list[LesionRecord]]:
    """Split records into ``train``/``valid``/``test``, keeping each ``group_id`` in a single split.

    When every record carries an official ``split`` (e.g. derm7pt), that split is returned as is and `fractions`,
    `seed` and `stratify` are not used. Otherwise the groups are shuffled with `seed` and dealt out so that each
    split's share of records follows `fractions`: with `stratify`, label by label (a group's label is its most
    frequent one), carrying rounding over from one label to the next, so that every label is spread across the
    splits as evenly as its number of groups allows.

    Args:
        records: reader records.
        fractions: the train, valid and test shares of records; non-negative, summing to 1.
        seed: seed of the shuffle; the same seed and records give the same splits.
        stratify: balance labels across splits (at the group level).

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, each list in the order of `records`.

    Raises:
        ValueError: for invalid `fractions`, or an official split other than train/valid/test.
    """
    shares = _check_fractions(fractions)
    if records and all(r["split"] is not None for r in records):
        return _official_splits(records)

    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(record["group_id"], []).append(i)
    strata: dict[int, list[str]] = {}
    for group_id, members in groups.items():
        label = 0
        if stratify:
            counts = Counter(records[i]["label"] for i in members)
            label = min(counts, key=lambda k: (-counts[k], k))
        strata.setdefault(label, []).append(group_id)

    rng = random.Random(seed)
    assigned = [0] * len(SPLIT_NAMES)
    total = 0
    split_of_group: dict[str, int] = {}
    for label in sorted(strata):
        stratum = strata[label]
        rng.shuffle(stratum)
        total += sum(len(groups[g]) for g in stratum)
        targets = [share * total for share in shares]
        for group_id in stratum:
            deficits = [targets[s] - assigned[s] for s in range(len(SPLIT_NAMES))]
            best = max(range(len(SPLIT_NAMES)), key=lambda s: (deficits[s], -s))
            split_of_group[group_id] = best
            assigned[best] += len(groups[group_id])

    splits: dict[str, list[LesionRecord]] = {name: [] for name in SPLIT_NAMES}
    for record in records:
        splits[SPLIT_NAMES[split_of_group[record["group_id"]]]].append(record)
    return splits


def check_no_group_leak(splits: Mapping[str, Sequence[LesionRecord]]) -> None:
    """Check that no ``group_id`` appears in two splits.

    Args:
        splits: split name -> records, as `split_records` returns.

    Raises:
        ValueError: naming the first group found in two splits, and the two splits.
    """
    seen: dict[str, str] = {}
    for name, records in splits.items():
        for record in records:
            group = record["group_id"]
            first = seen.setdefault(group, name)
            if first != name:
                raise ValueError(
                    f"group {group!r} leaks across splits: it has records in both {first!r} and {name!r} "
                    f"(e.g. image {record['id']!r}); assign whole groups to one split."
                )
