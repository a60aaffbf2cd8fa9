"""Concept-rich captions for text-to-image training, built from a record and measured lesion fields (LesionGen).

A caption says only what the record holds or the pixels show: a field that is missing is left out, never filled
with a default. Fields are ranked by importance (diagnosis, skin type, dermoscopic concepts, border, colours, shape,
size, site, age, sex), and the least important are dropped first when a caption exceeds its token budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np
from monai.transforms import Randomizable

from monai_lesiongen.data.lesion_measurements import LesionMeasurements
from monai_lesiongen.data.skin_tone import ITA_GROUPS
from monai_lesiongen.data.vocabulary import HAM10000_CLASS_NAMES, SEVEN_POINT_CONCEPTS

__all__ = ["CaptionMode", "CaptionBuilder", "DIAGNOSIS_NAMES", "CLINICAL_SOURCES", "REPORT_FIELDS"]

CaptionMode = Literal["caption", "report"]

DIAGNOSIS_NAMES: dict[str, str] = {
    **HAM10000_CLASS_NAMES,
    "ak": "actinic keratosis",
    "scc": "squamous cell carcinoma",
}
"""Readable names of diagnosis codes (HAM10000, plus the ISIC 2019 codes it lacks); other labels are used as written."""

CLINICAL_SOURCES: frozenset[str] = frozenset({"fitzpatrick17k", "ddi", "pad_ufes20"})
"""Record sources whose images are clinical photographs; every other source (HAM10000, ISIC, derm7pt, the demo set)
is captioned as dermoscopy."""

REPORT_FIELDS: tuple[str, ...] = (
    "Diagnosis",
    "Patient",
    "Site",
    "Lesion colour",
    "Colour variability",
    "Shape",
    "Size",
    "Border",
    "Dermoscopic patterns",
    "Surrounding skin",
)
"""The LesionGen report fields a report can hold, in report order. LesionGen's texture, elevation and "other
features" fields are never written: neither the records nor the pixel measurements say anything about them."""

_MISSING_WORDS = frozenset({"", "unknown", "unk", "nan", "none", "n/a", "na", "null"})
_ABSENT_WORDS = frozenset({"absent", "no", "false", "0"})
_PRESENT_WORDS = frozenset({"present", "yes", "true", "1"})
_ROMAN = ("I", "II", "III", "IV", "V", "VI")
_SEX_WORDS = {"m": "male", "f": "female", "male": "male", "female": "female"}
_SITE_PHRASES = {"acral": "on acral skin", "genital": "on the genitals"}
_CONCEPT_TEMPLATES: dict[str, str] = {
    "pigment_network": "{value} pigment network",
    "streaks": "{value} streaks",
    "pigmentation": "{value} pigmentation",
    "regression_structures": "regression structures ({value})",
    "dots_and_globules": "{value} dots and globules",
    "blue_whitish_veil": "blue-whitish veil",
    "vascular_structures": "{value} vessels",
}
_CONCEPT_VALUE_PHRASES: dict[tuple[str, str], str] = {
    ("regression_structures", "combinations"): "regression structures (blue and white areas)",
    ("vascular_structures", "within regression"): "vessels within regression",
}
_ASYMMETRY_WORDS = ("symmetric", "asymmetric about one axis", "asymmetric about both axes")
# Display order of the field groups in report mode (captions follow the importance order).
_REPORT_GROUPS = ("diagnosis", "patient", "site", "colours", "shape", "size", "border", "patterns", "skin")


@dataclass(frozen=True)
class _Field:
    """One droppable piece of a caption: its group (what it renders into) and its caption and report texts."""

    group: str
    caption: str
    report: str


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _MISSING_WORDS
    if isinstance(value, Real) and not isinstance(value, bool):
        return math.isnan(float(value))
    if isinstance(value, Mapping | Sequence):
        return len(value) == 0
    return False


def _number(record: Mapping, key: str) -> float | None:
    value = record.get(key)
    if _is_missing(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"record field '{key}' must be a number or missing, got {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"record field '{key}' must be a finite number or missing, got {value!r}.")
    return number


def _concept_phrase(name: str, value: Any) -> str | None:
    if isinstance(value, bool):
        value = "present" if value else "absent"
    if _is_missing(value):
        return None
    text = str(value).strip().lower().replace("_", " ")
    if text in _ABSENT_WORDS:
        return None
    if (name, text) in _CONCEPT_VALUE_PHRASES:
        return _CONCEPT_VALUE_PHRASES[(name, text)]
    if name in _CONCEPT_TEMPLATES:
        return _CONCEPT_TEMPLATES[name].format(value=text)
    readable = name.replace("_", " ")
    return readable if text in _PRESENT_WORDS else f"{text} {readable}"


class CaptionBuilder(Randomizable):
    """Build a caption (or a LesionGen-style report) for a lesion image from its record and measurements.

    Caption mode gives short comma-separated phrases, most important first, e.g. ``"dermoscopy image of melanoma,
    Fitzpatrick skin type II, atypical pigment network, blue-whitish veil, irregular border, 3 colours (dark brown,
    black, blue-grey), 28% of the image, on the back, 45-year-old male"``. Report mode gives the LesionGen report
    fields (`REPORT_FIELDS`) as short sentences, e.g. ``"Diagnosis: melanoma. Patient: 45-year-old male. ..."``.

    The fields come from the record keys ``label_name`` (a HAM10000 code becomes its readable name, see
    `DIAGNOSIS_NAMES`), ``fitzpatrick``, ``concepts`` (those not ``absent``), ``site``, ``age``, ``sex`` and
    ``source`` (clinical or dermoscopy image, see `CLINICAL_SOURCES`), and from `LesionMeasurements` (border,
    colours, shape, size, and the skin tone estimated from the ITA when the record has no Fitzpatrick type). A field
    that is None, empty, NaN or ``unknown`` is left out.

    Training-time augmentation: `shuffle_phrases`, `field_dropout` and `empty_probability` (the empty caption is the
    null condition of classifier-free guidance). Their randomness comes from a `numpy.random.Generator` set by
    `seed` or `set_random_state`, so that ``Compose(...).set_random_state(seed)`` and MONAI's `DataLoader` worker
    seeding reach it.

    Args:
        mode: ``caption`` for comma-separated phrases, ``report`` for report sentences.
        max_tokens: token budget (77 for CLIP); None for no limit. Over budget, the least important fields are
            dropped first; the diagnosis (or, without one, the most important field left) is never dropped, and is
            cut word by word if it alone is over.
        tokenizer: counts tokens: a callable that returns the token ids of a string, special tokens included
            (e.g. ``lambda s: tok(s)["input_ids"]``; a Hugging Face tokenizer itself also works). None counts
            whitespace-separated words.
        shuffle_phrases: put the phrases after the first (the diagnosis) in a random order.
        field_dropout: probability of dropping each field other than the first (the diagnosis).
        empty_probability: probability of returning the empty caption ``""``.
        seed: seed of the random generator; None for a random one.
        skin_tone_words: follow a Fitzpatrick type with the skin tone in plain words (``"Fitzpatrick skin type V,
            brown skin"``, the ITA group names of `ITA_GROUPS`), as LesionGen's reports describe the surrounding
            skin: a sentence encoder puts roman numerals close together, words further apart.

    Raises:
        ValueError: for an argument out of range (the message names it).
    """

    def __init__(
        self,
        mode: CaptionMode = "caption",
        max_tokens: int | None = 77,
        tokenizer: Callable[[str], Sequence] | None = None,
        shuffle_phrases: bool = False,
        field_dropout: float = 0.0,
        empty_probability: float = 0.0,
        seed: int | None = None,
        skin_tone_words: bool = False,
    ) -> None:
        if mode not in ("caption", "report"):
            raise ValueError(f"mode must be 'caption' or 'report', got {mode!r}.")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer) or max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens!r}.")
        if tokenizer is not None and not callable(tokenizer):
            raise ValueError(f"tokenizer must be callable (string -> token ids) or None, got {type(tokenizer)}.")
        if not 0.0 <= field_dropout < 1.0:
            raise ValueError(f"field_dropout must be in [0, 1), got {field_dropout!r}.")
        if not 0.0 <= empty_probability <= 1.0:
            raise ValueError(f"empty_probability must be in [0, 1], got {empty_probability!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
        self.mode: CaptionMode = mode
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.tokenizer = tokenizer
        self.shuffle_phrases = bool(shuffle_phrases)
        self.field_dropout = float(field_dropout)
        self.empty_probability = float(empty_probability)
        self.rng = np.random.default_rng(seed)
        self.skin_tone_words = bool(skin_tone_words)
        self._empty = False
        self._keep: np.ndarray = np.ones(0, dtype=bool)
        self._rank: np.ndarray = np.zeros(0, dtype=np.int64)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | np.random.Generator | None = None
    ) -> CaptionBuilder:
        """Reseed the builder's generator (as MONAI's `Randomizable.set_random_state`).

        Args:
            seed: integer seed (taken modulo MONAI's ``MAX_SEED``).
            state: a `numpy.random.Generator` to use, or a `numpy.random.RandomState` to draw a seed from.

        Raises:
            TypeError: when `state` is neither a Generator nor a RandomState.
        """
        if seed is not None:
            self.rng = np.random.default_rng(int(seed) % (np.iinfo(np.uint32).max + 1))
        elif state is not None:
            if isinstance(state, np.random.Generator):
                self.rng = state
            elif isinstance(state, np.random.RandomState):
                self.rng = np.random.default_rng(int(state.randint(np.iinfo(np.uint32).max, dtype=np.uint32)))
            else:
                raise TypeError(f"state must be a numpy Generator, RandomState or None, got {type(state).__name__}.")
        else:
            self.rng = np.random.default_rng()
        return self

    def randomize(self, data: Any) -> None:
        """Draw the random choices for one caption: empty or not, which fields stay, and their order.

        Args:
            data: the number of fields the caption can state.
        """
        data = int(data)
        self._empty = self.empty_probability > 0.0 and bool(self.rng.random() < self.empty_probability)
        self._keep = np.ones(data, dtype=bool)
        if self.field_dropout > 0.0 and data > 1:
            self._keep[1:] = self.rng.random(data - 1) >= self.field_dropout
        self._rank = np.arange(data)
        if self.shuffle_phrases and data > 2:
            self._rank[1:] = 1 + self.rng.permutation(data - 1)

    def __call__(self, record: Mapping, measurements: LesionMeasurements | None = None) -> str:
        """Build the caption of one record.

        Args:
            record: a `LesionRecord`, or any mapping with some of its keys (a MONAI data dictionary works).
            measurements: what `measure_lesion` measured on the image; None when nothing was measured.

        Returns:
            The caption, within the token budget; ``""`` with probability `empty_probability` (and for a report of a
            record that states nothing).

        Raises:
            ValueError: for a record field of the wrong type (the message names it), or a `max_tokens` too small to
                hold even the first word of the diagnosis.
        """
        fields = self._fields(record, measurements)
        self.randomize(len(fields))
        if self._empty:
            return ""
        fixed = 1 if fields else 0  # the most important field (the diagnosis when known) always stays
        keep = self._keep.copy()
        keep[:fixed] = True
        kept = [(f, int(r)) for f, r, k in zip(fields, self._rank, keep, strict=True) if k]
        text = self._render(kept)
        while len(kept) > fixed and not self._fits(text):
            kept.pop()  # the fields are in importance order: the last is the least important
            text = self._render(kept)
        if self._fits(text):
            return text
        words = text.split()
        while words and not self._fits(" ".join(words)):
            words.pop()
        if not words:
            raise ValueError(f"max_tokens={self.max_tokens} cannot hold even the first word of {text!r}.")
        return " ".join(words)

    def count_tokens(self, text: str) -> int:
        """The number of tokens of `text`: by `tokenizer` (special tokens included), else whitespace words."""
        if self.tokenizer is None:
            return len(text.split())
        ids: Any = self.tokenizer(text)
        if isinstance(ids, Mapping):  # a Hugging Face tokenizer called directly returns a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)

    def _fields(self, record: Mapping, measurements: LesionMeasurements | None = None) -> list[_Field]:
        """The fields a caption of `record` can state, most important first (the diagnosis, when known, first)."""
        fields: list[_Field] = []
        source = record.get("source")
        modality = "clinical image" if isinstance(source, str) and source.lower() in CLINICAL_SOURCES else None
        modality = modality or "dermoscopy image"
        label = record.get("label_name")
        if not _is_missing(label):
            name = str(label).strip()
            name = DIAGNOSIS_NAMES.get(name.lower(), name.replace("_", " "))
            fields.append(_Field("diagnosis", f"{modality} of {name}", f"Diagnosis: {name}."))
        elif self.mode == "caption":
            fields.append(_Field("diagnosis", modality, ""))

        fitzpatrick = _number(record, "fitzpatrick")
        if fitzpatrick is not None:
            if not fitzpatrick.is_integer() or not 1 <= fitzpatrick <= 6:
                raise ValueError(f"record field 'fitzpatrick' must be 1-6 or missing, got {record['fitzpatrick']!r}.")
            skin = f"Fitzpatrick skin type {_ROMAN[int(fitzpatrick) - 1]}"
            if self.skin_tone_words:
                skin = f"{skin}, {ITA_GROUPS[int(fitzpatrick) - 1][0]} skin"
            fields.append(_Field("skin", skin, f"Surrounding skin: {skin}."))
        elif measurements is not None and measurements.skin_group:
            skin = f"skin tone estimated {measurements.skin_group}"
            fields.append(_Field("skin", skin, f"Surrounding skin: {skin}."))

        concepts = record.get("concepts")
        if isinstance(concepts, Mapping):
            names = [c for c in SEVEN_POINT_CONCEPTS if c in concepts]
            names += [c for c in concepts if c not in SEVEN_POINT_CONCEPTS]
            for concept in names:
                phrase = _concept_phrase(str(concept), concepts[concept])
                if phrase is not None:
                    fields.append(_Field(f"concept:{concept}", phrase, phrase))
        elif not _is_missing(concepts):
            raise ValueError(f"record field 'concepts' must be a mapping (concept -> value), got {concepts!r}.")

        if measurements is not None:
            fields.extend(self._measured_fields(measurements))

        site = record.get("site")
        if not _is_missing(site):
            place = str(site).strip().lower().replace("_", " ")
            fields.append(_Field("site", _SITE_PHRASES.get(place, f"on the {place}"), f"Site: {place}."))
        age = _number(record, "age")
        if age is not None:
            if age < 0:
                raise ValueError(f"record field 'age' must be a non-negative number of years, got {age}.")
            fields.append(_Field("patient", f"{round(age)}-year-old", ""))
        sex = record.get("sex")
        if not _is_missing(sex):
            word = str(sex).strip().lower()
            fields.append(_Field("patient", _SEX_WORDS.get(word, word), ""))
        return fields

    def _measured_fields(self, m: LesionMeasurements) -> list[_Field]:
        fields: list[_Field] = []
        if m.border_word:
            fields.append(_Field("border", f"{m.border_word} border", f"Border: {m.border_word}."))
        if m.colours:
            n = len(m.colours)
            listed = ", ".join(m.colours)
            variability = "uniform (1 colour)" if n == 1 else f"variegated ({n} colours)"
            fields.append(
                _Field(
                    "colours",
                    f"{n} colour{'s' if n > 1 else ''} ({listed})",
                    f"Lesion colour: {listed}. Colour variability: {variability}.",
                )
            )
        if m.asymmetric_axes is not None and self.mode == "report":  # captions stay short: asymmetry is for reports
            shape = _ASYMMETRY_WORDS[min(int(m.asymmetric_axes), 2)]
            fields.append(_Field("shape", "", f"Shape: {shape}."))
        if m.area_percent is not None:
            size = "under 1%" if m.area_percent < 0.5 else f"{round(m.area_percent)}%"
            fields.append(_Field("size", f"{size} of the image", f"Size: {size} of the image."))
        return fields

    def _fits(self, text: str) -> bool:
        return self.max_tokens is None or self.count_tokens(text) <= self.max_tokens

    def _render(self, kept: list[tuple[_Field, int]]) -> str:
        """Join the kept fields (with their random ranks) into the caption or report text."""
        groups: dict[str, list[tuple[_Field, int]]] = {}
        for field, rank in kept:
            group = "patterns" if self.mode == "report" and field.group.startswith("concept:") else field.group
            groups.setdefault(group, []).append((field, rank))
        if self.shuffle_phrases:
            order = sorted(groups, key=lambda g: (g != "diagnosis", min(r for _, r in groups[g])))
        elif self.mode == "report":
            order = sorted(groups, key=lambda g: _REPORT_GROUPS.index(g))
        else:
            order = list(groups)
        texts = [self._render_group(g, [f for f, _ in groups[g]]) for g in order]
        return (", " if self.mode == "caption" else " ").join(t for t in texts if t)

    def _render_group(self, group: str, fields: list[_Field]) -> str:
        if group == "patient":
            words = [f.caption for f in fields]
            if len(words) == 2:
                return " ".join(words) if self.mode == "caption" else f"Patient: {' '.join(words)}."
            if self.mode == "caption":
                return f"{words[0]} patient"
            return f"Patient: {words[0].replace('-year-old', ' years old')}."
        if group == "patterns":
            return f"Dermoscopic patterns: {', '.join(f.report for f in fields)}."
        return fields[0].caption if self.mode == "caption" else fields[0].report
