"""The training data pipeline of the LesionGen bundle with a `CacheDataset`: the lesion measured by the random
`BuildCaptiond` every epoch on the cached full-size image and mask (the order before `MeasureLesiond`), against
measured once by `MeasureLesiond`, resized and cached small (the bundle's order now); and for the latent
configuration (``--latent``), the image encoded after the random flip, every epoch (the former order), against the
image and its mirror image encoded once and cached, one of the two latents picked per epoch (`RandMirroredLatentd`).
Prints the cache's size, the time to fill it, and the time of one epoch of preprocessing.

    python benchmarks/data_pipeline.py --threads 2 --output benchmarks/results/data_pipeline_cpu.json
    python benchmarks/data_pipeline.py --threads 2 --latent --sizes 64 --image_dim 64 \
        --output benchmarks/results/data_pipeline_latent_cpu.json
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_utils
import torch
import yaml
from monai.data import CacheDataset
from monai.networks.nets import AutoencoderKL
from monai.transforms import (
    Compose,
    DeleteItemsd,
    EnsureChannelFirstd,
    LoadImaged,
    RandFlipd,
    Resized,
    ScaleIntensityRanged,
)

from monai_lesiongen.data import CaptionBuilder, load_records, to_datalist
from monai_lesiongen.transforms import BuildCaptiond, EncodeLatentd, MeasureLesiond, RandMirroredLatentd

__all__ = ["encoded_every_epoch", "encoded_once", "measured_every_epoch", "measured_once"]

AUTOENCODER_CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "lesiongen" / "configs" / "autoencoder.yaml"


def _resize_and_scale(image_dim: int, keys: list[str]) -> list[Any]:
    return [
        Resized(keys=keys, spatial_size=(image_dim, image_dim), mode="area"),
        ScaleIntensityRanged(keys=keys, a_min=0.0, a_max=255.0, b_min=-1.0, b_max=1.0, clip=True),
    ]


def measured_every_epoch(image_dim: int) -> Compose:
    """The bundle's former order: the random caption transform measures the full-size pair it finds in the cache."""
    return Compose(
        [
            LoadImaged(keys=["image", "mask"], image_only=True),
            EnsureChannelFirstd(keys=["image", "mask"]),
            BuildCaptiond(keys="caption", builder=CaptionBuilder(field_dropout=0.5, seed=0)),
            *_resize_and_scale(image_dim, ["image"]),
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
        ]
    )


def measured_once(image_dim: int) -> Compose:
    """The bundle's order: measured, the mask dropped and the image resized before the first random transform."""
    return Compose(
        [
            LoadImaged(keys=["image", "mask"], image_only=True),
            EnsureChannelFirstd(keys=["image", "mask"]),
            MeasureLesiond(keys="measurements"),
            DeleteItemsd(keys="mask"),
            *_resize_and_scale(image_dim, ["image"]),
            BuildCaptiond(
                keys="caption", builder=CaptionBuilder(field_dropout=0.5, seed=0), measurements_key="measurements"
            ),
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
        ]
    )


def _bundle_autoencoder() -> AutoencoderKL:
    """The latent configuration's autoencoder (random weights: the timing does not depend on them)."""
    arguments = yaml.safe_load(AUTOENCODER_CONFIG.read_text(encoding="utf-8"))["autoencoder_def"]
    arguments = {k: v for k, v in arguments.items() if k != "_target_"}
    arguments["latent_channels"] = 3
    return AutoencoderKL(**arguments).eval()


def _measured_and_resized(image_dim: int) -> list[Any]:
    return [
        LoadImaged(keys=["image", "mask"], image_only=True),
        EnsureChannelFirstd(keys=["image", "mask"]),
        MeasureLesiond(keys="measurements"),
        DeleteItemsd(keys="mask"),
        *_resize_and_scale(image_dim, ["image"]),
    ]


def _caption() -> BuildCaptiond:
    return BuildCaptiond(
        keys="caption", builder=CaptionBuilder(field_dropout=0.5, seed=0), measurements_key="measurements"
    )


def encoded_every_epoch(image_dim: int, autoencoder: AutoencoderKL) -> Compose:
    """The latent configuration's former order: the image flipped at random, then encoded, every epoch."""
    return Compose(
        [
            *_measured_and_resized(image_dim),
            _caption(),
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
            EncodeLatentd(keys="image", autoencoder=autoencoder),
        ]
    )


def encoded_once(image_dim: int, autoencoder: AutoencoderKL) -> Compose:
    """The latent configuration's order: the image and its mirror image encoded once, one latent picked per epoch."""
    return Compose(
        [
            *_measured_and_resized(image_dim),
            EncodeLatentd(keys="image", autoencoder=autoencoder, mirrored_suffix="_mirrored"),
            _caption(),
            RandMirroredLatentd(keys="image", mirrored_suffix="_mirrored"),
        ]
    )


def _cache_mib(dataset: CacheDataset) -> float:
    total = 0
    for item in dataset._cache:
        for value in item.values():
            if isinstance(value, torch.Tensor):
                total += value.element_size() * value.numel()
    return total / 2**20


def time_pipeline(datalist: list[dict[str, Any]], build: Callable[[int], Compose], image_dim: int) -> dict[str, Any]:
    """Seconds to fill the cache, its MiB, and seconds of one epoch of the remaining (random) transforms."""
    start = time.perf_counter()
    dataset = CacheDataset(datalist, transform=build(image_dim), cache_rate=1.0, num_workers=0, progress=False)
    fill_s = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    epoch_s = time.perf_counter() - start
    return {"cache_fill_s": fill_s, "cache_mib": _cache_mib(dataset), "epoch_s": epoch_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 448], help="demo image sizes (px) on disk")
    parser.add_argument("--images", type=int, default=200, help="demo images per size")
    parser.add_argument("--image_dim", type=int, default=32, help="the training size (the bundle's image_dim)")
    parser.add_argument("--latent", action="store_true", help="time the latent configuration's encoding instead")
    bench_utils.add_common_arguments(parser, repeats=1, warmup=0)
    args = parser.parse_args()
    device = bench_utils.setup_device(args)
    rows, results = [], []
    autoencoder = _bundle_autoencoder() if args.latent else None
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            demo = {"num_images": args.images, "image_size": size, "seed": args.seed, "progress": False}
            datalist = to_datalist(load_records("demo", Path(folder) / f"demo{size}", demo_kwargs=demo))
            pipelines: dict[str, Callable[[int], Compose]] = (
                {
                    "encoded every epoch": functools.partial(encoded_every_epoch, autoencoder=autoencoder),
                    "encoded once, mirror image cached": functools.partial(encoded_once, autoencoder=autoencoder),
                }
                if autoencoder is not None
                else {"measured every epoch": measured_every_epoch, "measured once": measured_once}
            )
            for name, build in pipelines.items():
                figures = time_pipeline(datalist, build, args.image_dim)
                results.append({"px_on_disk": size, "pipeline": name, **figures})
                rows.append([size, name, figures["cache_fill_s"], figures["cache_mib"], figures["epoch_s"]])
    env = bench_utils.environment(args, device)
    print(
        f"{env['device']}, {env['torch_threads']} threads, torch {env['torch']}, {args.images} demo images per size, "
        f"trained at {args.image_dim} px"
    )
    headers = ["px on disk", "pipeline", "cache fill s", "cache MiB", "epoch s (random transforms)"]
    print("\n" + bench_utils.markdown_table(headers, rows))
    bench_utils.write_json(args.output, {"benchmark": "data_pipeline", "environment": env, "results": results})


if __name__ == "__main__":
    main()
