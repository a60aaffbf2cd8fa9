from __future__ import annotations

import pytest
import torch
from ignite.exceptions import NotComputableError
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.networks.nets import DenseNet

from monai_lesiongen.handlers import FrechetDistance, ImprovedPrecisionRecall, KernelDistance
from monai_lesiongen.metrics import (
    ClassifierFeatureExtractor,
    extract_features,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)

NUM_IMAGES = 24


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """Generated images (what the identity network passes through) and real images, a shifted set."""
    generator = torch.Generator().manual_seed(0)
    fake = torch.rand(NUM_IMAGES, 3, 16, 16, generator=generator)
    real = (torch.rand(NUM_IMAGES, 3, 16, 16, generator=generator) * 0.8 + 0.2).clamp(0, 1)
    return fake, real


@pytest.fixture(scope="module")
def extractor() -> ClassifierFeatureExtractor:
    torch.manual_seed(0)
    network = DenseNet(spatial_dims=2, in_channels=3, out_channels=2, init_features=8, growth_rate=4, block_config=(2,))
    return ClassifierFeatureExtractor(network, name="tiny")


def _evaluator(fake: torch.Tensor, real: torch.Tensor, **metrics) -> SupervisedEvaluator:
    data = [{"image": f, "label": r} for f, r in zip(fake, real, strict=True)]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=5, shuffle=False),
        network=torch.nn.Identity(),
        **metrics,
    )


def test_metrics_attach_to_supervised_evaluator(images, extractor) -> None:
    fake, real = images
    transform = from_engine(["pred", "label"])
    fid = FrechetDistance(extractor, output_transform=transform)
    kid = KernelDistance(extractor, output_transform=transform, num_subsets=10, subset_size=12)
    pr = ImprovedPrecisionRecall(extractor, output_transform=transform, k=3)
    evaluator = _evaluator(
        fake,
        real,
        key_val_metric={"fid": fid},
        additional_metrics={"kid": kid},
        metric_cmp_fn=lambda current, best: current < best,
    )
    pr.attach(evaluator, "pr")
    evaluator.run()

    real_feats, fake_feats = extract_features(extractor, real), extract_features(extractor, fake)
    metrics = evaluator.state.metrics
    assert metrics["fid"] == pytest.approx(frechet_distance(real_feats, fake_feats), rel=1e-5)
    assert metrics["fid"] > 0
    expected_kid = kernel_inception_distance(real_feats, fake_feats, num_subsets=10, subset_size=12)
    assert metrics["kid"] == pytest.approx(expected_kid.mean, rel=1e-5)
    expected_pr = precision_recall(real_feats, fake_feats, k=3)
    assert metrics["pr"] == {"precision": expected_pr.precision, "recall": expected_pr.recall}
    assert metrics["pr_precision"] == expected_pr.precision and metrics["pr_recall"] == expected_pr.recall
    assert evaluator.state.best_metric == metrics["fid"]


def test_reference_features_replace_real_images(images, extractor) -> None:
    fake, real = images
    real_feats = extract_features(extractor, real)
    reference_fid = FrechetDistance(
        extractor, output_transform=from_engine(["pred", "pred"]), reference_features=real_feats
    )
    evaluator = _evaluator(fake, real, key_val_metric={"fid": reference_fid})
    evaluator.run()
    expected = frechet_distance(real_feats, extract_features(extractor, fake))
    assert evaluator.state.metrics["fid"] == pytest.approx(expected, rel=1e-5)

    no_real = FrechetDistance(extractor, output_transform=lambda out: ([o["pred"] for o in out], None))
    evaluator = _evaluator(fake, real, key_val_metric={"fid": no_real})
    with pytest.raises(NotComputableError, match="saw no real images"):
        evaluator.run()


def test_features_as_outputs_without_extractor() -> None:
    generator = torch.Generator().manual_seed(1)
    fake, real = torch.randn(20, 6, generator=generator), torch.randn(20, 6, generator=generator) + 1.0
    fid = FrechetDistance(output_transform=lambda out: (out["pred"], out["label"]))
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(
            Dataset([{"image": f, "label": r} for f, r in zip(fake, real, strict=True)]), batch_size=4
        ),
        network=torch.nn.Identity(),
        decollate=False,
        key_val_metric={"fid": fid},
    )
    evaluator.run()
    assert evaluator.state.metrics["fid"] == pytest.approx(frechet_distance(real, fake), rel=1e-6)
    with pytest.raises(ValueError, match="reference_features must be"):
        FrechetDistance(reference_features=torch.zeros(3))
