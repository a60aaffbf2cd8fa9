"""Writing generated image + mask pairs as an ISIC 2018 Task 1 folder, so they read back like real pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from monai_lesiongen.inferers.generation import SyntheticDatasetWriter
from monai_lesiongen.utils.orientation import to_pil_image

__all__ = ["PairedDatasetWriter", "ISIC2018_TASK1_INPUT", "ISIC2018_TASK1_TRUTH"]

ISIC2018_TASK1_INPUT = "ISIC2018_Task1-2_Training_Input"
ISIC2018_TASK1_TRUTH = "ISIC2018_Task1_Training_GroundTruth"


class PairedDatasetWriter(SyntheticDatasetWriter):
    """A `SyntheticDatasetWriter` for a model that generates the image and its mask together.

    Each sample (C + M, H, W) is split into the image (first C channels) and the mask (last M channels, lesion
    where the value is above `mask_threshold`), written with the ISIC names
    ``ISIC2018_Task1-2_Training_Input/ISIC_9NNNNNN.png`` and
    ``ISIC2018_Task1_Training_GroundTruth/ISIC_9NNNNNN_segmentation.png`` (0/255), so the output folder reads back
    with the ISIC 2018 Task 1 reader. The manifest lists both files.

    Args:
        image_channels: C, the image channels of a sample.
        mask_threshold: the mask threshold in [0, 1].
        first_index: the number of the first image (9000000 keeps synthetic ids apart from ISIC's real ones).
        Other arguments as `SyntheticDatasetWriter` (PNG only).
    """

    def __init__(
        self,
        *args: Any,
        image_channels: int = 3,
        mask_threshold: float = 0.5,
        first_index: int = 9000000,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.output_ext != ".png":
            raise ValueError(f"paired samples are written as PNG (the ISIC layout), not {self.output_ext!r}.")
        self.image_channels = image_channels
        self.mask_threshold = mask_threshold
        self.first_index = first_index

    def jobs(self) -> list[dict[str, Any]]:
        entries = []
        for index, entry in enumerate(super().jobs()):
            name = f"ISIC_{self.first_index + index:07d}"
            entries.append(
                {
                    "file": f"{ISIC2018_TASK1_INPUT}/{name}.png",
                    "mask": f"{ISIC2018_TASK1_TRUTH}/{name}_segmentation.png",
                    "seed": entry["seed"],
                    "row": entry["row"],
                }
            )
        return entries

    def save(self, image: torch.Tensor, entry: Mapping[str, Any]) -> None:
        mask = (image[self.image_channels :].amax(0) > self.mask_threshold).float()
        mask_path = self.output_dir / entry["mask"]
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.partial_path(mask_path)
        to_pil_image(mask).save(tmp, format="PNG")
        tmp.replace(mask_path)
        # the image last: its presence marks the pair as done
        self._save(image[: self.image_channels], self.output_dir / entry["file"])
