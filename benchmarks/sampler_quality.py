"""Sampling quality against network evaluations per image, per sampler, for one trained bundle run.

For a finished training run of a bundle (DDPM-trained with the defaults, or rectified flow with ``--config
rflow.yaml``), the bundle's own inference writer draws its default balanced plan with each sampler at each budget of
network evaluations per image (NFE; classifier-free guidance counts two per step), and the images are judged as in
``condition_fidelity.py``: the independent judge's recognition of the requested diagnosis, the ITA skin-group match
and the domain FID/KID against the real test split. Seconds per image are those of the writer (sampling, decoding,
writing), on this machine.

    python benchmarks/sampler_quality.py --bundle lesiongen --run_dir runs/lesiongen_default --tag ddpm \\
        --samplers ddim_eta1 ddim dpmsolver++ unipc --nfe 4 8 10 16 20 30 50 100
    python benchmarks/sampler_quality.py --bundle lesiongen --run_dir runs/lesiongen_rflow --tag rflow \\
        --config rflow.yaml --samplers euler --nfe 4 8 10 16 20 30 50 100

Samplers: ``ddim_eta1`` / ``ddim`` (the bundle's DDIM sampler with eta 1 / 0), ``dpmsolver++`` and ``unipc``
(diffusers' solvers on the training schedule with Karras' step spacing, `DiffusersSolver`), ``sde-dpmsolver++``
(the stochastic form), ``dpmsolver++_linspace`` (steps evenly spaced in t), ``ddpm`` (ancestral DDPM), ``euler``
(the bundle's own sampling scheduler as configured: rectified flow's Euler step under ``rflow.yaml``). The JSON goes
to ``benchmarks/results/sampler_quality_<bundle>_<tag>.json``; ``--plot`` draws quality against NFE from any number
of those files into one PNG.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from condition_fidelity import BUNDLES, DIAGNOSIS_COLUMN, judge
from conditional_accuracy import score_synthetic_folder
from monai.bundle import ConfigParser
from monai.utils import set_determinism

from monai_lesiongen.data import HAM10000_CLASSES, load_split
from monai_lesiongen.evaluation.downstream_data import load_image_tensors, read_manifest
from monai_lesiongen.metrics.feature_extractors import ClassifierFeatureExtractor, extract_features
from monai_lesiongen.metrics.generative import frechet_distance, kernel_inception_distance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def solver(name: str, karras: bool = True) -> dict[str, Any]:
    return {
        "_target_": "monai_lesiongen.schedulers.DiffusersSolver",
        "training_scheduler": "@scheduler",
        "solver": name,
        "clip_sample": True,
        "use_karras_sigmas": karras,
    }


DDPM_SAMPLER = {
    "_target_": "monai.networks.schedulers.DDPMScheduler",
    "num_train_timesteps": "@num_train_timesteps",
    "schedule": "@noise_schedule",
    "beta_start": 0.0015,
    "beta_end": 0.0195,
    "prediction_type": "@prediction_type",
    "clip_sample": True,
}
# sampler name -> (the sampling scheduler's config, or None for the bundle's own; DDIM's eta)
SAMPLERS: dict[str, tuple[dict[str, Any] | None, float]] = {
    "ddim_eta1": (None, 1.0),
    "ddim": (None, 0.0),
    "euler": (None, 0.0),
    "dpmsolver++": (solver("dpmsolver++"), 0.0),
    "unipc": (solver("unipc"), 0.0),
    "sde-dpmsolver++": (solver("sde-dpmsolver++"), 0.0),
    "dpmsolver++_linspace": (solver("dpmsolver++", karras=False), 0.0),
    "ddpm": (DDPM_SAMPLER, 0.0),
}


def bundle_parser(args: argparse.Namespace, overrides: Mapping[str, Any]) -> ConfigParser:
    """The bundle's train + (extra) + inference configuration with the run's paths and `overrides`."""
    folder = ROOT / "bundles" / args.bundle / "configs"
    parser = ConfigParser()
    parser.read_meta(str(folder / "metadata.json"))
    parser.read_config([str(folder / name) for name in ["train.yaml", *args.config, "inference.yaml"]])
    parser.update(
        {
            "bundle_root": str(ROOT / "bundles" / args.bundle),
            "output_dir": str(args.run_dir.resolve()),
            "dataset_dir": str(Path(args.dataset_dir).resolve()),
            **dict(overrides),
        }
    )
    return parser


def generate(args: argparse.Namespace, sampler: str, nfe: int, passes: int, folder: Path) -> dict[str, Any]:
    """Write the bundle's default plan with `sampler` at `nfe` evaluations per image; its settings and timing."""
    scheduler, eta = SAMPLERS[sampler]
    steps = max(1, nfe // passes)
    overrides: dict[str, Any] = {"inference_output_dir": str(folder), "num_inference_steps": steps, "sampling_eta": eta}
    if scheduler is not None:
        overrides["sampling_scheduler"] = scheduler
    shutil.rmtree(folder, ignore_errors=True)
    parser = bundle_parser(args, overrides)
    set_determinism(seed=int(parser.get_parsed_content("seed")))
    network = parser.get_parsed_content("network")
    parser.get_parsed_content("load_weights")
    writer = parser.get_parsed_content("writer")
    start = time.perf_counter()
    writer.run(network)
    seconds = time.perf_counter() - start
    images = len(read_manifest(folder))
    return {
        "sampler": sampler,
        "nfe": steps * passes,
        "steps": steps,
        "eta": eta,
        "seconds_per_image": seconds / images,
    }


def network_passes(args: argparse.Namespace) -> int:
    """Network evaluations per sampling step: 2 with classifier-free guidance, else 1."""
    scale = float(bundle_parser(args, {}).get_parsed_content("inference_sampler#guidance_scale"))
    return 2 if scale != 1.0 else 1


def pareto(rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Whether each row is on the front of (fewer NFE, lower domain FID, higher recognition)."""
    front = []
    for row in rows:
        dominated = any(
            other["nfe"] <= row["nfe"]
            and other["domain_fid"] <= row["domain_fid"]
            and other["recognised"] >= row["recognised"]
            and (other["nfe"], other["domain_fid"], -other["recognised"])
            != (row["nfe"], row["domain_fid"], -row["recognised"])
            for other in rows
        )
        front.append(not dominated)
    return front


def cheapest_within(rows: Sequence[Mapping[str, Any]], reference: Mapping[str, Any], recognition: float, fid: float):
    """The row of fewest NFE whose recognition is within `recognition` of the reference's and whose domain FID is
    within the factor `fid` of it."""
    fitting = [
        row
        for row in rows
        if row["recognised"] >= reference["recognised"] - recognition
        and row["domain_fid"] <= fid * reference["domain_fid"]
    ]
    return min(fitting, key=lambda row: (row["nfe"], row["seconds_per_image"]), default=None)


def plot(files: Sequence[Path], output: Path) -> None:
    """Domain FID, recognition and skin-group match against NFE, one line per (result file, sampler)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for file in files:
        result = json.loads(file.read_text())
        for sampler in dict.fromkeys(row["sampler"] for row in result["rows"]):
            rows = sorted((r for r in result["rows"] if r["sampler"] == sampler), key=lambda r: r["nfe"])
            nfe = [r["nfe"] for r in rows]
            label = f"{result['tag']}: {sampler}"
            for axis, key in zip(axes, ("domain_fid", "recognised", "skin_group_match"), strict=True):
                axis.plot(nfe, [r[key] for r in rows], marker="o", label=label)
    for axis, title in zip(
        axes, ("domain FID (lower is better)", "recognised as requested", "ITA skin group match"), strict=True
    ):
        axis.set_xscale("log")
        axis.set_xlabel("network evaluations per image (CFG: 2 per step)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    print("plot:", output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", choices=BUNDLES, default="lesiongen")
    parser.add_argument("--run_dir", type=Path, help="the training run's output_dir")
    parser.add_argument("--tag", help="the training's name in the results (ddpm, rflow, ...)")
    parser.add_argument("--config", nargs="*", default=[], help="configs after train.yaml, e.g. rflow.yaml")
    parser.add_argument("--samplers", nargs="+", default=["ddim_eta1", "dpmsolver++", "unipc"], choices=list(SAMPLERS))
    parser.add_argument("--nfe", nargs="+", type=int, default=[4, 8, 10, 16, 20, 30, 50, 100])
    parser.add_argument("--reference", default="ddim_eta1:100", help="sampler:nfe the defaults must stay close to")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--image_dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the judge (shared with condition_fidelity)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge_cache", default=None)
    parser.add_argument("--plot", nargs="*", type=Path, default=None, help="draw these result files into --output")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--append", action="store_true", help="add to (or replace rows of) the existing result file")
    args = parser.parse_args()
    if args.plot is not None:
        plot(args.plot, args.output or RESULTS / "sampler_quality.png")
        return
    if args.run_dir is None or args.tag is None:
        parser.error("--run_dir and --tag are needed unless --plot is given")
    args.dataset_dir = args.dataset_dir or str(ROOT / "bundles" / args.bundle / "data" / "demo")

    train = load_split(args.dataset, args.dataset_dir, "train")
    test = load_split(args.dataset, args.dataset_dir, "test")
    real = load_image_tensors(test, args.image_dim)
    classifier, judge_info = judge(args, train, real, np.array([r["label"] for r in test]))
    extractor = ClassifierFeatureExtractor(classifier, name="judge")
    real_features = extract_features(extractor, real)
    passes = network_passes(args)
    result: dict[str, Any] = {
        "bundle": args.bundle,
        "tag": args.tag,
        "run_dir": str(args.run_dir),
        "configs": args.config,
    }
    result.update({"judge": judge_info, "network_evaluations_per_step": passes, "device": str(torch.device("cpu")),
                   "threads": torch.get_num_threads(), "rows": []})  # fmt: skip
    output = args.output or RESULTS / f"sampler_quality_{args.bundle}_{args.tag}.json"
    settings = [(s, n) for s in args.samplers for n in args.nfe]
    if args.append and output.is_file():
        kept = json.loads(output.read_text())["rows"]
        replaced = {(s, max(1, n // passes) * passes) for s, n in settings}
        result["rows"] = [r for r in kept if (r["sampler"], r["nfe"]) not in replaced]
    for sampler, nfe in settings:
        folder = args.run_dir / f"sampler_quality_{args.tag}" / f"{sampler}_nfe{nfe}"
        row = generate(args, sampler, nfe, passes, folder)
        scores = score_synthetic_folder(
            classifier, folder, DIAGNOSIS_COLUMN[args.bundle], args.image_dim, HAM10000_CLASSES
        )
        synthetic = load_image_tensors(read_manifest(folder), args.image_dim)
        synthetic_features = extract_features(extractor, synthetic)
        kid = kernel_inception_distance(real_features, synthetic_features, subset_size=min(len(real), len(synthetic)))
        row.update(
            {
                "images": scores["images"],
                "recognised": scores["recognised"],
                "balanced": scores["balanced"],
                "worst_diagnosis": min(scores["per_class"].items(), key=lambda item: item[1]["recognised"])[0],
                "worst_recognised": min(entry["recognised"] for entry in scores["per_class"].values()),
                "skin_group_match": scores.get("skin_group_match"),
                "domain_fid": frechet_distance(real_features, synthetic_features),
                "domain_kid": float(kid.mean),
            }
        )
        print(json.dumps(row))
        result["rows"].append(row)
        output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    for row, on_front in zip(result["rows"], pareto(result["rows"]), strict=True):
        row["pareto"] = on_front
    name, _, nfe_text = args.reference.partition(":")
    reference = next((r for r in result["rows"] if r["sampler"] == name and r["nfe"] == int(nfe_text)), None)
    if reference is not None:
        choice = cheapest_within(result["rows"], reference, recognition=0.02, fid=1.05)
        result["reference"] = {"sampler": name, "nfe": reference["nfe"]}
        result["cheapest_within_reference"] = choice
    output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\n## {args.bundle}: {args.tag}\n")
    print(
        "| sampler | NFE | steps | s / image | recognised | worst diagnosis | skin group | domain FID | KID | Pareto |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in result["rows"]:
        print(
            f"| {row['sampler']} | {row['nfe']} | {row['steps']} | {row['seconds_per_image']:.3f} | "
            f"{row['recognised']:.3f} | {row['worst_diagnosis']} {row['worst_recognised']:.2f} | "
            f"{row['skin_group_match']:.3f} | {row['domain_fid']:.1f} | {row['domain_kid']:.2f} | "
            f"{'yes' if row['pareto'] else ''} |"
        )
    if reference is not None:
        print(
            "\ncheapest within 0.02 recognition and 5% domain FID of",
            args.reference,
            ":",
            result["cheapest_within_reference"],
        )
    print("json:", output)


if __name__ == "__main__":
    main()
