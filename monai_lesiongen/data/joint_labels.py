"""Skin-type conditioning: a joint class label = diagnosis x skin-type group, for a class-conditioned denoiser.

Class-N-Diff loads each image's skin tone and then ignores it, so its generator cannot be asked for a lesion on dark
skin, the group that skin-lesion data sets lack most. Here the denoiser's class condition is the pair
(diagnosis, skin-type group), encoded as one integer ``joint = group * num_classes + diagnosis``.

Why a joint class label and not a context of learned tokens (a diagnosis token and a skin-type token through
cross-attention):

- it needs nothing new: `ConditionedDiffusionUNet(num_classes=num_classes * num_groups)` embeds it, and the existing
  prepare-batch (condition dropout drops diagnosis and skin type together, to the one null class), inferer and
  classifier-free guidance use it as they are; the sampler asks for a skin type by asking for a class;
- cross-attention on every attention level costs compute that a 2-core CPU cannot spare at 32 px, and the
  class-only bundle has no text path to put tokens in;
- the grid is small (7 x 3 = 21 rows of the class embedding, each one vector), every cell has training images in the
  data sets at hand, and everything but that vector is shared by all cells, so the rare cells still learn from the
  common ones. A factorised embedding (diagnosis vector + skin vector) would generalise to a cell never seen in
  training; no cell here is unseen.

The three groups are Class-N-Diff's skin-tone groups on the Fitzpatrick scale: lighter (I-II), brown (III-IV) and
darker (V-VI). A record without a Fitzpatrick type (HAM10000, ISIC) gets one from the ITA of the skin around the
lesion, as `monai_lesiongen.data.skin_tone` estimates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from monai_lesiongen.data.skin_tone import estimate_ita, ita_to_fitzpatrick
from monai_lesiongen.data.vocabulary import HAM10000_CLASSES

__all__ = ["SKIN_TYPE_GROUPS", "JointLabelEncoder", "skin_group_of_fitzpatrick", "estimate_fitzpatrick"]

SKIN_TYPE_GROUPS: dict[str, tuple[int, ...]] = {"lighter": (1, 2), "brown": (3, 4), "darker": (5, 6)}
"""Skin-type group name -> the Fitzpatrick types it holds, lightest group first (Class-N-Diff's skin-tone groups)."""


def skin_group_of_fitzpatrick(fitzpatrick: int, groups: Mapping[str, Sequence[int]] = SKIN_TYPE_GROUPS) -> int:
    """The index (in `groups` order) of the group holding Fitzpatrick type `fitzpatrick`.

    Raises:
        ValueError: when no group holds the type.
    """
    for index, types in enumerate(groups.values()):
        if int(fitzpatrick) in types:
            return index
    raise ValueError(f"Fitzpatrick type {fitzpatrick!r} is in no skin-type group of {dict(groups)}; use 1-6.")


def estimate_fitzpatrick(image_path: str, mask_path: str | None = None) -> int:
    """A Fitzpatrick-like type 1-6 from the ITA of the skin around the lesion of an image file (mask optional)."""
    image = np.moveaxis(np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float64), -1, 0)
    mask = None
    if mask_path is not None:
        mask = np.asarray(Image.open(mask_path).convert("L").resize(image.shape[:0:-1], Image.Resampling.NEAREST))
    return ita_to_fitzpatrick(estimate_ita(image, mask))


class JointLabelEncoder:
    """Encodes (diagnosis, skin-type group) as one class label ``group * num_classes + diagnosis``, and back.

    The denoiser takes ``num_classes=encoder.num_joint_labels``; its null class (``encoder.null_label``) means
    "neither diagnosis nor skin type", which condition dropout and classifier-free guidance use.

    Args:
        class_names: the diagnosis codes, in label order (HAM10000's by default).
        groups: skin-type group name -> Fitzpatrick types, in group order.

    Raises:
        ValueError: for no classes or no groups.
    """

    def __init__(
        self,
        class_names: Sequence[str] = HAM10000_CLASSES,
        groups: Mapping[str, Sequence[int]] = SKIN_TYPE_GROUPS,
    ) -> None:
        if not class_names or not groups:
            raise ValueError(f"need at least one class and one group, got {list(class_names)}, {dict(groups)}.")
        self.class_names = tuple(class_names)
        self.groups = {name: tuple(int(t) for t in types) for name, types in groups.items()}
        self.group_names = tuple(self.groups)
        self.num_classes = len(self.class_names)
        self.num_groups = len(self.group_names)

    @property
    def num_joint_labels(self) -> int:
        """Number of joint labels (the denoiser's `num_classes`)."""
        return self.num_classes * self.num_groups

    @property
    def null_label(self) -> int:
        """The joint label of the dropped condition (the denoiser's null class)."""
        return self.num_joint_labels

    def encode(self, diagnosis: Any, group: Any) -> Any:
        """Joint label(s) of diagnosis and group indices (ints or integer tensors)."""
        return group * self.num_classes + diagnosis

    def diagnosis_of(self, joint: Any) -> Any:
        """The diagnosis index of joint label(s); the null label has none, so it is an error to pass it here."""
        return joint % self.num_classes

    def group_of(self, joint: Any) -> Any:
        """The skin-type group index of joint label(s)."""
        return joint // self.num_classes

    def group_of_fitzpatrick(self, fitzpatrick: int) -> int:
        """The group index of a Fitzpatrick type."""
        return skin_group_of_fitzpatrick(fitzpatrick, self.groups)

    def label_records(self, records: Sequence[Mapping[str, Any]], estimate_missing: bool = True) -> list[dict]:
        """Copies of the records with ``skin_group`` (index), ``skin_group_name`` and ``joint_label`` added.

        A record without a ``fitzpatrick`` type gets one estimated from its image (`estimate_fitzpatrick`) and the
        field ``fitzpatrick_estimated`` set to True.

        Args:
            records: `LesionRecord`s (``label``, ``image``, optional ``mask`` and ``fitzpatrick``).
            estimate_missing: estimate missing skin types from the pixels; False makes them an error.

        Raises:
            ValueError: for a record without a skin type when `estimate_missing` is False.
        """
        labelled = []
        for record in records:
            item = dict(record)
            if item.get("fitzpatrick") is None:
                if not estimate_missing:
                    raise ValueError(
                        f"record {item.get('id')!r} has no 'fitzpatrick' type: fill it in the metadata, or pass "
                        "estimate_missing=True to estimate it from the skin tone (ITA) of the image."
                    )
                item["fitzpatrick"] = estimate_fitzpatrick(str(item["image"]), item.get("mask"))
                item["fitzpatrick_estimated"] = True
            group = self.group_of_fitzpatrick(int(item["fitzpatrick"]))
            item["skin_group"] = group
            item["skin_group_name"] = self.group_names[group]
            item["joint_label"] = int(self.encode(int(item["label"]), group))
            labelled.append(item)
        return labelled

    def plan(self, group_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Generation plan rows, one per (skin-type group, diagnosis), for `SyntheticDatasetWriter`.

        Each row holds ``label`` (the joint label the denoiser is conditioned on), ``diagnosis_label``,
        ``label_name``, ``skin_group`` and ``fitzpatrick_types``; rows go through the diagnoses for each group.

        Args:
            group_names: the groups to generate (e.g. only ``["darker"]`` to fill the rarest skin type); all by default.

        Raises:
            ValueError: for an unknown group name.
        """
        names = list(group_names) if group_names is not None else list(self.group_names)
        unknown = [n for n in names if n not in self.groups]
        if unknown:
            raise ValueError(f"unknown skin-type groups {unknown}; choose from {list(self.group_names)}.")
        rows = []
        for name in names:
            group = self.group_names.index(name)
            for diagnosis, code in enumerate(self.class_names):
                rows.append(
                    {
                        "label": int(self.encode(diagnosis, group)),
                        "diagnosis_label": diagnosis,
                        "label_name": code,
                        "skin_group": name,
                        "fitzpatrick_types": "-".join(str(t) for t in self.groups[name]),
                    }
                )
        return rows

    def relabel_plan(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Plan rows with a diagnosis ``label`` (a gap-filling or CSV plan's) given the joint label to condition on.

        The diagnosis index moves to ``diagnosis_label``; the group is the row's ``skin_group`` name, else the group of
        its ``fitzpatrick`` type, and is written to ``skin_group``.

        Raises:
            ValueError: for a row without a diagnosis label or without a skin type (naming the row).
        """
        relabelled = []
        for index, row in enumerate(rows):
            diagnosis = row.get("label")
            if diagnosis is None:
                raise ValueError(
                    f"plan row {index} has no diagnosis: a class-conditioned model draws a diagnosis x skin-type "
                    "class, so give every row a diagnosis."
                )
            if row.get("skin_group") is not None:
                if row["skin_group"] not in self.groups:
                    raise ValueError(f"plan row {index}: unknown skin-type group {row['skin_group']!r}; choose from "
                                     f"{list(self.group_names)}.")  # fmt: skip
                group = self.group_names.index(row["skin_group"])
            elif row.get("fitzpatrick") is not None:
                group = self.group_of_fitzpatrick(int(row["fitzpatrick"]))
            else:
                raise ValueError(
                    f"plan row {index} has no skin type: give a 'fitzpatrick' type (1-6) for the diagnosis x "
                    "skin-type class."
                )
            joint = int(self.encode(int(diagnosis), group))
            relabelled.append(
                dict(row, label=joint, diagnosis_label=int(diagnosis), skin_group=self.group_names[group])
            )
        return relabelled
