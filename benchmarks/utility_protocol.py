"""Does synthetic data help a classifier where the real data is thin or scarce? The utility protocol of issue 17.

For one bundle, every arm trains the generator on a cut of the real training split, generates, and runs the bundle's
evaluation (the same downstream classifier on the cut's real images alone and with synthetic images added, at each
``--ratios`` synthetic:real, ``--seeds``, tested on the untouched real test split):

- ``--thin F``: the lesions of Fitzpatrick V-VI kept at F (``thin_keep_fraction``); the synthetic set fills the gaps
  of the thinned split (``--gap_plan``, by default every skin-type group to an equal share, the diagnosis mix kept);
- ``--fractions F ...``: F of every diagnosis's lesions (``train_fraction``), with ``num_epochs`` scaled by 1 / F so
  that the generator takes as many steps as on the whole split; the synthetic set is the default balanced plan, with
  as many images per plan row as the largest of ``--ratios`` needs (never fewer than the bundle's ``num_samples``);
  ``--reuse F=RUN_DIR`` starts arm F from the checkpoints of a finished run (e.g. the bundle's default training for
  F = 1, where training then ends at once).

Then it writes the protocol report (``utility_protocol.json`` / ``.md`` and figures: balanced accuracy against the
real fraction, accuracy per skin-type group per arm) under ``<run_root>/report``, with each target of the issue met
or not. Steps already done are not redone: training resumes (and ends at once when finished), inference keeps the
images on disk, an arm's evaluation report is reused unless ``--rerun_evaluation``. ``--collect NAME=KIND:FRACTION:
REPORT_JSON`` adds an arm evaluated elsewhere.

    python benchmarks/utility_protocol.py --bundle lesiongen --run_root runs/utility --thin 0.1 --fractions 0.1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigParser

from monai_lesiongen.evaluation.utility_protocol import ProtocolArm, write_protocol_report

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ("lesiongen", "classndiff", "skindualgen")
EQUAL_GROUPS = {"mode": "match", "reference": {"lighter": 1, "brown": 1, "darker": 1}}


def run_bundle(bundle: str, run_id: str, configs: Sequence[str], overrides: dict[str, object], log: Path) -> float:
    """Run one of `bundle`'s runners in a subprocess (output to `log`); returns its wall time in seconds."""
    command = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", json.dumps(list(configs))]
    command += ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf"]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]  # a Python literal, as fire parses
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        subprocess.run(
            command, cwd=ROOT / "bundles" / bundle, check=True, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    return time.perf_counter() - start


def samples_reaching(bundle: str, configs: Sequence[str], overrides: dict[str, object], ratio: float) -> int:
    """Images per row of the bundle's plan for a synthetic set of `ratio` x the arm's real training images (at least
    the bundle's own ``num_samples``), read from the bundle's config with the arm's `overrides`."""
    parser = ConfigParser()
    parser.read_config([str(ROOT / "bundles" / bundle / c) for c in configs])
    parser.update(dict(overrides))
    real = len(parser.get_parsed_content("train#records"))
    rows = len(parser.get_parsed_content("condition_plan"))
    return max(int(parser.get_parsed_content("num_samples")), math.ceil(ratio * real / rows))


def run_arm(
    args: argparse.Namespace, name: str, overrides: dict[str, object], plan: dict[str, object], reach_ratios: bool
) -> Path:
    """Train, generate and evaluate one arm in ``<run_root>/<name>``; returns its evaluation report's path."""
    run_dir = (args.run_root / name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "dataset_dir": str(Path(args.dataset_dir).resolve()), "output_dir": str(run_dir), **args.override, **overrides
    }  # fmt: skip
    report = run_dir / "report" / "report.json"
    configs = ["configs/train.yaml", *[f"configs/{c}" for c in args.config]]
    inference = {**common, **args.inference_override, **plan}
    if reach_ratios and "num_samples" not in inference:
        inference_configs = [*configs, "configs/inference.yaml"]
        inference["num_samples"] = samples_reaching(args.bundle, inference_configs, inference, max(args.ratios))
    seconds = run_bundle(args.bundle, "training", configs, common, run_dir / "train.log")
    print(f"{name}: training {seconds / 60:.1f} min", flush=True)
    seconds = run_bundle(args.bundle, "inferring", [*configs, "configs/inference.yaml"], inference,
                         run_dir / "inference.log")  # fmt: skip
    print(f"{name}: inference {seconds / 60:.1f} min", flush=True)
    if args.rerun_evaluation or not report.is_file():
        evaluation = {
            **inference, "eval_ratios": args.ratios, "eval_seeds": args.seeds, "eval_inception": False,
            "report_dir": str(report.parent), **args.evaluation_override,
        }  # fmt: skip
        seconds = run_bundle(args.bundle, "evaluating", [*configs, "configs/inference.yaml", "configs/evaluate.yaml"],
                             evaluation, run_dir / "evaluation.log")  # fmt: skip
        print(f"{name}: evaluation {seconds / 60:.1f} min", flush=True)
    return report


def load_arm(name: str, kind: str, fraction: float, report: Path) -> ProtocolArm:
    classification = json.loads(report.read_text(encoding="utf-8")).get("classification")
    if not classification:
        raise ValueError(f"{report} has no 'classification' section: the arm's evaluation ran without downstream.")
    return ProtocolArm(name, kind, fraction, classification)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", choices=BUNDLES, default="lesiongen")
    parser.add_argument("--run_root", type=Path, required=True, help="one folder per arm, and the report")
    parser.add_argument("--dataset_dir", default=None, help="default: bundles/<bundle>/data/demo")
    parser.add_argument("--config", nargs="*", default=[], help="configs merged after train.yaml, e.g. ddpm.yaml")
    parser.add_argument("--thin", type=float, nargs="*", default=[], help="keep fractions of the V-VI lesions")
    parser.add_argument("--gap_plan", type=json.loads, default=EQUAL_GROUPS, help="plan_gaps of the thinned arms")
    parser.add_argument("--fractions", type=float, nargs="*", default=[], help="real fractions of the scarcity arms")
    parser.add_argument("--reuse", nargs="*", default=[], help="F=RUN_DIR: arm F starts from that run's checkpoints")
    parser.add_argument("--num_epochs", type=int, default=40, help="the bundle's epochs on the whole training split")
    parser.add_argument("--val_interval", type=int, default=5, help="the bundle's val_interval on the whole split")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    # 10 seeds: with 3, the demo's 10%-real arm read +0.110 [-0.185, 0.405]; with 10, +0.148 [0.095, 0.201]
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--rerun_evaluation", action="store_true")
    parser.add_argument("--collect", nargs="*", default=[], help="NAME=KIND:FRACTION:REPORT_JSON, an arm run elsewhere")
    parser.add_argument("--override", action="append", default=[], help="key=value (a JSON value), for every runner")
    parser.add_argument("--inference_override", action="append", default=[], help="for inference and evaluation")
    parser.add_argument("--evaluation_override", action="append", default=[], help="for the evaluation only")
    args = parser.parse_args()
    for name in ("override", "inference_override", "evaluation_override"):
        pairs = (entry.partition("=") for entry in getattr(args, name))
        setattr(args, name, {key: json.loads(value) for key, _, value in pairs})
    args.dataset_dir = args.dataset_dir or str(ROOT / "bundles" / args.bundle / "data" / "demo")
    if 0.0 not in args.ratios or not any(r > 0 for r in args.ratios):
        parser.error("--ratios needs 0 (real alone) and at least one ratio > 0")

    reuse = {float(f): Path(d) for f, _, d in (entry.partition("=") for entry in args.reuse)}
    unknown = sorted(set(reuse) - set(args.fractions))
    if unknown:
        parser.error(f"--reuse names fractions {unknown} that are not in --fractions")
    arms = []
    for fraction in args.thin:
        name = f"thin_{fraction:g}"
        report = run_arm(args, name, {"thin_keep_fraction": fraction}, {"plan_gaps": args.gap_plan}, False)
        arms.append(load_arm(f"V-VI kept at {100 * fraction:g}%", "under_representation", fraction, report))
    for fraction in args.fractions:
        scale = 1.0 / fraction
        overrides = {
            "train_fraction": fraction,
            "num_epochs": round(args.num_epochs * scale),
            "val_interval": round(args.val_interval * scale),
            "checkpoint_interval": round(args.val_interval * scale),
        }
        name = f"fraction_{fraction:g}"
        if fraction in reuse and not (args.run_root / name / "checkpoints").is_dir():
            shutil.copytree(reuse[fraction] / "checkpoints", args.run_root / name / "checkpoints")
        report = run_arm(args, name, overrides, {}, True)
        arms.append(load_arm(f"{100 * fraction:g}% real", "scarcity", fraction, report))
    for entry in args.collect:
        name, _, spec = entry.partition("=")
        kind, fraction, path = spec.split(":", 2)
        arms.append(load_arm(name, kind, float(fraction), Path(path)))
    if not arms:
        parser.error("no arm: give --thin, --fractions or --collect")
    out = args.run_root / "report"
    write_protocol_report(arms, out, title=f"Utility protocol: {args.bundle}")
    print((out / "utility_protocol.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
