"""The lesiongen bundle end to end with tiny settings: train, resume, generate, verify."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bundle_workflow import bundle_workflow, tiny_settings
from monai.bundle import ConfigWorkflow
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lesiongen"
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"

TINY = tiny_settings()


def _workflow(root: Path, config: str | list[str], run_id: str, workflow_type: str, **override) -> ConfigWorkflow:
    configs = [config] if isinstance(config, str) else config
    return bundle_workflow(BUNDLE, root, configs, run_id, workflow_type, {**TINY, **override})


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lesiongen")
    workflow = _workflow(root, "train.yaml", "training", "train")
    assert workflow.check_properties() in (None, [])
    workflow.run()
    workflow.finalize()
    return root


def test_training_writes_weights_log_and_sample_grid(trained_bundle: Path) -> None:
    outputs = trained_bundle / "outputs"
    names = ["model.pt", "model_ema.pt", "model_best.pt", "judge.pt", "checkpoint_final.pt", "checkpoint_epoch=1.pt"]
    for name in names:
        assert (outputs / "checkpoints" / name).is_file(), name
    # the run ends with a validation check; its best score travels in the checkpoint, for a resumed run
    validator = torch.load(outputs / "checkpoints" / "checkpoint_final.pt", weights_only=False)["validator"]
    assert validator["best_epoch"] == 1 and 0.0 <= validator["best_score"] <= 1.0
    assert list((outputs / "tensorboard").glob("events.out.tfevents.*"))
    grid = Image.open(outputs / "samples" / "samples_epoch=1.png")
    assert grid.size[0] > 7 * 16  # seven columns, one per diagnosis
    assert (trained_bundle / "data" / "demo" / "HAM10000_metadata.csv").is_file()  # demo written on first use


def test_a_second_run_resumes_the_step_count(trained_bundle: Path) -> None:
    workflow = _workflow(trained_bundle, "train.yaml", "training", "train", num_epochs=2)
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    resume = workflow.parser.get_parsed_content("resume_handler")
    assert resume.loaded_from is not None and resume.loaded_from.name == "checkpoint_epoch=1.pt"
    assert trainer.state.epoch == 2
    assert trainer.state.iteration == 2 * len(workflow.parser.get_parsed_content("train#dataloader"))
    workflow.finalize()


def test_cosine_learning_rate_warms_up_then_decays_to_zero_and_is_saved(tmp_path: Path) -> None:
    workflow = _workflow(
        tmp_path, "train.yaml", "training", "train", lr_schedule="cosine", lr_warmup_iterations=1, val_interval=0
    )
    optimizer = workflow.parser.get_parsed_content("lr_scheduler").optimizer
    assert optimizer.param_groups[0]["lr"] == 0.0  # the warm-up starts from zero
    workflow.run()
    iterations = len(workflow.parser.get_parsed_content("train#dataloader"))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to zero at the last iteration
    saved = torch.load(tmp_path / "outputs" / "checkpoints" / "checkpoint_final.pt", weights_only=False)
    assert saved["lr_scheduler"]["last_epoch"] == iterations and saved["lr_scheduler"]["t_total"] == iterations
    workflow.finalize()


def test_inference_writes_images_and_a_manifest(trained_bundle: Path) -> None:
    workflow = _workflow(
        trained_bundle,
        ["train.yaml", "inference.yaml"],
        "inferring",
        "infer",
        num_samples=1,
        num_inference_steps=2,
        plan_classes=["mel", "nv"],
        plan_fitzpatrick_types=[1, 6],
    )
    workflow.run()
    folder = trained_bundle / "outputs" / "synthetic"
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    assert len(rows) == 4
    assert {r["label_name"] for r in rows} == {"mel", "nv"}
    assert {r["label"] for r in rows} == {"4", "5"}  # indices in the HAM10000 class list
    assert all("Fitzpatrick skin type" in r["caption"] for r in rows)
    assert {r["eta"] for r in rows} == {str(workflow.parser.get_parsed_content("sampling_eta"))}  # the sampler's eta
    assert type(workflow.parser.get_parsed_content("sampling_scheduler")).__name__ == "RFlowScheduler"  # the default
    for row in rows:
        image = Image.open(folder / row["file"])
        assert image.size == (16, 16) and image.mode == "RGB"
    workflow.finalize()


def test_inference_reads_a_plan_file_with_counts(trained_bundle: Path) -> None:
    plan = trained_bundle / "plan.csv"
    plan.write_text("diagnosis,fitzpatrick,count,caption\ndf,VI,2,\n,,1,a dermoscopy image of a lesion\n")
    folder = trained_bundle / "outputs" / "synthetic_plan_file"
    workflow = _workflow(
        trained_bundle, ["train.yaml", "inference.yaml"], "inferring", "infer", num_inference_steps=2,
        plan_csv=str(plan), inference_output_dir=str(folder),
    )  # fmt: skip
    workflow.run()
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    assert [(r["label_name"], r["fitzpatrick"], r["count"]) for r in rows] == [("df", "6", "2")] * 2 + [("", "", "1")]
    assert "dermatofibroma" in rows[0]["caption"] and "Fitzpatrick skin type VI" in rows[0]["caption"]
    assert rows[2]["caption"] == "a dermoscopy image of a lesion"
    assert len({r["seed"] for r in rows}) == 3
    workflow.finalize()


def test_evaluation_writes_a_report_with_every_section(trained_bundle: Path) -> None:
    configs = ["train.yaml", "inference.yaml", "evaluate.yaml"]
    synthetic = trained_bundle / "outputs" / "synthetic_for_evaluation"
    common = {"inference_output_dir": str(synthetic), "num_inference_steps": 2}
    generate = _workflow(
        trained_bundle, configs, "inferring", "infer", num_samples=2, plan_fitzpatrick_types=[2, 5], **common
    )
    generate.run()
    generate.finalize()
    evaluation = {
        "eval_seeds": [0, 1],
        "eval_ratios": [0.0, 1.0],
        "eval_epochs": 1,
        "eval_image_dim": 32,  # MS-SSIM diversity needs 28 px or more
        "eval_segmentation": True,  # the demo records have masks; the synthetic set has none, so this must refuse
    }
    with pytest.raises(Exception) as refusal:
        _workflow(trained_bundle, configs, "evaluating", "infer", **common, **evaluation).run()
    assert "manifest" in str(refusal.value.__cause__) and "without one" in str(refusal.value.__cause__)
    workflow = _workflow(
        trained_bundle, configs, "evaluating", "infer", **common, **{**evaluation, "eval_segmentation": None}
    )
    workflow.run()
    report_dir = trained_bundle / "outputs" / "report"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["data"]["num_synthetic"] == 2 * 7 * 2
    for network in ("inception_v3_fid", "domain_classifier"):
        metrics = report["generative_metrics"][network]
        assert metrics["fid"] > 0 and 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1, network
    assert report["generative_metrics"]["inception_v3_fid"]["feature_dim"] == 2048
    # FID per diagnosis and per skin-type group on the domain features; the plan drew no III-IV image
    assert "subgroups" not in report["generative_metrics"]["inception_v3_fid"]
    subgroups = report["generative_metrics"]["domain_classifier"]["subgroups"]
    groups = subgroups["skin-type group"]
    assert "I-II" in groups["groups"] and "III-IV" in groups["left_out"]
    assert set(groups["groups"]) | set(groups["left_out"]) == {"I-II", "III-IV", "V-VI"}
    assert {g["num_synthetic"] for g in groups["groups"].values()} == {14}
    for group in groups["groups"].values():
        assert group["real_size"] == groups["real_size"] == group["real_reference"]["real_size"] >= 2
        assert group["real_reference"]["synthetic_size"] == groups["synthetic_size"]
    # the tiny test split holds one image of each diagnosis at most: nothing to measure, and the report says so
    assert "skipped" in subgroups["diagnosis"]
    conditions = {c["name"]: c for c in report["classification"]["conditions"]}
    assert len(conditions) == 3  # real, synthetic only, real + synthetic x1
    assert "segmentation" in report["skipped"]  # no masks in the synthetic set
    markdown = (report_dir / "report.md").read_text()
    for section in ("## Generative metrics", "### FID per diagnosis (domain_classifier)",
                    "### FID per skin-type group (domain_classifier)", "### Diversity", "## Downstream classification",
                    "## Sample grids"):  # fmt: skip
        assert section in markdown, section
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert len(pngs) >= 3, pngs
    for png in pngs:
        assert f"({png})" in markdown, png
    workflow.finalize()


def test_network_definition_matches_the_metadata() -> None:
    net = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "train.yaml"), workflow_type="train", **TINY)
    net.initialize()
    network = net.parser.get_parsed_content("network_def")
    output = network(torch.randn(2, 3, 32, 32))
    assert output.shape == (2, 3, 32, 32)


@pytest.mark.skipif(not SCHEMA.is_file(), reason="MONAI's metadata schema is not in ../shared/monai")
def test_metadata_verifies_against_monai_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "configs/metadata.json",
         "--filepath", str(SCHEMA)],
        cwd=BUNDLE, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metadata is verified with no error" in result.stdout + result.stderr


def test_latent_configuration_trains_both_stages_and_generates(tmp_path: Path) -> None:
    stage1 = ["train.yaml", "autoencoder.yaml", "train_autoencoder.yaml"]
    stage2 = ["train.yaml", "autoencoder.yaml", "train_latent.yaml"]
    workflow = _workflow(tmp_path, stage1, "training", "train", autoencoder_epochs=1)
    workflow.run()
    assert (tmp_path / "outputs" / "autoencoder" / "autoencoder.pt").is_file()
    workflow = _workflow(tmp_path, stage2, "training", "train")
    workflow.run()
    network = workflow.parser.get_parsed_content("network")
    assert network.in_channels == 3 and workflow.parser.get_parsed_content("sample_dim") == 4  # 16 px / 4
    assert 0.1 < workflow.parser.get_parsed_content("scale_factor") < 100
    workflow = _workflow(
        tmp_path, [*stage2, "inference.yaml"], "inferring", "infer",
        num_samples=1, num_inference_steps=2, plan_classes=["bcc"], plan_fitzpatrick_types=[3],
    )  # fmt: skip
    workflow.run()
    images = sorted((tmp_path / "outputs" / "synthetic").glob("*.png"))
    assert len(images) == 1 and Image.open(images[0]).size == (16, 16)  # decoded back to pixels


def test_ddpm_configuration_trains_and_samples_with_ddim_and_dpm_solver(tmp_path: Path) -> None:
    workflow = _workflow(tmp_path, ["train.yaml", "ddpm.yaml"], "training", "train")
    assert type(workflow.parser.get_parsed_content("scheduler")).__name__ == "DDPMScheduler"
    workflow.run()
    workflow.finalize()
    configs = ["train.yaml", "ddpm.yaml", "inference.yaml"]
    plan = {"num_samples": 1, "num_inference_steps": 3, "plan_classes": ["bcc"], "plan_fitzpatrick_types": [5]}
    workflow = _workflow(tmp_path, configs, "inferring", "infer", **plan)
    workflow.run()
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "synthetic" / "manifest.csv")))
    assert len(rows) == 1 and rows[0]["eta"] == "1.0"  # stochastic DDIM, as ddpm.yaml sets it
    workflow.finalize()
    folder = tmp_path / "outputs" / "synthetic_dpm"
    solver = {"_target_": "monai_lesiongen.schedulers.DiffusersSolver", "training_scheduler": "@scheduler",
              "solver": "sde-dpmsolver++", "clip_sample": True}  # fmt: skip
    workflow = _workflow(
        tmp_path, configs, "inferring", "infer", **plan, sampling_scheduler=solver, sampling_eta=0.0,
        inference_output_dir=str(folder),
    )  # fmt: skip
    workflow.run()
    assert len(workflow.parser.get_parsed_content("sampling_scheduler").timesteps) == 3
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    assert len(rows) == 1 and Image.open(folder / rows[0]["file"]).size == (16, 16)
    workflow.finalize()
