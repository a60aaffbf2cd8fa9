"""The skindualgen bundle end to end with tiny settings: train on paired data, generate an ISIC Task 1 folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_workflow import bundle_workflow, tiny_settings
from monai.bundle import ConfigWorkflow

from monai_lesiongen.data import load_records, require_masks
from monai_lesiongen.data.readers import read_dataset

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "skindualgen"
TINY = tiny_settings(num_images=40)


def _run(root: Path, files: list[str], run_id: str, workflow_type: str, **override) -> ConfigWorkflow:
    workflow = bundle_workflow(BUNDLE, root, files, run_id, workflow_type, {**TINY, **override})
    workflow.run()
    workflow.finalize()
    return workflow


def test_train_and_generate_pairs_that_read_back(tmp_path: Path) -> None:
    workflow = _run(tmp_path, ["train.yaml"], "training", "train")
    assert workflow.check_properties() in (None, [])
    network = workflow.parser.get_parsed_content("network")
    assert network.in_channels == 4 and network.out_channels == 4
    assert type(workflow.parser.get_parsed_content("scheduler")).__name__ == "RFlowScheduler"  # the default
    output = workflow.parser.get_parsed_content("train#trainer").state.output[0]
    assert "loss_mask" in output and float(output["loss_mask"]) > 0  # the mask losses under rectified flow
    assert (tmp_path / "outputs" / "checkpoints" / "model_ema.pt").is_file()
    assert (tmp_path / "outputs" / "checkpoints" / "model_best.pt").is_file()  # what inference loads
    assert (tmp_path / "outputs" / "samples" / "samples_epoch=1.png").is_file()
    _run(
        tmp_path, ["train.yaml", "inference.yaml"], "inferring", "infer",
        num_samples=1, num_inference_steps=2, plan_classes=["df", "vasc"], plan_fitzpatrick_types=[2],
    )  # fmt: skip
    records = read_dataset("isic2018_task1", tmp_path / "outputs" / "synthetic")
    assert len(records) == 2 and all(r["mask"] for r in records)
    quick = {"eval_inception": False, "eval_domain_features": False, "eval_diversity": False, "eval_downstream": False}
    _run(
        tmp_path, ["train.yaml", "inference.yaml", "evaluate.yaml"], "evaluating", "infer",
        eval_seeds=[0], eval_ratios=[0.0, 1.0], eval_epochs=1, eval_segmentation_epochs=1, **quick,
    )  # fmt: skip
    report = json.loads((tmp_path / "outputs" / "report" / "report.json").read_text())
    conditions = {c["name"]: c for c in report["segmentation"]["conditions"]}
    assert len(conditions) == 2  # real, real + synthetic
    for condition in conditions.values():
        assert 0.0 <= condition["dice"]["mean"] <= 1.0 and 0.0 <= condition["threshold_jaccard"]["mean"] <= 1.0
    assert "## Segmentation" in (tmp_path / "outputs" / "report" / "report.md").read_text()


def test_ddpm_configuration_trains_with_the_mask_losses_and_generates_pairs(tmp_path: Path) -> None:
    workflow = _run(tmp_path, ["train.yaml", "ddpm.yaml"], "training", "train")
    assert type(workflow.parser.get_parsed_content("scheduler")).__name__ == "DDPMScheduler"
    output = workflow.parser.get_parsed_content("train#trainer").state.output[0]
    assert "loss_mask" in output and float(output["loss_mask"]) > 0
    _run(
        tmp_path, ["train.yaml", "ddpm.yaml", "inference.yaml"], "inferring", "infer",
        num_samples=1, num_inference_steps=2, plan_classes=["mel"], plan_fitzpatrick_types=[4],
    )  # fmt: skip
    records = read_dataset("isic2018_task1", tmp_path / "outputs" / "synthetic")
    assert len(records) == 1 and records[0]["mask"]


def test_a_dataset_without_masks_is_refused(tmp_path: Path) -> None:
    records = load_records("demo", tmp_path, demo_kwargs={"num_images": 8, "image_size": 16, "progress": False})
    records[2]["mask"] = None
    with pytest.raises(ValueError, match="no lesion mask"):
        require_masks(records, "ham10000")
