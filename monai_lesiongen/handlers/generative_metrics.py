"""Ignite metrics that accumulate image features over an engine run and score generated against real images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, convert_to_tensor, min_version, optional_import
from torch import nn

from monai_lesiongen.metrics.generative import frechet_distance, kernel_inception_distance, precision_recall

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
NotComputableError, _ = optional_import(
    "ignite.exceptions", IgniteInfo.OPT_IMPORT_VERSION, min_version, "NotComputableError"
)

if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.metrics import Metric
    from ignite.metrics.metric import reinit__is_reduced
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric", as_type="base")
    reinit__is_reduced, _ = optional_import(
        "ignite.metrics.metric", IgniteInfo.OPT_IMPORT_VERSION, min_version, "reinit__is_reduced", as_type="decorator"
    )

__all__ = ["FeatureStatisticsMetric", "FrechetDistance", "KernelDistance", "ImprovedPrecisionRecall"]


class FeatureStatisticsMetric(Metric):
    """
    Base of the metrics that compare the feature distribution of generated images with that of real images.

    Every iteration, ``output_transform(engine.state.output)`` gives ``(fake_images, real_images)``, each a batch
    tensor or a list of channel-first tensors (as ``monai.handlers.from_engine`` returns them), and ``real_images``
    may be ``None``. Both are passed through ``feature_extractor`` and the features are kept; at the end of the run
    (the epoch, by default) :meth:`compute_from_features` scores the two sets. Real features can instead be given
    once as ``reference_features`` (computed ahead with ``monai_lesiongen.metrics.extract_features``), and then
    real images in the output are not featurised.

    In distributed runs the features of all ranks are gathered before scoring; the ranks must hold the same number
    of samples (as ``DistributedSampler`` arranges).

    Args:
        feature_extractor: maps a batch of images to (B, F) features, e.g.
            ``monai_lesiongen.metrics.InceptionV3FeatureExtractor()``; run without gradients on the device of its
            parameters. ``None`` when the outputs already are feature vectors.
        output_transform: maps ``engine.state.output`` to ``(fake_images, real_images_or_None)``, e.g.
            ``monai.handlers.from_engine(["pred", "image"])``.
        reference_features: (N, F) features of the real images, used in place of real images from the output.
        device: where the accumulated features are kept.

    Raises:
        ValueError: when ``reference_features`` is not 2D.
    """

    def __init__(
        self,
        feature_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: Callable = lambda x: x,
        reference_features: torch.Tensor | np.ndarray | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.feature_extractor = feature_extractor
        self.reference_features: torch.Tensor | None = None
        if reference_features is not None:
            reference = torch.as_tensor(reference_features).detach().float()
            if reference.ndim != 2:
                raise ValueError(f"reference_features must be (N, F), got shape {tuple(reference.shape)}.")
            self.reference_features = reference.to(device)
        self._fake_features: list[torch.Tensor] = []
        self._real_features: list[torch.Tensor] = []
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    @reinit__is_reduced
    def reset(self) -> None:
        self._fake_features = []
        self._real_features = []

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        """
        Args:
            output: ``(fake_images, real_images_or_None)``.

        Raises:
            ValueError: when ``output`` is not a pair.
        """
        if not isinstance(output, Sequence) or len(output) != 2:
            raise ValueError(
                f"{type(self).__name__} expects output_transform to give (fake_images, real_images_or_None), "
                f"got {type(output).__name__}."
            )
        fake, real = output
        self._fake_features.append(self._features(fake))
        if real is not None and self.reference_features is None:
            self._real_features.append(self._features(real))

    def _features(self, images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(images, (list, tuple)):
            images = torch.stack([convert_to_tensor(i, track_meta=False) for i in images])
        batch = convert_to_tensor(images, track_meta=False)
        if self.feature_extractor is not None:
            if isinstance(self.feature_extractor, nn.Module):
                param = next(iter(self.feature_extractor.parameters()), None)
                if param is not None:
                    batch = batch.to(param.device)
            with torch.no_grad():
                batch = self.feature_extractor(batch)
        return batch.detach().float().reshape(batch.shape[0], -1).to(self._device)

    def _gathered(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        if not features:
            return None
        return idist.all_gather(torch.cat(features))

    def compute(self) -> Any:
        """
        Raises:
            NotComputableError: before any update, or with neither real images nor ``reference_features``.
        """
        fake = self._gathered(self._fake_features)
        if fake is None:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed.")
        real = self.reference_features if self.reference_features is not None else self._gathered(self._real_features)
        if real is None:
            raise NotComputableError(
                f"{type(self).__name__} saw no real images: return them from output_transform "
                "or pass reference_features."
            )
        return self.compute_from_features(real, fake)

    def compute_from_features(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> Any:
        """Score the generated features against the real ones; subclasses define the figure."""
        raise NotImplementedError(f"subclass {type(self).__name__} must implement compute_from_features().")


class FrechetDistance(FeatureStatisticsMetric):
    """
    Frechet (inception) distance of the generated images to the real ones, lower is better; see
    :func:`monai_lesiongen.metrics.frechet_distance`. As a ``key_val_metric`` pass
    ``metric_cmp_fn=lambda current, best: current < best`` to the evaluator.
    """

    def compute_from_features(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
        return frechet_distance(real_features, fake_features)


class KernelDistance(FeatureStatisticsMetric):
    """
    Kernel (inception) distance, the mean over subsets of the unbiased polynomial-kernel MMD^2, lower is better; see
    :func:`monai_lesiongen.metrics.kernel_inception_distance` (which also gives its standard deviation).

    Args:
        feature_extractor: as in :class:`FeatureStatisticsMetric`.
        output_transform: as in :class:`FeatureStatisticsMetric`.
        reference_features: as in :class:`FeatureStatisticsMetric`.
        num_subsets: random subsets.
        subset_size: samples per subset (capped at the smaller set).
        degree: polynomial kernel degree.
        seed: seed of the subset sampling.
        device: as in :class:`FeatureStatisticsMetric`.
    """

    def __init__(
        self,
        feature_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: Callable = lambda x: x,
        reference_features: torch.Tensor | np.ndarray | None = None,
        num_subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.degree = degree
        self.seed = seed
        super().__init__(feature_extractor, output_transform, reference_features, device)

    def compute_from_features(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
        result = kernel_inception_distance(
            real_features,
            fake_features,
            num_subsets=self.num_subsets,
            subset_size=self.subset_size,
            degree=self.degree,
            seed=self.seed,
        )
        return result.mean


class ImprovedPrecisionRecall(FeatureStatisticsMetric):
    """
    Improved precision and recall (k-NN manifolds); see :func:`monai_lesiongen.metrics.precision_recall`.

    ``compute()`` returns ``{"precision": p, "recall": r}``; once attached under ``name`` the engine's
    ``state.metrics`` holds that dict under ``name`` and the scalars under ``f"{name}_precision"`` and
    ``f"{name}_recall"`` (usable as a key metric).

    Args:
        feature_extractor: as in :class:`FeatureStatisticsMetric`.
        output_transform: as in :class:`FeatureStatisticsMetric`.
        reference_features: as in :class:`FeatureStatisticsMetric`.
        k: neighbourhood size.
        device: as in :class:`FeatureStatisticsMetric`.
    """

    def __init__(
        self,
        feature_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: Callable = lambda x: x,
        reference_features: torch.Tensor | np.ndarray | None = None,
        k: int = 3,
        device: str | torch.device = "cpu",
    ) -> None:
        self.k = k
        super().__init__(feature_extractor, output_transform, reference_features, device)

    def compute_from_features(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> dict[str, float]:
        result = precision_recall(real_features, fake_features, k=self.k)
        return {"precision": result.precision, "recall": result.recall}

    def completed(self, engine: Engine, name: str) -> None:
        result = self.compute()
        engine.state.metrics[name] = result
        for key, value in result.items():
            engine.state.metrics[f"{name}_{key}"] = value
