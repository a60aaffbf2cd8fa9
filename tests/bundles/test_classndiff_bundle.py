"""The classndiff bundle end to end with tiny settings: joint training, guided generation, evaluation, export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from bundle_workflow import TINY_CLASSIFIER, bundle_workflow, tiny_settings
from monai.bundle import ConfigWorkflow
from PIL import Image

from monai_lesiongen.data.joint_labels import JointLabelEncoder
from monai_lesiongen.networks.classifier import load_classifier

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "classndiff"
SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "monai" / "meta_schema_20240725.json"

TINY = tiny_settings(num_images=64, **TINY_CLASSIFIER)


def _workflow(
    root: Path, configs: list[str], run_id: str, workflow_type: str, tiny: dict = TINY, **override
) -> ConfigWorkflow:
    return bundle_workflow(BUNDLE, root, configs, run_id, workflow_type, {**tiny, **override})


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classndiff")
    workflow = _workflow(root, ["train.yaml"], "training", "train")
    assert workflow.check_properties() in (None, [])
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert {"loss_diffusion", "loss_classifier", "loss_classifier_induced"} <= set(trainer.state.output[0])
    workflow.finalize()
    return root


def test_joint_training_writes_both_networks_and_the_exported_classifier(trained_bundle: Path) -> None:
    outputs = trained_bundle / "outputs"
    for name in ["model.pt", "model_ema.pt", "model_best.pt", "judge.pt", "classifier.pt", "checkpoint_final.pt"]:
        assert (outputs / "checkpoints" / name).is_file(), name
    assert list((outputs / "tensorboard").glob("events.out.tfevents.*"))
    assert Image.open(outputs / "samples" / "samples_epoch=1.png").size[0] > 7 * 16  # 7 diagnoses x 3 skin groups
    classifier = load_classifier(outputs / "classifier")
    assert json.loads((outputs / "classifier" / "classifier_config.json").read_text())["class_names"][4] == "mel"
    traced = torch.jit.load(str(outputs / "classifier" / "classifier.ts"))
    x, t = torch.randn(2, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    assert torch.allclose(traced(x, t), classifier(x, t), atol=1e-5)


@pytest.mark.parametrize("mode", ["both", "none"])
def test_inference_fills_the_requested_skin_type_with_a_manifest(trained_bundle: Path, mode: str) -> None:
    folder = trained_bundle / "outputs" / f"synthetic_{mode}"
    workflow = _workflow(
        trained_bundle, ["train.yaml", "inference.yaml"], "inferring", "infer", num_samples=1,
        num_inference_steps=2, guidance_mode=mode, plan_skin_groups=["darker"], inference_output_dir=str(folder),
    )  # fmt: skip
    sampler = workflow.parser.get_parsed_content("inference_sampler")
    assert (sampler.classifier_guidance is not None) == (mode == "both")
    configured = workflow.parser.get_parsed_content("guidance_scale")
    assert configured != 1.0 and sampler.guidance_scale == (configured if mode == "both" else 1.0)
    workflow.run()
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    assert [r["label"] for r in rows] == [str(14 + d) for d in range(7)]  # darker x each diagnosis
    assert {r["skin_group"] for r in rows} == {"darker"} and {r["guidance_mode"] for r in rows} == {mode}
    assert Image.open(folder / rows[0]["file"]).size == (16, 16)
    workflow.finalize()


def test_inference_fills_the_gaps_of_the_training_split(trained_bundle: Path) -> None:
    folder = trained_bundle / "outputs" / "synthetic_gaps"
    workflow = _workflow(
        trained_bundle, ["train.yaml", "inference.yaml"], "inferring", "infer", num_inference_steps=2,
        plan_gaps={"mode": "top_up", "target": 3}, inference_output_dir=str(folder),
    )  # fmt: skip
    records = workflow.parser.get_parsed_content("gap_records")
    real = Counter((r["label_name"], r["skin_group_name"]) for r in JointLabelEncoder().label_records(records))
    workflow.run()
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    made = Counter(r["gap_cell"] for r in rows)
    classes = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    groups = ("lighter", "brown", "darker")
    expected = {f"{d}/{g}": 3 - real[(d, g)] for d in classes for g in groups if real[(d, g)] < 3}
    assert dict(made) == expected and len(rows) == sum(expected.values()) > 0
    for row in rows:  # each image is drawn for its cell's joint label
        diagnosis, group = row["gap_cell"].split("/")
        assert int(row["label"]) == groups.index(group) * 7 + classes.index(diagnosis)
        assert int(row["cell_real_count"]) == real[(diagnosis, group)] and row["cell_target_count"] == "3"
    workflow.finalize()


def test_ddpm_recipe_trains_the_induced_classifier_and_guides(tmp_path: Path) -> None:
    workflow = _workflow(tmp_path, ["train.yaml", "ddpm.yaml"], "training", "train")
    workflow.run()
    output = workflow.parser.get_parsed_content("train#trainer").state.output[0]
    assert {"loss_classifier", "loss_classifier_induced"} <= set(output)
    workflow.finalize()
    workflow = _workflow(
        tmp_path, ["train.yaml", "ddpm.yaml", "inference.yaml"], "inferring", "infer", num_samples=1,
        num_inference_steps=2, guidance_mode="both", plan_skin_groups=["lighter"],
    )  # fmt: skip
    workflow.run()
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "synthetic" / "manifest.csv")))
    assert len(rows) == 7 and {r["guidance_mode"] for r in rows} == {"both"}
    workflow.finalize()


def test_evaluation_reports_per_class_and_per_skin_group(trained_bundle: Path) -> None:
    workflow = _workflow(trained_bundle, ["train.yaml", "evaluate.yaml"], "evaluating", "infer")
    workflow.run()
    report = json.loads((trained_bundle / "outputs" / "report.json").read_text())
    assert 0.0 <= report["balanced_accuracy"] <= 1.0 and report["num_images"] > 0
    assert set(report["per_class_recall"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert set(report["group_accuracy"]) <= {"lighter", "brown", "darker"}
    assert report["worst_group_accuracy"] == min(report["group_accuracy"].values())
    assert "## Per skin-type group" in (trained_bundle / "outputs" / "report.md").read_text()
    workflow.finalize()


def test_classifier_alone_baseline_trains_the_same_classifier(trained_bundle: Path) -> None:
    workflow = _workflow(trained_bundle, ["train.yaml", "classifier_alone.yaml"], "training", "train")
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.network is workflow.parser.get_parsed_content("classifier")
    assert (trained_bundle / "outputs" / "classifier_alone" / "checkpoints" / "classifier.pt").is_file()
    workflow.finalize()


def test_shared_encoder_classifier_trains_inside_the_denoiser(tmp_path: Path) -> None:
    # the shared-encoder classifier takes its widths from the denoiser: no classifier_def#* overrides
    tiny = {k: v for k, v in TINY.items() if not k.startswith("classifier_def#")}
    workflow = _workflow(tmp_path, ["train.yaml", "shared_encoder.yaml"], "training", "train", tiny=tiny)
    network = workflow.parser.get_parsed_content("network")
    classifier = workflow.parser.get_parsed_content("classifier")
    assert classifier.conv_in is network.conv_in
    optimizer = workflow.parser.get_parsed_content("optimizer")
    assert [len(g["params"]) for g in optimizer.param_groups][1] == len(list(classifier.head.parameters()))
    workflow.run()
    assert (tmp_path / "outputs" / "classifier" / "classifier.pt").is_file()
    workflow.finalize()


@pytest.mark.skipif(not SCHEMA.is_file(), reason="MONAI's metadata schema is not in ../shared/monai")
def test_metadata_verifies_against_monai_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "configs/metadata.json",
         "--filepath", str(SCHEMA)],
        cwd=BUNDLE, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metadata is verified with no error" in result.stdout + result.stderr


def test_network_definition_matches_the_metadata() -> None:
    workflow = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "train.yaml"), workflow_type="train")
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network_def")
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)  # timesteps and the null class filled in
    assert network(torch.randn(2, 3, 32, 32), torch.tensor([5, 9]), class_labels=torch.tensor([0, 20])).shape[0] == 2
