from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monai_lesiongen.networks.classifier import (
    NoiseAwareClassifier,
    SharedEncoderClassifier,
    benign_malignant_label_map,
    export_classifier,
    load_classifier,
    unique_parameters,
)


def _classifier(num_classes: int = 3) -> NoiseAwareClassifier:
    torch.manual_seed(0)
    classifier = NoiseAwareClassifier(
        num_classes=num_classes, spatial_size=(8, 8), channels=(16, 32), attention_levels=(False, True),
        num_head_channels=16, norm_num_groups=8,
    )  # fmt: skip
    with torch.no_grad():  # MONAI zero-initialises the residual branches: make the timestep matter from the start
        for parameter in classifier.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(0.0, 0.05)
    return classifier


def test_noise_aware_classifier_is_timestep_conditioned() -> None:
    classifier = _classifier().eval()
    x = torch.randn(4, 3, 8, 8)
    logits = classifier(x)
    assert logits.shape == (4, 3)
    assert torch.allclose(logits, classifier(x, torch.zeros(4, dtype=torch.long)))  # default: t = 0, a clean image
    assert not torch.allclose(logits, classifier(x, torch.full((4,), 500)), atol=1e-4)


def test_noise_aware_classifier_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        NoiseAwareClassifier(num_classes=1)
    with pytest.raises(ValueError, match="spatial_size"):
        NoiseAwareClassifier(spatial_size=(8, 8, 8))
    with pytest.raises(ValueError, match="norm_num_groups"):
        NoiseAwareClassifier(channels=(16, 24), attention_levels=(False, False), norm_num_groups=16)


def test_shared_encoder_classifier_holds_the_denoisers_parameters(tiny_denoiser) -> None:
    denoiser = tiny_denoiser(num_classes=4)
    classifier = SharedEncoderClassifier(denoiser, num_classes=2)
    denoiser_ids = {id(p) for p in denoiser.parameters()}
    own = unique_parameters(classifier, exclude=[denoiser])
    assert {id(p) for p in own} == {id(p) for p in classifier.head.parameters()}
    assert all(id(p) in denoiser_ids for p in classifier.parameters() if id(p) not in {id(q) for q in own})
    assert len(unique_parameters(denoiser, classifier)) == len(denoiser_ids) + len(own)
    logits = classifier(torch.randn(3, 3, 8, 8), torch.tensor([0, 10, 50]))
    assert logits.shape == (3, 2)
    logits.sum().backward()
    assert denoiser.conv_in.conv.weight.grad is not None and denoiser.conv_in.conv.weight.grad.abs().sum() > 0
    assert denoiser.class_embedding.weight.grad[4].abs().sum() > 0  # the encoder sees the null class
    assert denoiser.class_embedding.weight.grad[:4].abs().sum() == 0


def test_binary_label_map_follows_the_malignant_classes() -> None:
    assert benign_malignant_label_map() == [1, 1, 0, 0, 1, 0, 0]  # akiec, bcc, bkl, df, mel, nv, vasc
    with pytest.raises(ValueError, match="scc"):
        benign_malignant_label_map(("mel", "nv"), malignant={"mel", "scc"})


@pytest.mark.parametrize("shared", [False, True])
def test_export_rebuilds_a_standalone_network(tmp_path: Path, tiny_denoiser, shared: bool) -> None:
    classifier = SharedEncoderClassifier(tiny_denoiser(num_classes=4), 2) if shared else _classifier(2)
    classifier.eval()
    folder = export_classifier(
        classifier, tmp_path / "export", class_names=["benign", "malignant"], spatial_size=(8, 8)
    )
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([0, 30])
    rebuilt = load_classifier(folder)
    assert type(rebuilt) is type(classifier)
    assert torch.allclose(rebuilt(x, t), classifier(x, t), atol=1e-6)
    traced = torch.jit.load(str(folder / "classifier.ts"))
    assert torch.allclose(traced(x, t), classifier(x, t), atol=1e-5)
    if shared:  # only the encoder the classifier uses is written, not the decoder
        assert not any(k.startswith("up_blocks") for k in torch.load(folder / "classifier.pt", weights_only=True))
    with pytest.raises(ValueError, match="class_names"):
        export_classifier(classifier, tmp_path / "bad", class_names=["a", "b", "c"])
    with pytest.raises(FileNotFoundError, match="export_classifier"):
        load_classifier(tmp_path / "missing")
