"""A bad bundle configuration fails before any data is read or any step is trained, naming the key and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_workflow import bundle_workflow, tiny_settings

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
TINY = tiny_settings(num_images=24)


def _messages(error: BaseException) -> str:
    """The messages of an exception and of its causes: MONAI wraps a failing config expression in a RuntimeError."""
    messages = []
    current: BaseException | None = error
    while current is not None:
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(messages)


def _run_expecting_error(bundle: str, root: Path, configs: list[str], run_id: str, **override) -> str:
    workflow = bundle_workflow(BUNDLES / bundle, root, configs, run_id, "train", {**TINY, **override})
    with pytest.raises(Exception) as error:  # noqa: B017 (the cause chain is checked below)
        workflow.run()
    return _messages(error.value)


def _nothing_was_read_or_trained(root: Path) -> bool:
    return not (root / "data").exists() and not (root / "outputs" / "checkpoints").exists()


def test_a_typo_on_the_command_line_stops_the_run_before_the_data_is_read(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "monai.bundle", "run", "training",
        "--config_file", str(BUNDLES / "lesiongen" / "configs" / "train.yaml"),
        "--bundle_root", str(tmp_path), "--num_epoch", "1", "--batch_size", "sixteen",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert "unknown key 'num_epoch'" in result.stderr and "Did you mean 'num_epochs'" in result.stderr
    assert "'batch_size' must be an integer like its default 16, got 'sixteen'" in result.stderr
    assert _nothing_was_read_or_trained(tmp_path)


def test_a_cross_attention_width_that_does_not_match_the_text_encoder_is_refused(tmp_path: Path) -> None:
    message = _run_expecting_error("lesiongen", tmp_path, ["train.yaml"], "training", **{
        "network_def#cross_attention_dim": 64
    })  # fmt: skip
    assert "takes 64-d context" in message and "gives 384-d states" in message
    assert "'$@text_encoder.hidden_size'" in message
    assert _nothing_was_read_or_trained(tmp_path)


def test_a_missing_dataset_folder_names_the_key(tmp_path: Path) -> None:
    message = _run_expecting_error(
        "lesiongen", tmp_path, ["train.yaml"], "training", dataset="ham10000", dataset_dir=str(tmp_path / "nowhere")
    )
    assert f"dataset_dir {tmp_path / 'nowhere'} does not exist" in message and "'dataset_dir'" in message
    assert not (tmp_path / "outputs" / "checkpoints").exists()


def test_an_unknown_dataset_lists_the_readers(tmp_path: Path) -> None:
    message = _run_expecting_error("skindualgen", tmp_path, ["train.yaml"], "training", dataset="ham1000")
    assert "unknown dataset 'ham1000'" in message and "'isic2018_task1'" in message


def test_inference_without_trained_weights_says_what_to_run(tmp_path: Path) -> None:
    message = _run_expecting_error("lesiongen", tmp_path, ["train.yaml", "inference.yaml"], "inferring")
    assert "'ckpt_path': weights file" in message and "run the bundle's training first" in message


@pytest.mark.parametrize(
    ("bundle", "override", "expected"),
    [
        ("lesiongen", {"plan_classes": ["melanoma"]}, "['melanoma'] are not among the classes ['akiec'"),
        ("lesiongen", {"plan_fitzpatrick_types": [0, 7]}, "Fitzpatrick types must be 1-6, got [0, 7]"),
        ("skindualgen", {"plan_rows": [{"caption": "x", "label_name": "mole"}]}, "unknown diagnosis 'mole'"),
        ("classndiff", {"plan_skin_groups": ["dark"]}, "unknown skin-type groups ['dark']; choose from ['lighter'"),
        ("lesiongen", {"plan_gaps": {"mode": "even"}}, "gap-filling mode must be one of ['uniform', 'top_up'"),
        ("skindualgen", {"plan_gaps": {"mode": "top_up"}, "plan_rows": [{"label_name": "mel"}]}, "one plan source"),
        ("classndiff", {"plan_gaps": {"mode": "top_up"}}, "mode 'top_up' needs a target"),
    ],
)
def test_a_generation_plan_with_unknown_conditions_lists_the_valid_ones(
    bundle: str, override: dict, expected: str, tmp_path: Path
) -> None:
    configs = ["train.yaml", "inference.yaml"]
    workflow = bundle_workflow(BUNDLES / bundle, tmp_path, configs, "inferring", "infer", {**TINY, **override})
    with pytest.raises(Exception) as error:  # noqa: B017 (the cause chain is checked below)
        workflow.parser.get_parsed_content("inference_plan")
    assert expected in _messages(error.value)
