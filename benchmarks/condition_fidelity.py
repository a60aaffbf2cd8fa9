"""Do the generators draw what they are asked for? One table per bundle run, judged by networks that are not the
generator: a classifier and (for pairs) a segmenter trained on the real training split.

For one bundle (lesiongen, classndiff, skindualgen) and one training run (trained here with the bundle defaults and
any ``--override`` when ``--train`` is given), the bundle's own ``inferring`` runner writes its default balanced plan
(every diagnosis on every skin type), and the script prints:

- per-diagnosis recognition of the requested diagnosis by the independent judge (``conditional_accuracy.py``'s);
- skin-type group match (I-II, III-IV, V-VI) of the ITA estimated from the generated skin, and the mean ITA per
  requested Fitzpatrick type next to the real images' (same estimator, same size);
- FID and KID in the judge's feature space (domain FID) against the real test split, and improved precision
  (fidelity) and recall (coverage) in the same features;
- TSTR: the same classifier trained on the synthetic images alone, balanced accuracy on the real test split (and its
  recall of each real diagnosis), and its ratio to the judge's (train on real); beside it the same classifier
  trained on as many real images of each diagnosis as the synthetic set holds, which says how much of the gap is
  the count of images;
- skindualgen: pair agreement, the Dice between each generated mask and a real-trained segmenter's segmentation of
  the generated image, per diagnosis;
- the training wall time (measured here with ``--train``).

    python benchmarks/condition_fidelity.py --bundle lesiongen --train --run_dir runs/lesiongen_default \\
        --tag default
    python benchmarks/condition_fidelity.py --bundle lesiongen --train --run_dir runs/lesiongen_h1 --tag h1 \\
        --override prediction_type='"v_prediction"'
    python benchmarks/condition_fidelity.py --bundle lesiongen --train --run_dir runs/lesiongen_rflow --tag rflow \\
        --config rflow.yaml

The figures go to ``benchmarks/results/condition_fidelity_<bundle>_<tag>.json``; the judge is trained once per data
folder and kept beside the JSON files (``--judge_cache``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from conditional_accuracy import score_synthetic_folder

from monai_lesiongen.data import HAM10000_CLASSES, estimate_ita, load_split, require_masks
from monai_lesiongen.evaluation.downstream import default_classifier, predict, train_classifier
from monai_lesiongen.evaluation.downstream_data import (
    load_image_tensors,
    load_mask_tensors,
    read_manifest,
    requested_fitzpatrick,
)
from monai_lesiongen.evaluation.downstream_segmentation import predict_masks, train_segmenter
from monai_lesiongen.metrics.fairness import balanced_accuracy, dice_score, per_class_recall
from monai_lesiongen.metrics.feature_extractors import ClassifierFeatureExtractor, extract_features
from monai_lesiongen.metrics.generative import frechet_distance, kernel_inception_distance, precision_recall

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUNDLES = ("lesiongen", "classndiff", "skindualgen")
# the manifest column holding the requested diagnosis index
DIAGNOSIS_COLUMN = {"lesiongen": "label", "classndiff": "diagnosis_label", "skindualgen": "label"}


def bundle_command(bundle: str, run_id: str, configs: Sequence[str], run_dir: Path, args: argparse.Namespace) -> float:
    """Run one of `bundle`'s runners in a subprocess with the run's overrides; returns its wall time in seconds."""
    files = [f"configs/{name}" for name in configs]
    command = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", json.dumps(files)]
    command += ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf"]
    command += ["--output_dir", str(run_dir.resolve()), "--dataset_dir", str(Path(args.dataset_dir).resolve())]
    for override in args.override:
        key, _, value = override.partition("=")
        command += [f"--{key}", value]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT / "bundles" / bundle, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return time.perf_counter() - start


def skin_ita(images: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
    """The ITA of every image's skin (outside the mask where one is given), in degrees."""
    values = [
        estimate_ita(image, None if masks is None else masks[i, 0], max_intensity=1.0) for i, image in enumerate(images)
    ]
    return np.array(values)


def ita_by_type(types: Sequence[Sequence[int]], ita: np.ndarray) -> dict[str, float]:
    """Mean ITA per requested type (or type pair, such as ``5-6``), lightest first."""
    keys = ["-".join(str(t) for t in ts) for ts in types]
    return {key: float(ita[[k == key for k in keys]].mean()) for key in sorted(set(keys), key=lambda k: int(k[0]))}


def judge(
    args: argparse.Namespace, train: list[dict], x_test: torch.Tensor, y_test: np.ndarray
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The independent classifier trained on the real training split (loaded from `--judge_cache` when there)."""
    name = f".judge_{Path(args.dataset_dir).name}_{args.image_dim}px_{args.epochs}ep_seed{args.seed}.pt"
    cache = Path(args.judge_cache or RESULTS / name)
    network = default_classifier(len(HAM10000_CLASSES), args.image_dim)
    if cache.is_file():
        network.load_state_dict(torch.load(cache, map_location="cpu"))
        network.eval()
    else:
        x_train = load_image_tensors(train, args.image_dim)
        network = train_classifier(
            x_train, [r["label"] for r in train], len(HAM10000_CLASSES), epochs=args.epochs, seed=args.seed
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), cache)
    predicted = predict(network, x_test).argmax(1).numpy()
    return network, {
        "real_test_balanced_accuracy": balanced_accuracy(y_test, predicted, len(HAM10000_CLASSES)),
        "train_images": len(train),
        "test_images": len(y_test),
    }


def same_count_subset(rows: Sequence[Mapping[str, Any]], labels: Sequence[int], seed: int) -> list[Mapping[str, Any]]:
    """Real rows with as many images of each diagnosis as `labels` holds (all of a diagnosis with fewer), drawn
    without replacement with `seed`: the real training set the size of the synthetic one."""
    rng = np.random.default_rng(seed)
    wanted = np.bincount(np.asarray(labels, dtype=int), minlength=len(HAM10000_CLASSES))
    subset: list[Mapping[str, Any]] = []
    for label, count in enumerate(wanted):
        of_label = [row for row in rows if int(row["label"]) == label]
        chosen = rng.choice(len(of_label), size=min(int(count), len(of_label)), replace=False)
        subset.extend(of_label[i] for i in sorted(chosen))
    return subset


def score(args: argparse.Namespace, folder: Path, train_seconds: float | None) -> dict[str, Any]:
    """Every figure of the table for the synthetic folder `folder`."""
    train = load_split(args.dataset, args.dataset_dir, "train")
    test = load_split(args.dataset, args.dataset_dir, "test")
    real = load_image_tensors(test, args.image_dim)
    y_test = np.array([r["label"] for r in test])
    classifier, judge_info = judge(args, train, real, y_test)
    column = DIAGNOSIS_COLUMN[args.bundle]
    result: dict[str, Any] = {"bundle": args.bundle, "run_dir": str(args.run_dir), "overrides": args.override}
    result["configs"] = args.config
    result["train_seconds"] = train_seconds
    result["judge"] = judge_info
    result["recognition"] = score_synthetic_folder(classifier, folder, column, args.image_dim, HAM10000_CLASSES)

    rows = read_manifest(folder)
    synthetic = load_image_tensors(rows, args.image_dim)
    synthetic_masks = load_mask_tensors(rows, args.image_dim) if args.bundle == "skindualgen" else None
    real_masks = None
    if synthetic_masks is not None:
        real_masks = load_mask_tensors(require_masks(test, args.dataset), args.image_dim)
    requested = [requested_fitzpatrick(row) for row in rows]
    if args.bundle == "classndiff":  # the real images grouped like the requests: I-II, III-IV, V-VI
        real_types = [[2 * ((r["fitzpatrick"] - 1) // 2) + 1, 2 * ((r["fitzpatrick"] - 1) // 2) + 2] for r in test]
    else:
        real_types = [[r["fitzpatrick"]] for r in test]
    result["mean_ita"] = {
        "synthetic": ita_by_type(requested, skin_ita(synthetic, synthetic_masks)),
        "real": ita_by_type(real_types, skin_ita(real, real_masks)),
    }
    means = list(result["mean_ita"]["synthetic"].values())
    falls = all(a > b for a, b in zip(means, means[1:], strict=False))
    result["mean_ita"]["synthetic_falls_monotonically"] = bool(falls)

    extractor = ClassifierFeatureExtractor(classifier, name="judge")
    real_features, synthetic_features = extract_features(extractor, real), extract_features(extractor, synthetic)
    kid = kernel_inception_distance(real_features, synthetic_features, subset_size=min(len(real), len(synthetic), 1000))
    result["domain_fid"] = frechet_distance(real_features, synthetic_features)
    result["domain_kid"] = {"mean": float(kid.mean), "std": float(kid.std)}
    # fidelity (generated images inside the real manifold) and coverage (real images inside the generated one)
    result["domain_precision_recall"] = precision_recall(real_features, synthetic_features, k=3)._asdict()

    labels = [int(row[column]) for row in rows]
    tstr = train_classifier(synthetic, labels, len(HAM10000_CLASSES), epochs=args.epochs, seed=args.seed)
    tstr_predicted = predict(tstr, real).argmax(1).numpy()
    tstr_balanced = balanced_accuracy(y_test, tstr_predicted, len(HAM10000_CLASSES))
    result["tstr_balanced_accuracy"] = tstr_balanced
    # which real diagnoses the classifier trained on the synthetic images misses
    tstr_recall = per_class_recall(y_test, tstr_predicted, len(HAM10000_CLASSES))
    result["tstr_per_class_recall"] = dict(zip(HAM10000_CLASSES, map(float, tstr_recall), strict=True))
    result["tstr_ratio_to_real"] = tstr_balanced / judge_info["real_test_balanced_accuracy"]
    # the real reference of the synthetic set's size: how much of the gap to the judge is the count of images
    real_subset = same_count_subset(train, labels, args.seed)
    same_count = train_classifier(
        load_image_tensors(real_subset, args.image_dim),
        [int(row["label"]) for row in real_subset],
        len(HAM10000_CLASSES),
        epochs=args.epochs,
        seed=args.seed,
    )
    result["real_same_count"] = {
        "images": len(real_subset),
        "balanced_accuracy": balanced_accuracy(
            y_test, predict(same_count, real).argmax(1).numpy(), len(HAM10000_CLASSES)
        ),
    }

    if synthetic_masks is not None:
        train_pairs = require_masks(train, args.dataset)
        segmenter = train_segmenter(
            load_image_tensors(train_pairs, args.image_dim),
            load_mask_tensors(train_pairs, args.image_dim),
            epochs=args.epochs,
            seed=args.seed,
        )
        segmented = predict_masks(segmenter, synthetic)
        dice = np.array([dice_score(p, t) for p, t in zip(segmented, synthetic_masks, strict=True)])
        per_class = {
            name: float(dice[np.array(labels) == label].mean())
            for label, name in enumerate(HAM10000_CLASSES)
            if label in labels
        }
        result["pair_agreement"] = {"dice": float(dice.mean()), "per_class": per_class}
    return result


def table(result: Mapping[str, Any]) -> list[str]:
    """The result as Markdown: one row per figure."""
    recognition = result["recognition"]
    per_class = ", ".join(f"{name} {entry['recognised']:.2f}" for name, entry in recognition["per_class"].items())
    ita = result["mean_ita"]
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| recognised (all / balanced) | {recognition['recognised']:.3f} / {recognition['balanced']:.3f} |",
        f"| recognised per diagnosis | {per_class} |",
        f"| worst diagnosis | {min(e['recognised'] for e in recognition['per_class'].values()):.2f} |",
        f"| ITA skin-group match | {recognition.get('skin_group_match', float('nan')):.3f} |",
        "| mean ITA per requested type, synthetic | "
        + ", ".join(f"{k}: {v:.1f}" for k, v in ita["synthetic"].items())
        + f" (falls monotonically: {ita['synthetic_falls_monotonically']}) |",
        "| mean ITA per type, real test | " + ", ".join(f"{k}: {v:.1f}" for k, v in ita["real"].items()) + " |",
        f"| domain FID / KID | {result['domain_fid']:.1f} / {result['domain_kid']['mean']:.4f} |",
    ]
    if "domain_precision_recall" in result:
        pr = result["domain_precision_recall"]
        lines.append(f"| domain precision / recall (k=3) | {pr['precision']:.3f} / {pr['recall']:.3f} |")
    lines += [
        f"| TSTR balanced accuracy (ratio to real {result['judge']['real_test_balanced_accuracy']:.3f}) | "
        f"{result['tstr_balanced_accuracy']:.3f} ({result['tstr_ratio_to_real']:.2f}) |",
    ]
    if "tstr_per_class_recall" in result:
        cells = ", ".join(f"{name} {value:.2f}" for name, value in result["tstr_per_class_recall"].items())
        lines.append(f"| TSTR recall per real diagnosis | {cells} |")
    if "real_same_count" in result:
        reference = result["real_same_count"]
        lines.append(
            f"| train on {reference['images']} real images, the synthetic set's count per diagnosis | "
            f"{reference['balanced_accuracy']:.3f} |"
        )
    if "pair_agreement" in result:
        pairs = result["pair_agreement"]
        cells = ", ".join(f"{name} {value:.2f}" for name, value in pairs["per_class"].items())
        lines.append(f"| pair agreement Dice (per diagnosis) | {pairs['dice']:.3f} ({cells}) |")
    seconds = result.get("train_seconds")
    lines.append(f"| training wall time | {'-' if seconds is None else f'{seconds / 60:.1f} min'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", choices=BUNDLES, required=True)
    parser.add_argument("--run_dir", type=Path, required=True, help="the run's output_dir")
    parser.add_argument("--tag", required=True, help="the name of the result file")
    parser.add_argument("--train", action="store_true", help="train first (bundle defaults and --override)")
    parser.add_argument("--override", action="append", default=[], help="key=value (a JSON value), for every runner")
    parser.add_argument("--config", nargs="*", default=[], help="configs merged after train.yaml, e.g. rflow.yaml")
    parser.add_argument("--dataset", default="demo", help="the reader of the real data the judges train on")
    parser.add_argument("--dataset_dir", default=None, help="default: bundles/<bundle>/data/demo")
    parser.add_argument("--image_dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the judge, TSTR and segmenter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge_cache", default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    args.dataset_dir = args.dataset_dir or str(ROOT / "bundles" / args.bundle / "data" / "demo")
    train_seconds = None
    if args.train:
        train_seconds = bundle_command(args.bundle, "training", ["train.yaml", *args.config], args.run_dir, args)
        (args.run_dir / "train_seconds.txt").write_text(f"{train_seconds:.1f}\n")
    elif (args.run_dir / "train_seconds.txt").is_file():
        train_seconds = float((args.run_dir / "train_seconds.txt").read_text())
    # one folder per tag: the writer keeps images already on disk, so a folder shared by two sampling settings would
    # score the first setting's images twice
    folder = args.run_dir / f"fidelity_synthetic_{args.tag}"
    args.override = [*args.override, f"inference_output_dir={json.dumps(str(folder.resolve()))}"]
    bundle_command(args.bundle, "inferring", ["train.yaml", *args.config, "inference.yaml"], args.run_dir, args)
    result = score(args, folder, train_seconds)
    print(f"## {args.bundle}: {args.tag}\n")
    print("\n".join(table(result)))
    output = args.output or RESULTS / f"condition_fidelity_{args.bundle}_{args.tag}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
