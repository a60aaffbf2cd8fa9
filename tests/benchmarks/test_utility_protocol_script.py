"""``benchmarks/utility_protocol.py`` end to end on tiny settings: a thinned and a scarce arm, trained, generated,
evaluated, and the protocol report that compares each with its real-only classifier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from bundle_workflow import tiny_settings  # noqa: E402

from monai_lesiongen.data import load_split, training_subset  # noqa: E402

TINY = {**tiny_settings(num_images=48), "val_judge_epochs": 1}
TINY_INFERENCE = {"num_samples": 1}
TINY_EVALUATION = {"eval_epochs": 1, "eval_domain_features": False, "eval_diversity": False, "eval_sample_grids": False}


def test_the_protocol_trains_generates_and_reports_each_arm(tmp_path: Path) -> None:
    command = [
        sys.executable, str(REPO / "benchmarks" / "utility_protocol.py"), "--bundle", "lesiongen",
        "--run_root", str(tmp_path / "protocol"), "--dataset_dir", str(tmp_path / "demo"), "--thin", "0.5",
        "--gap_plan", '{"mode": "top_up", "target": 2}', "--fractions", "0.5", "--num_epochs", "1",
        "--val_interval", "1", "--ratios", "0", "1", "--seeds", "0", "1",
    ]  # fmt: skip
    for option, settings in (("--override", TINY), ("--inference_override", TINY_INFERENCE),
                             ("--evaluation_override", TINY_EVALUATION)):  # fmt: skip
        command += [part for key, value in settings.items() if key != "num_epochs"
                    for part in (option, f"{key}={json.dumps(value)}")]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, text=True)
    report = json.loads((tmp_path / "protocol" / "report" / "utility_protocol.json").read_text())
    thin, scarce = report["arms"]
    assert (thin["kind"], thin["real_fraction"], scarce["kind"], scarce["real_fraction"]) == (
        "under_representation", 0.5, "scarcity", 0.5
    )  # fmt: skip
    # the thinned arm's synthetic set is its gap-filling plan: every cell topped up to 2 images
    manifest = (tmp_path / "protocol" / "thin_0.5" / "synthetic" / "manifest.csv").read_text().splitlines()
    assert "gap_cell" in manifest[0] and len(manifest) > 1
    # the scarce arm trained on half the lesions for twice the epochs
    log = (tmp_path / "protocol" / "fraction_0.5" / "train.log").read_text()
    assert "Epoch: 2/2" in log
    # each arm's real classifier trained on exactly its cut of the training split
    split = load_split("demo", tmp_path / "demo", "train", demo_kwargs=TINY["demo_kwargs"])
    assert thin["real"]["num_real"] == len(training_subset(split, thin_keep_fraction=0.5)) < len(split)
    assert scarce["real"]["num_real"] == len(training_subset(split, fraction=0.5)) < len(split)
    for arm in (thin, scarce):
        assert arm["augmented"]["name"] == "real+synthetic x1" and arm["augmented"]["num_synthetic"] > 0
        assert len(arm["difference"]["balanced_accuracy"]["values"]) == 2
    markdown = (tmp_path / "protocol" / "report" / "utility_protocol.md").read_text()
    assert "| V-VI kept at 50% |" in markdown and "## Targets" in markdown
    assert (tmp_path / "protocol" / "report" / "accuracy_vs_real_fraction.png").is_file()
