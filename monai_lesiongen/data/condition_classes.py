"""The class condition beside the caption of a text-conditioned generator: the Fitzpatrick type, the diagnosis, both,
or neither, as one class index for the denoiser's class embedding."""

from __future__ import annotations

from dataclasses import dataclass

from monai_lesiongen.data.skin_tone import NUM_SKIN_TYPES, skin_type_class

__all__ = ["ConditionClasses"]


@dataclass(frozen=True)
class ConditionClasses:
    """Which record fields condition the denoiser as a class, beside its caption, and their class index.

    - skin type only: classes 0-5 for Fitzpatrick types I-VI; an unknown type is the null class 6 ("any skin");
    - diagnosis only: the diagnosis index;
    - both: ``diagnosis * 7 + s``, with ``s`` 0-5 for types I-VI and 6 for an unknown type, so that a record of a
      known diagnosis and unknown type keeps its diagnosis;
    - neither: no class condition (`num_classes` is None).

    The null class, which condition dropout and classifier-free guidance use, is always `num_classes`.

    Args:
        num_diagnoses: number of diagnoses (the label range).
        diagnosis: condition on the diagnosis.
        skin_type: condition on the Fitzpatrick type.

    Raises:
        ValueError: for fewer than one diagnosis.
    """

    num_diagnoses: int
    diagnosis: bool = False
    skin_type: bool = False

    def __post_init__(self) -> None:
        if self.num_diagnoses < 1:
            raise ValueError(f"num_diagnoses must be >= 1, got {self.num_diagnoses}.")

    @property
    def enabled(self) -> bool:
        """Whether there is a class condition at all."""
        return self.diagnosis or self.skin_type

    @property
    def num_classes(self) -> int | None:
        """The number of classes (without the null class), or None without a class condition."""
        if self.diagnosis and self.skin_type:
            return self.num_diagnoses * (NUM_SKIN_TYPES + 1)
        if self.diagnosis:
            return self.num_diagnoses
        return NUM_SKIN_TYPES if self.skin_type else None

    @property
    def null_class(self) -> int | None:
        """The class index meaning "no condition", or None without a class condition."""
        return self.num_classes

    @property
    def diagnosis_map(self) -> list[int]:
        """The diagnosis of every class index (without the null class), e.g. the targets of a diagnosis classifier
        that guides sampling from the classes.

        Raises:
            ValueError: when the classes do not hold the diagnosis.
        """
        if not self.diagnosis:
            raise ValueError("the classes do not hold the diagnosis (diagnosis: false); set diagnosis_class_condition.")
        per_diagnosis = NUM_SKIN_TYPES + 1 if self.skin_type else 1
        return [c // per_diagnosis for c in range(self.num_diagnoses * per_diagnosis)]

    def __call__(self, label: int | None = None, fitzpatrick: int | None = None) -> int:
        """The class index of a diagnosis `label` and Fitzpatrick type (None: unknown).

        Raises:
            ValueError: without a class condition, for a diagnosis condition without a label in range, or for a
                type other than None or 1-6.
        """
        if not self.enabled:
            raise ValueError("no class condition is configured (neither diagnosis nor skin type).")
        skin = skin_type_class(fitzpatrick)
        if not self.diagnosis:
            return skin
        if label is None or isinstance(label, bool) or not 0 <= int(label) < self.num_diagnoses:
            raise ValueError(f"the diagnosis label must be 0-{self.num_diagnoses - 1}, got {label!r}.")
        return int(label) * (NUM_SKIN_TYPES + 1) + skin if self.skin_type else int(label)
