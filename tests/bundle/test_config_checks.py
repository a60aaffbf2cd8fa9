"""Configuration checks: overrides against the config files, text width against the denoiser, weights files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from monai_lesiongen.bundle import (
    ConfigError,
    check_command_line,
    check_overrides,
    check_text_condition,
    load_network_weights,
)

REPO = Path(__file__).resolve().parents[2]
TRAIN_YAML = REPO / "bundles" / "lesiongen" / "configs" / "train.yaml"
MONAI_MAIN = str(Path(sys.modules["monai"].__file__).parent / "bundle" / "__main__.py")

CONFIG = {
    "num_epochs": 20,
    "lr": 0.001,
    "resume": True,
    "dataset": "demo",
    "plan_classes": None,
    "device": "$torch.device('cpu')",
    "network_def": {"_target_": "DiffusionModelUNet", "channels": [32, 64, 64]},
    "train": {"handlers": [{"_target_": "StatsHandler", "tag_name": "loss"}]},
}


def test_known_keys_and_values_of_the_default_types_pass() -> None:
    # an integer is a number; a null default takes anything; an expression default is not checked
    check_overrides(
        CONFIG,
        {"num_epochs": 3, "lr": 1, "resume": False, "dataset": "ham10000", "plan_classes": ["mel"], "device": "cuda"},
    )
    # a new argument of an existing component, a list item, an expression value
    check_overrides(CONFIG, {"network_def#norm_num_groups": 8, "train#handlers#0#tag_name": "x", "lr": "$1e-4"})


def test_an_unknown_key_is_named_with_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'num_epoch'.*Did you mean 'num_epochs'"):
        check_overrides(CONFIG, {"num_epoch": 5})
    with pytest.raises(ConfigError, match=r"no 'hendlers' under 'train'.*'train#handlers'"):
        check_overrides(CONFIG, {"train#hendlers#0#tag_name": "x"})


def test_a_value_of_the_wrong_type_is_named_with_its_default() -> None:
    with pytest.raises(ConfigError, match=r"'num_epochs' must be an integer like its default 20, got 'five'"):
        check_overrides(CONFIG, {"num_epochs": "five"})
    with pytest.raises(ConfigError, match=r"'resume' must be a boolean"):
        check_overrides(CONFIG, {"resume": 0})
    with pytest.raises(ConfigError, match=r"'network_def#channels' must be a list"):
        check_overrides(CONFIG, {"network_def#channels": 32})


def test_every_bad_override_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        check_overrides(CONFIG, {"num_epoch": 5, "lr": "fast", "batch": 4}, ["train.yaml"])
    message = str(error.value)
    assert "num_epoch" in message and "'lr'" in message and "'batch'" in message and "train.yaml" in message


def test_the_command_line_of_monai_bundle_run_is_checked_against_its_config_files(tmp_path: Path) -> None:
    base = [MONAI_MAIN, "run", "training", "--config_file", str(TRAIN_YAML), "--bundle_root", str(tmp_path)]
    check_command_line([*base, "--num_epochs", "2", "--network_def#norm_num_groups=8", "--resume", "False"])
    with pytest.raises(ConfigError, match="Did you mean 'num_epochs'"):
        check_command_line([*base, "--num_epoch", "2"])
    with pytest.raises(ConfigError, match="'batch_size' must be an integer"):
        check_command_line([*base, "--batch_size=sixteen"])
    args_file = tmp_path / "args.yaml"
    args_file.write_text(yaml.safe_dump({"config_file": str(TRAIN_YAML), "learning_rate": 0.1}))
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        check_command_line([MONAI_MAIN, "run", "training", "--args_file", str(args_file)])
    # not a `python -m monai.bundle` process (pytest, a notebook): nothing to check
    check_command_line(["pytest", "--num_epoch", "2"])


def test_text_width_must_match_the_cross_attention(tiny_denoiser, text_encoder) -> None:
    check_text_condition(tiny_denoiser(cross_attention_dim=text_encoder.hidden_size), text_encoder)
    check_text_condition(tiny_denoiser(), None)
    with pytest.raises(ConfigError, match=r"takes 64-d context.*gives 384-d states.*network_def#cross_attention_dim"):
        check_text_condition(tiny_denoiser(cross_attention_dim=64), text_encoder)
    with pytest.raises(ConfigError, match="has no cross-attention"):
        check_text_condition(tiny_denoiser(), text_encoder)


def test_weights_that_do_not_fit_name_the_key_and_the_shapes(tiny_denoiser, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'ckpt_path': weights file .*missing.pt does not exist"):
        load_network_weights(tiny_denoiser(), tmp_path / "missing.pt")
    trained = tiny_denoiser(cross_attention_dim=64, seed=1)
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ConfigError, match=r"(?s)shapes differ.*file \(32, 64\), network \(32, 384\)"):
        load_network_weights(tiny_denoiser(cross_attention_dim=384), tmp_path / "model.pt")
    with pytest.raises(ConfigError, match="tensors missing"):
        load_network_weights(tiny_denoiser(cross_attention_dim=64, num_classes=3), tmp_path / "model.pt")
    network = tiny_denoiser(cross_attention_dim=64, seed=2)
    load_network_weights(network, tmp_path / "model.pt")
    assert all(
        torch.equal(a, b) for a, b in zip(network.state_dict().values(), trained.state_dict().values(), strict=True)
    )
