"""Speed of FID feature extraction: images per second through `InceptionV3FeatureExtractor` and `extract_features`
(antialiased bicubic resize to 299 px, then the FID Inception-v3 network, 2048-d pool features), for random images
of the bundle's size. The resize alone is timed too, to show its share.

    python benchmarks/fid_features.py --output benchmarks/results/fid_features_cpu.json
    python benchmarks/fid_features.py --device cuda --images 1024 --batch 128 --sizes 32 64 256
"""

from __future__ import annotations

import argparse
from typing import Any

import bench_utils
import torch
import torch.nn.functional as F

from monai_lesiongen.metrics.feature_extractors import InceptionV3FeatureExtractor, extract_features

__all__ = ["time_feature_extraction"]


def time_feature_extraction(
    extractor: InceptionV3FeatureExtractor, size: int, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """Seconds for `extract_features` on ``--images`` random images of `size` px, and for their resize alone."""
    generator = torch.Generator().manual_seed(args.seed + size)
    images = torch.rand(args.images, 3, size, size, generator=generator).to(device)

    def resize() -> None:
        for batch in images.split(args.batch):
            F.interpolate(batch, size=(299, 299), mode=extractor.interpolation, align_corners=False, antialias=True)

    runs = {
        "extract": lambda: extract_features(extractor, images, batch_size=args.batch, device=device),
        "resize": resize,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(-args.warmup, args.repeats):
        for name, run in runs.items():
            seconds = bench_utils.time_call(run, device)
            if round_index >= 0:
                times[name].append(seconds)
    extract, resized = bench_utils.summarise(times["extract"]), bench_utils.summarise(times["resize"])
    return {
        "px": size,
        "images": args.images,
        "batch": args.batch,
        **extract,
        "images_per_s": args.images / extract["median_s"],
        "resize_median_s": resized["median_s"],
        "resize_share": resized["median_s"] / extract["median_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32], help="image sizes (px) before the resize")
    parser.add_argument("--images", type=int, default=64, help="images per timed extraction")
    parser.add_argument("--batch", type=int, default=32, help="extract_features batch size")
    parser.add_argument("--weights_path", default=None, help="FID Inception TorchScript file (default: fid-helper's)")
    bench_utils.add_common_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    if args.amp:
        parser.error("--amp: FID features are computed in float32 (extract_features has no autocast); leave it out.")
    device = bench_utils.setup_device(args)
    extractor = InceptionV3FeatureExtractor(args.weights_path).to(device)
    results = [time_feature_extraction(extractor, size, args, device) for size in args.sizes]

    env = bench_utils.environment(args, device)
    print(
        f"{env['device']}, {env['torch_threads']} threads, torch {env['torch']}, {args.images} images in batches of "
        f"{args.batch}, {args.warmup} warm-up + {args.repeats} timed extraction(s)"
    )
    headers = ["px", "images/s", "s per extraction (median)", "resize s", "resize share"]
    rows = [[r["px"], r["images_per_s"], r["median_s"], r["resize_median_s"], r["resize_share"]] for r in results]
    print("\n" + bench_utils.markdown_table(headers, rows))
    bench_utils.write_json(
        args.output,
        {"benchmark": "fid_features", "environment": env, "weights": str(extractor.weights_path), "results": results},
    )


if __name__ == "__main__":
    main()
