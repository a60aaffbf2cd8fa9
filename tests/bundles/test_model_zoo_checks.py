"""What MONAI model-zoo's bundle CI runs on a bundle, run on each of ours: the LICENSE, the network's input and
output shapes against the metadata, and the TorchScript export of the denoiser from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_metadata, verify_net_in_out

REPO = Path(__file__).resolve().parents[2]
BUNDLES = ["lesiongen", "classndiff", "skindualgen"]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"


def _files(name: str) -> tuple[Path, str, str]:
    bundle = REPO / "bundles" / name
    return bundle, str(bundle / "configs" / "metadata.json"), str(bundle / "configs" / "train.yaml")


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_has_its_apache_license(name: str) -> None:
    text = (REPO / "bundles" / name / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0" in text


@pytest.mark.skipif(not SCHEMA.is_file(), reason="MONAI's metadata schema is not in ../shared/monai")
@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_verifies(name: str) -> None:
    _, meta_file, _ = _files(name)
    verify_metadata(meta_file=meta_file, filepath=str(SCHEMA))  # raises on an invalid file


@pytest.mark.parametrize("name", BUNDLES)
def test_network_shapes_match_the_metadata(name: str) -> None:
    bundle, meta_file, config_file = _files(name)
    verify_net_in_out(net_id="network_def", meta_file=meta_file, config_file=config_file, bundle_root=str(bundle))


@pytest.mark.parametrize("name", BUNDLES)
def test_denoiser_exports_to_torchscript_with_the_checkpoint_weights(name: str, tmp_path: Path) -> None:
    bundle, meta_file, config_file = _files(name)
    parser = ConfigParser()
    parser.read_config(config_file)
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def").eval()
    with torch.no_grad():  # weights no fresh initialisation has, so that a match says the checkpoint was loaded
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    torch.save(network.state_dict(), tmp_path / "model.pt")
    size = parser.get_parsed_content("image_dim")
    ckpt_export(
        net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
        meta_file=meta_file, config_file=config_file, bundle_root=str(bundle), use_trace=True,
        input_shape=[1, network.in_channels, size, size],
    )  # fmt: skip
    exported = torch.jit.load(str(tmp_path / "model.ts"))
    sample = torch.randn(1, network.in_channels, size, size)
    with torch.no_grad():
        assert torch.allclose(exported(sample), network(sample), atol=1e-5)
