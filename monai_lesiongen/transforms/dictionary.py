"""Dictionary transforms for text-conditioned and paired image+mask lesion generation.

`MeasureLesiond` measures the lesion on the loaded image and mask once (so that `CacheDataset` keeps the measurements
and a small image, not the full-size one); `BuildCaptiond` writes a caption from the record fields of a data
dictionary and those measurements; `Tokenized` turns the caption into token ids for the text encoder;
`ConditionClassd` turns the Fitzpatrick type and/or the diagnosis into the index of a class condition;
`StackImageMaskd` and `SplitImageMaskd` join an image and its mask into one tensor for paired generation
(SkinDualGen), and split them back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable

from monai_lesiongen.data.captions import CaptionBuilder
from monai_lesiongen.data.condition_classes import ConditionClasses
from monai_lesiongen.data.lesion_measurements import LesionMeasurements, measure_lesion

__all__ = [
    "MeasureLesiond",
    "MeasureLesionD",
    "MeasureLesionDict",
    "BuildCaptiond",
    "BuildCaptionD",
    "BuildCaptionDict",
    "ConditionClassd",
    "ConditionClassD",
    "ConditionClassDict",
    "Tokenized",
    "TokenizeD",
    "TokenizeDict",
    "StackImageMaskd",
    "StackImageMaskD",
    "StackImageMaskDict",
    "SplitImageMaskd",
    "SplitImageMaskD",
    "SplitImageMaskDict",
]


def _loaded(data: Mapping[Hashable, Any], key: Hashable, transform: str) -> torch.Tensor | np.ndarray | None:
    """The array under `key`, or None when the key is missing or None; a path that was never loaded is an error."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        raise ValueError(
            f"{transform}: '{key}' holds the path {str(value)!r}, not an image: load it first (LoadImaged) or set "
            "measure=False."
        )
    if not isinstance(value, torch.Tensor | np.ndarray):
        raise TypeError(f"{transform}: '{key}' must be an array or tensor, got {type(value).__name__}.")
    return value


def _with_meta(tensor: torch.Tensor, source: Any) -> torch.Tensor:
    """`tensor` as a MetaTensor with a copy of `source`'s meta data when `source` is a MetaTensor."""
    if not isinstance(source, MetaTensor):
        return tensor
    out = MetaTensor(tensor)
    out.copy_meta_from(source)
    return out


def _measure(
    data: Mapping[Hashable, Any], image_key: Hashable, mask_key: Hashable, max_intensity: float, transform: str
) -> LesionMeasurements | None:
    """`measure_lesion` on the loaded image and mask of `data`; None without an image."""
    image = _loaded(data, image_key, transform)
    if image is None:
        return None
    mask = _loaded(data, mask_key, transform)
    if image.ndim == 3 and image.shape[0] == 4:
        image = image[:3]
    try:
        return measure_lesion(image, mask, max_intensity=max_intensity)
    except ValueError as error:
        raise ValueError(
            f"{transform}: cannot measure the lesion of '{image_key}' {tuple(image.shape)} and '{mask_key}' "
            f"{None if mask is None else tuple(mask.shape)}: {error}"
        ) from error


class MeasureLesiond(MapTransform):
    """Measure the lesion on the loaded image and mask (`measure_lesion`: size, border, colours, shape, skin tone) and
    store the `LesionMeasurements` under `keys`, for `BuildCaptiond` (``measurements_key``).

    Deterministic, so a `CacheDataset` caches its result: place it after loading, then resize and drop the full-size
    mask, then the random `BuildCaptiond`; the cache then holds the measurements and the resized image instead of the
    full-size image and mask (for HAM10000 at 600x450, 3.2 MB per image as float32), and the lesion is measured once,
    not every epoch. A missing image gives None; a missing mask leaves only the skin tone measured.

    Args:
        keys: the key the measurements are written under (one key).
        image_key: key of the loaded channel-first RGB image ``(3, H, W)`` (an alpha channel is ignored).
        mask_key: key of the loaded lesion mask ``(1, H, W)``, nonzero inside the lesion.
        max_intensity: the intensity of white in the image (255 for 8-bit images, 1 for images scaled to [0, 1]).

    Raises:
        ValueError: when `keys` names more than one key, or `max_intensity` is not positive.
    """

    def __init__(
        self,
        keys: KeysCollection = "measurements",
        image_key: Hashable = "image",
        mask_key: Hashable = "mask",
        max_intensity: float = 255.0,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"MeasureLesiond writes one result: keys must name one key, got {self.keys}.")
        if max_intensity <= 0:
            raise ValueError(f"max_intensity must be positive, got {max_intensity}.")
        self.image_key = image_key
        self.mask_key = mask_key
        self.max_intensity = float(max_intensity)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.keys[0]] = _measure(d, self.image_key, self.mask_key, self.max_intensity, type(self).__name__)
        return d


class BuildCaptiond(Randomizable, MapTransform):
    """Write the caption of a record into its data dictionary.

    The record fields present in the dictionary (the `LesionRecord` keys ``label_name``, ``fitzpatrick``,
    ``concepts``, ``site``, ``age``, ``sex``, ``source``) go to `builder`. With `measure`, the lesion is measured on
    the loaded image and mask (`measure_lesion`: size, border, colours, shape, skin tone); place this transform after
    loading and before intensity scaling, or set `max_intensity`. A missing image skips the measurements, a missing
    mask (or a None one) leaves only the skin tone measured. With `measurements_key`, the measurements a
    `MeasureLesiond` stored there are used instead (measured once, and cacheable).

    The caption's randomness (phrase order, field dropout, empty captions) is the builder's:
    `set_random_state` reseeds it, so ``Compose(...).set_random_state(seed)`` and MONAI's `DataLoader` reach it.

    Args:
        keys: the key the caption is written under (one key).
        builder: builds the caption; None for a default `CaptionBuilder` (caption mode, 77 words, no augmentation).
        image_key: key of the loaded channel-first RGB image ``(3, H, W)`` (an alpha channel is ignored).
        mask_key: key of the loaded lesion mask ``(1, H, W)``, nonzero inside the lesion.
        measure: measure the lesion on the image and mask.
        max_intensity: the intensity of white in the image (255 for 8-bit images, 1 for images scaled to [0, 1]).
        measurements_key: the key of measurements stored by `MeasureLesiond`; when set, the image is not measured.

    Raises:
        ValueError: when `keys` names more than one key, or `max_intensity` is not positive.
    """

    def __init__(
        self,
        keys: KeysCollection = "caption",
        builder: CaptionBuilder | None = None,
        image_key: Hashable = "image",
        mask_key: Hashable = "mask",
        measure: bool = True,
        max_intensity: float = 255.0,
        measurements_key: Hashable | None = None,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"BuildCaptiond writes one caption: keys must name one key, got {self.keys}.")
        if max_intensity <= 0:
            raise ValueError(f"max_intensity must be positive, got {max_intensity}.")
        self.builder = builder if builder is not None else CaptionBuilder()
        self.image_key = image_key
        self.mask_key = mask_key
        self.measure = measure
        self.max_intensity = float(max_intensity)
        self.measurements_key = measurements_key

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | np.random.Generator | None = None
    ) -> BuildCaptiond:
        """Reseed the builder (see `CaptionBuilder.set_random_state`)."""
        self.builder.set_random_state(seed=seed, state=state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw ahead: the builder draws its choices per caption, once it knows the caption's fields."""

    def measurements(self, data: Mapping[Hashable, Any]) -> LesionMeasurements | None:
        """The lesion measurements of `data`: those under `measurements_key`, else measured now; None when measuring
        is off or there is no image.

        Raises:
            KeyError: when `measurements_key` is set but `data` does not hold it (no `MeasureLesiond` before).
            ValueError: when the image or mask is a path that was never loaded, or they cannot be measured (the
                message names the keys).
        """
        if not self.measure:
            return None
        if self.measurements_key is not None:
            if self.measurements_key not in data:
                raise KeyError(
                    f"{type(self).__name__}: no '{self.measurements_key}' in the data: put a MeasureLesiond writing it "
                    "before this transform, or leave measurements_key unset to measure here."
                )
            stored: LesionMeasurements | None = data[self.measurements_key]
            return stored
        return _measure(data, self.image_key, self.mask_key, self.max_intensity, type(self).__name__)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.keys[0]] = self.builder(d, self.measurements(d))
        return d


class ConditionClassd(MapTransform):
    """Write the class condition of a record (`ConditionClasses`: its Fitzpatrick type, its diagnosis or both, as one
    class index) under `output_key`, for a denoiser that takes a class condition beside its caption.

    A record without a Fitzpatrick type (the key missing, as `to_datalist` leaves it, or None) gets the "unknown
    type" class, so such images teach the model "any skin" rather than a wrong type. Without a class condition
    (neither diagnosis nor skin type) nothing is written.

    Args:
        classes: the class condition.
        label_key: the key of the diagnosis index.
        fitzpatrick_key: the key of the Fitzpatrick type.
        output_key: the key the class index is written under.

    Raises:
        ValueError: for a type other than 1-6 or a diagnosis out of range (naming the record's ``id`` and the field).
    """

    def __init__(
        self,
        classes: ConditionClasses,
        label_key: Hashable = "label",
        fitzpatrick_key: Hashable = "fitzpatrick",
        output_key: Hashable = "condition_class",
    ) -> None:
        super().__init__([label_key, fitzpatrick_key], allow_missing_keys=True)
        self.classes = classes
        self.label_key = label_key
        self.fitzpatrick_key = fitzpatrick_key
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.classes.enabled:
            return d
        try:
            d[self.output_key] = self.classes(d.get(self.label_key), d.get(self.fitzpatrick_key))
        except ValueError as error:
            fields = f"'{self.label_key}' / '{self.fitzpatrick_key}'"
            raise ValueError(f"ConditionClassd: record {d.get('id', '?')!r}, field {fields}: {error}") from error
        return d


class Tokenized(MapTransform):
    """Tokenize caption strings with a Hugging Face tokenizer, for the text encoder.

    For each key, writes the token ids and the attention mask, padded or truncated to `max_length`, as
    ``torch.long`` tensors ``(max_length,)`` under ``key + ids_suffix`` and ``key + mask_suffix``. The empty caption
    gives the ids of the null condition of classifier-free guidance.

    Args:
        keys: keys of the caption strings.
        tokenizer: a Hugging Face tokenizer, or the local folder to load one from (nothing is downloaded); None for
            the tokenizer of the shipped ``all-MiniLM-L6-v2`` text encoder.
        max_length: token length (77 as in CLIP).
        ids_suffix: appended to the key for the token ids.
        mask_suffix: appended to the key for the attention mask.
        allow_missing_keys: don't raise an exception if a key is missing.

    Raises:
        ValueError: when `max_length` is under 2 or the suffixes are empty or equal.
    """

    def __init__(
        self,
        keys: KeysCollection = "caption",
        tokenizer: Callable[..., Any] | str | os.PathLike | None = None,
        max_length: int = 77,
        ids_suffix: str = "_ids",
        mask_suffix: str = "_attention_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for special tokens), got {max_length}.")
        if not ids_suffix or not mask_suffix or ids_suffix == mask_suffix:
            raise ValueError(
                f"ids_suffix and mask_suffix must be non-empty and differ, got {ids_suffix!r} and {mask_suffix!r}."
            )
        if tokenizer is None or isinstance(tokenizer, str | os.PathLike):
            from transformers import AutoTokenizer

            if tokenizer is None:
                from monai_lesiongen.networks.text_encoder import default_text_encoder_path

                tokenizer = default_text_encoder_path()
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ids_suffix = ids_suffix
        self.mask_suffix = mask_suffix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            text = d[key]
            if not isinstance(text, str):
                raise TypeError(f"Tokenized: '{key}' must hold a caption string, got {type(text).__name__}.")
            encoded = self.tokenizer(
                text, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            d[f"{key}{self.ids_suffix}"] = torch.as_tensor(encoded["input_ids"][0], dtype=torch.long)
            d[f"{key}{self.mask_suffix}"] = torch.as_tensor(encoded["attention_mask"][0], dtype=torch.long)
        return d


class StackImageMaskd(MapTransform):
    """Stack an image and its lesion mask into one tensor, for generating both together (SkinDualGen).

    The image ``(C, H, W)`` and the binarised mask ``(M, H, W)`` (nonzero inside the lesion; ``(H, W)`` is taken
    as one channel), rescaled to `mask_value_range`, are concatenated on the channel axis into ``(C + M, H, W)``.
    A floating image keeps its dtype; any other becomes float32. The output keeps the image's meta data.
    `SplitImageMaskd` is the inverse.

    Args:
        image_key: key of the image.
        mask_key: key of the mask.
        output_key: key of the stacked tensor (the image key by default, so that the network input key stays).
        mask_value_range: the values of background and lesion in the stacked mask channel; match the image's
            intensity range (e.g. ``(-1, 1)`` for images scaled to [-1, 1]).

    Raises:
        ValueError: when `mask_value_range` is not two different numbers.
    """

    def __init__(
        self,
        image_key: Hashable = "image",
        mask_key: Hashable = "mask",
        output_key: Hashable = "image",
        mask_value_range: Sequence[float] = (-1.0, 1.0),
    ) -> None:
        super().__init__(keys=(image_key, mask_key))
        if len(mask_value_range) != 2 or mask_value_range[0] == mask_value_range[1]:
            raise ValueError(f"mask_value_range must be two different numbers (low, high), got {mask_value_range}.")
        self.image_key = image_key
        self.mask_key = mask_key
        self.output_key = output_key
        self.mask_value_range = (float(mask_value_range[0]), float(mask_value_range[1]))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            if key not in d:
                raise KeyError(f"StackImageMaskd: key '{key}' is missing from the data (keys: {list(d)}).")
        image_in, mask_in = d[self.image_key], d[self.mask_key]
        image = torch.as_tensor(image_in.as_tensor() if isinstance(image_in, MetaTensor) else image_in)
        mask = torch.as_tensor(mask_in.as_tensor() if isinstance(mask_in, MetaTensor) else mask_in)
        if mask.ndim == 2:
            mask = mask[None]
        if image.ndim != 3 or mask.ndim != 3:
            raise ValueError(
                f"StackImageMaskd: '{self.image_key}' must be (C, H, W) and '{self.mask_key}' (M, H, W) or (H, W), "
                f"got {tuple(image.shape)} and {tuple(mask.shape)}."
            )
        if image.shape[1:] != mask.shape[1:]:
            raise ValueError(
                f"StackImageMaskd: '{self.image_key}' {tuple(image.shape)} and '{self.mask_key}' "
                f"{tuple(mask.shape)} differ in spatial size; resize both the same way before stacking."
            )
        dtype = image.dtype if image.is_floating_point() else torch.float32
        low, high = self.mask_value_range
        channels = low + (high - low) * (mask > 0).to(dtype=dtype, device=image.device)
        d[self.output_key] = _with_meta(torch.cat([image.to(dtype), channels], dim=0), image_in)
        return d


class SplitImageMaskd(MapTransform):
    """Split a stacked image+mask tensor (`StackImageMaskd`, or a paired generator's output) into image and mask.

    The last `mask_channels` channels are thresholded to a {0, 1} mask (in the tensor's floating dtype); the others
    are the image. Both keep the stacked tensor's meta data.

    Args:
        key: key of the stacked tensor ``(C + M, H, W)``.
        image_key: key the image ``(C, H, W)`` is written under.
        mask_key: key the mask ``(M, H, W)`` is written under.
        mask_channels: number of mask channels M at the end.
        threshold: mask values above it are lesion (0 for the default ``(-1, 1)`` range of `StackImageMaskd`;
            use 0.5 for a ``(0, 1)`` range).
        allow_missing_keys: don't raise an exception if `key` is missing.

    Raises:
        ValueError: when `mask_channels` is under 1.
    """

    def __init__(
        self,
        key: Hashable = "image",
        image_key: Hashable = "image",
        mask_key: Hashable = "mask",
        mask_channels: int = 1,
        threshold: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys=key, allow_missing_keys=allow_missing_keys)
        if mask_channels < 1:
            raise ValueError(f"mask_channels must be at least 1, got {mask_channels}.")
        self.image_key = image_key
        self.mask_key = mask_key
        self.mask_channels = mask_channels
        self.threshold = float(threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            stacked_in = d[key]
            stacked = torch.as_tensor(stacked_in.as_tensor() if isinstance(stacked_in, MetaTensor) else stacked_in)
            if stacked.ndim != 3 or stacked.shape[0] <= self.mask_channels:
                raise ValueError(
                    f"SplitImageMaskd: '{key}' must be (C + {self.mask_channels}, H, W) with C >= 1, "
                    f"got {tuple(stacked.shape)}."
                )
            dtype = stacked.dtype if stacked.is_floating_point() else torch.float32
            image = stacked[: -self.mask_channels].clone()
            mask = (stacked[-self.mask_channels :] > self.threshold).to(dtype)
            d[self.image_key] = _with_meta(image, stacked_in)
            d[self.mask_key] = _with_meta(mask, stacked_in)
        return d


MeasureLesionD = MeasureLesionDict = MeasureLesiond
BuildCaptionD = BuildCaptionDict = BuildCaptiond
ConditionClassD = ConditionClassDict = ConditionClassd
TokenizeD = TokenizeDict = Tokenized
StackImageMaskD = StackImageMaskDict = StackImageMaskd
SplitImageMaskD = SplitImageMaskDict = SplitImageMaskd
