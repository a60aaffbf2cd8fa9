"""LoRA on an imported Stable Diffusion UNet: only adapters train, save/load round trips, merging exports a plain UNet.

Merged and adapted outputs are compared in float32 with ``atol=1e-5``; a loaded adapter gives identical outputs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from ignite.handlers import Checkpoint
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import safe_open
from tiny_stable_diffusion import write_tiny_sd

from monai_lesiongen.networks import (
    ConditionedDiffusionUNet,
    LoraWeights,
    add_lora,
    load_lora,
    load_sd_unet,
    lora_state_dict,
    merge_lora,
    save_lora,
    widen_io_channels,
)

pytest.importorskip("diffusers")

ATOL = 1e-5
TARGETS = {"to_q", "to_k", "to_v", "out_proj"}


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("sd"))


def _inputs(channels: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return {
        "x": torch.randn(2, channels, 16, 16, generator=generator),
        "timesteps": torch.tensor([20, 700]),
        "context": torch.randn(2, 5, 24, generator=generator),
    }


def _train_step(network: torch.nn.Module, channels: int = 4, lr: float = 0.05) -> None:
    """One AdamW step on the parameters that require gradients (as the bundle's optimizer is built)."""
    network.train()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=lr)
    inputs = _inputs(channels)
    loss = (network(**inputs) - torch.randn_like(inputs["x"])).square().mean()
    loss.backward()
    optimizer.step()
    network.eval()


class Trained:
    """An imported UNet with rank-4 adapters after one training step, and its outputs (computed once per module)."""

    def __init__(self, sd_folder: Path) -> None:
        self.network = add_lora(load_sd_unet(sd_folder), rank=4, alpha=8)
        _train_step(self.network)
        with torch.no_grad():
            self.output = self.network(**_inputs())
            self.base_output = load_sd_unet(sd_folder).eval()(**_inputs())

    def copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.network)


@pytest.fixture(scope="module")
def trained(sd_folder: Path) -> Trained:
    return Trained(sd_folder)


def test_adapters_sit_on_every_attention_projection_and_start_as_identity(sd_folder: Path) -> None:
    network = load_sd_unet(sd_folder).eval()
    with torch.no_grad():
        before = network(**_inputs())
    projections = {name for name, module in network.named_modules() if name.rpartition(".")[2] in TARGETS}
    add_lora(network, rank=4, alpha=8).eval()
    adapted = {name for name, module in network.named_modules() if isinstance(module, BaseTunerLayer)}
    assert adapted == projections and len(adapted) == 4 * 2 * 4  # 4 transformers x (attn1, attn2) x 4 projections
    trainable = [name for name, p in network.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    with torch.no_grad():
        torch.testing.assert_close(network(**_inputs()), before, atol=0, rtol=0)  # B = 0 at first


def test_a_training_step_changes_only_the_adapters(sd_folder: Path) -> None:
    network = add_lora(load_sd_unet(sd_folder), rank=4, alpha=4, dropout=0.1)
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    _train_step(network)
    after = dict(network.named_parameters())
    base = [name for name in before if "lora_" not in name]
    adapters = [name for name in before if "lora_" in name]
    assert len(base) == len(load_sd_unet(sd_folder).state_dict())
    assert all(torch.equal(before[name], after[name]) for name in base)
    assert all(not torch.equal(before[name], after[name]) for name in adapters if ".lora_B." in name)


def test_save_and_load_give_identical_outputs(sd_folder: Path, trained: Trained, tmp_path: Path) -> None:
    path = save_lora(trained.network, tmp_path / "adapters" / "lora.safetensors")
    with safe_open(str(path), framework="pt") as stream:
        keys = list(stream.keys())
        assert stream.metadata()["lora_rank"] == "4"
    assert keys and all(".lora_A." in key or ".lora_B." in key for key in keys)  # adapter weights only
    fresh = load_lora(add_lora(load_sd_unet(sd_folder), rank=4, alpha=8), path).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(**_inputs()), trained.output, atol=0, rtol=0)


def test_loading_into_different_adapters_is_refused(sd_folder: Path, trained: Trained, tmp_path: Path) -> None:
    path = save_lora(trained.network, tmp_path / "lora.safetensors")
    with pytest.raises(ValueError, match="lora_rank=4"):
        load_lora(add_lora(load_sd_unet(sd_folder), rank=2, alpha=8), path)
    with pytest.raises(ValueError, match=r"unexpected \[.*to_v\.lora_A\.weight"):
        load_lora(add_lora(load_sd_unet(sd_folder), rank=4, alpha=8, target_modules=("to_q", "to_k")), path)
    with pytest.raises(ValueError, match="no LoRA adapters: call add_lora"):
        load_lora(load_sd_unet(sd_folder), path)
    with pytest.raises(ValueError, match="has LoRA adapters already"):
        add_lora(trained.network, rank=4, alpha=8)


def test_merge_gives_the_adapted_output_as_a_plain_unet(sd_folder: Path, trained: Trained) -> None:
    merged = merge_lora(trained.copy()).eval()
    assert type(merged) is ConditionedDiffusionUNet and not hasattr(merged, "peft_config")
    assert not any(isinstance(module, BaseTunerLayer) for module in merged.modules())
    plain = load_sd_unet(sd_folder)
    assert set(merged.state_dict()) == set(plain.state_dict())
    plain.load_state_dict(merged.state_dict())  # strict: loads into a freshly built MONAI UNet
    with torch.no_grad():
        output = merged(**_inputs())
    torch.testing.assert_close(output, trained.output, atol=ATOL, rtol=0)
    assert (output - trained.base_output).abs().max() > 1e-3  # the adapters did change the network


def test_trainable_modules_train_save_and_merge_with_the_adapters(sd_folder: Path, tmp_path: Path) -> None:
    """The SkinDualGen set-up: a widened UNet whose new input/output convolutions train with the adapters."""

    def widened() -> ConditionedDiffusionUNet:
        unet = widen_io_channels(load_sd_unet(sd_folder), 1, 1)
        return add_lora(unet, rank=4, alpha=8, trainable_modules=("conv_in", "out.2"))

    network = widened()
    conv_in = network.get_submodule("conv_in").modules_to_save["default"].conv.weight
    before = conv_in.detach().clone()
    _train_step(network, channels=5)
    assert not torch.equal(conv_in, before) and conv_in[:, 4].abs().sum() > 0  # the mask's input weights learn
    path = save_lora(network, tmp_path / "lora.safetensors")
    with safe_open(str(path), framework="pt") as stream:
        assert "conv_in.conv.weight" in set(stream.keys())
    restored = load_lora(widened(), path).eval()
    inputs = _inputs(channels=5)
    with torch.no_grad():
        expected = network(**inputs)
        torch.testing.assert_close(restored(**inputs), expected, atol=0, rtol=0)
        merged = merge_lora(restored).eval()
        torch.testing.assert_close(merged(**inputs), expected, atol=ATOL, rtol=0)
    assert set(merged.state_dict()) == set(load_sd_unet(sd_folder).state_dict())


def test_lora_weights_checkpoint_object_round_trips(sd_folder: Path, trained: Trained, tmp_path: Path) -> None:
    ema = trained.copy()  # as ignite's EMAHandler copies the network
    torch.save({"network": LoraWeights(ema).state_dict()}, tmp_path / "checkpoint.pt")
    assert set(LoraWeights(ema).state_dict()) == set(lora_state_dict(trained.network))
    fresh = add_lora(load_sd_unet(sd_folder), rank=4, alpha=8)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    Checkpoint.load_objects(to_load={"network": LoraWeights(fresh)}, checkpoint=checkpoint)  # as resuming does
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(**_inputs()), trained.output, atol=0, rtol=0)
