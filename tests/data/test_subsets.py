"""The thinning and scarcity subsets: whole lesions on one side, reproducible by seed, nested over fractions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from monai_lesiongen.data.subsets import scarce_subset, thin_skin_types, training_subset


def _records() -> list[dict]:
    """40 lesions of two images each: labels 0-1, skin types 1-6 (lesion k has type k % 6 + 1)."""
    records = []
    for lesion in range(40):
        for image in range(2):
            records.append(
                {
                    "id": f"img_{lesion}_{image}",
                    "group_id": f"lesion_{lesion}",
                    "label": lesion % 2,
                    "fitzpatrick": lesion % 6 + 1,
                }
            )
    return records


def _lesions(records: list[dict]) -> set[str]:
    return {r["group_id"] for r in records}


def test_thinning_keeps_a_fraction_of_the_darker_lesions_per_diagnosis() -> None:
    records = _records()
    kept, removed = thin_skin_types(records, keep_fraction=0.25, seed=3)
    assert not _lesions(kept) & _lesions(removed) and len(kept) + len(removed) == len(records)
    # the darker lesions (types V-VI): 12 of them, 6 of each label; a quarter of 6 rounds to 2
    lesions_per_label = Counter(r["label"] for r in records if r["fitzpatrick"] >= 5 and r["id"].endswith("_0"))
    assert lesions_per_label == {0: 6, 1: 6}
    kept_per_label = Counter(r["label"] for r in kept if r["fitzpatrick"] >= 5 and r["id"].endswith("_0"))
    assert kept_per_label == {label: int(n * 0.25 + 0.5) for label, n in lesions_per_label.items()}
    assert all(r["fitzpatrick"] >= 5 for r in removed)
    assert [r for r in records if r["fitzpatrick"] < 5] == [r for r in kept if r["fitzpatrick"] < 5]  # order kept
    assert thin_skin_types(records, keep_fraction=0.25, seed=3) == (kept, removed)  # reproducible
    assert thin_skin_types(records, keep_fraction=0.25, seed=4) != (kept, removed)
    smaller, _ = thin_skin_types(records, keep_fraction=0.1, seed=3)
    assert _lesions(smaller) <= _lesions(kept)  # nested over fractions
    assert thin_skin_types(records, keep_fraction=0.0)[0] == [r for r in records if r["fitzpatrick"] < 5]


def test_scarcity_keeps_a_fraction_of_each_diagnosis_nested() -> None:
    records = _records()
    subsets = {f: scarce_subset(records, f, seed=1) for f in (0.1, 0.25, 0.5, 1.0)}
    for fraction, subset in subsets.items():
        counts = Counter(r["label"] for r in subset if r["id"].endswith("_0"))
        assert counts == {0: max(1, int(20 * fraction + 0.5)), 1: max(1, int(20 * fraction + 0.5))}
        assert all(sum(1 for r in subset if r["group_id"] == g) == 2 for g in _lesions(subset))  # whole lesions
    assert _lesions(subsets[0.1]) <= _lesions(subsets[0.25]) <= _lesions(subsets[0.5]) <= _lesions(subsets[1.0])
    assert subsets[1.0] == records
    assert scarce_subset(records, 0.1, seed=1) == subsets[0.1]
    rare = [*records, {"id": "rare", "group_id": "rare_lesion", "label": 2, "fitzpatrick": 6}]
    assert "rare" in {r["id"] for r in scarce_subset(rare, 0.1)}  # every diagnosis keeps a lesion


def test_bad_fractions_and_missing_skin_types_are_refused() -> None:
    with pytest.raises(ValueError, match=r"keep_fraction must be a number in \[0, 1\], got 1.5"):
        thin_skin_types(_records(), keep_fraction=1.5)
    with pytest.raises(ValueError, match="fraction must be a number"):
        scarce_subset(_records(), -0.1)
    with pytest.raises(ValueError, match=r"1 records have no 'fitzpatrick' type \(first: \['x'\]\)"):
        thin_skin_types([{"id": "x", "group_id": "g", "label": 0, "fitzpatrick": None}])


def test_training_subset_thins_then_subsamples() -> None:
    records = _records()
    assert training_subset(records) == records
    thinned = training_subset(records, thin_keep_fraction=0.25, seed=3)
    assert thinned == thin_skin_types(records, 0.25, seed=3)[0]
    both = training_subset(records, thin_keep_fraction=0.25, fraction=0.5, seed=3)
    assert both == scarce_subset(thinned, 0.5, seed=3)


def test_a_missing_skin_type_is_estimated_from_the_image(tmp_path) -> None:
    records = []
    for name, colour in (("dark", (70, 45, 35)), ("light", (235, 205, 185))):
        path = tmp_path / f"{name}.png"
        Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(path)
        records.append({"id": name, "group_id": name, "label": 0, "fitzpatrick": None, "image": str(path)})
    kept, removed = thin_skin_types(records, keep_fraction=0.0, estimate_missing=True)
    assert [r["id"] for r in kept] == ["light"] and [r["id"] for r in removed] == ["dark"]
    assert kept[0]["fitzpatrick"] is None  # the records come back as they were
