"""Do generated image + mask pairs agree? A segmenter (the downstream default, a MONAI ``UNet``) is trained on the
real training split's image-mask pairs and tested on the real test split; then it segments every generated image of
a paired folder (the ISIC 2018 Task 1 folder that the skindualgen ``inferring`` run writes, with its
``manifest.csv``), and the report gives the Dice and IoU between its segmentation and the generated mask, per
class. High agreement means the generated mask outlines the lesion that was generated with it.

    python benchmarks/paired_mask_agreement.py --dataset_dir bundles/skindualgen/data/demo \\
        --synthetic bundles/skindualgen/outputs/synthetic
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from monai_lesiongen.data import HAM10000_CLASSES, load_split, require_masks
from monai_lesiongen.evaluation.downstream_data import load_image_tensors, load_mask_tensors, read_manifest
from monai_lesiongen.evaluation.downstream_segmentation import evaluate_segmentation, predict_masks, train_segmenter
from monai_lesiongen.metrics.fairness import dice_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--synthetic", required=True, help="a paired folder with manifest.csv (image and mask)")
    parser.add_argument("--image_dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    train = require_masks(load_split(args.dataset, args.dataset_dir, "train"), args.dataset)
    test = require_masks(load_split(args.dataset, args.dataset_dir, "test"), args.dataset)
    segmenter = train_segmenter(
        load_image_tensors(train, args.image_dim), load_mask_tensors(train, args.image_dim),
        epochs=args.epochs, seed=args.seed,
    )  # fmt: skip
    train_seconds = round(time.perf_counter() - start, 1)
    real = evaluate_segmentation(
        predict_masks(segmenter, load_image_tensors(test, args.image_dim)), load_mask_tensors(test, args.image_dim)
    )
    rows = read_manifest(args.synthetic)
    generated_masks = load_mask_tensors(rows, args.image_dim)
    segmented = predict_masks(segmenter, load_image_tensors(rows, args.image_dim))
    agreement = evaluate_segmentation(segmented, generated_masks)
    dice = np.array([dice_score(p, t) for p, t in zip(segmented, generated_masks, strict=True)])
    labels = np.array([int(row["label"]) for row in rows])
    classes = [(label, name) for label, name in enumerate(HAM10000_CLASSES) if (labels == label).any()]
    per_class = {name: float(dice[labels == label].mean()) for label, name in classes}
    results: dict[str, Any] = {
        "segmenter": {"train_images": len(train), "train_seconds": train_seconds, "real_test": real},
        "synthetic": {"folder": args.synthetic, "agreement": agreement, "dice_per_class": per_class},
        "generated_mask_area": float(generated_masks.mean()),
        "segmented_area": float(segmented.float().mean()),
    }
    print(
        f"segmenter trained on {len(train)} real pairs in {train_seconds} s; on the {len(test)} real test pairs: "
        f"Dice {real['dice']:.3f}, IoU {real['iou']:.3f}, threshold Jaccard {real['threshold_jaccard']:.3f}"
    )
    print(
        f"{len(rows)} generated pairs, segmentation of the generated image vs the generated mask: Dice "
        f"{agreement['dice']:.3f}, IoU {agreement['iou']:.3f}; lesion area {results['generated_mask_area']:.3f} "
        f"(generated masks) vs {results['segmented_area']:.3f} (segmented)"
    )
    print("| class | Dice (generated mask vs segmentation) |\n|---|---|")
    print("\n".join(f"| {name} | {value:.3f} |" for name, value in per_class.items()))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
