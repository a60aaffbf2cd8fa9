"""Where does the residual pixel noise of the samples come from: the network's predictions, or the sampler?

For a trained bundle run, two measurements in one scale, the high-frequency energy of an image (the standard
deviation of the image minus its 3x3 box blur, in the [-1, 1] data range; the real training images' figure is
printed beside):

1. **One step from real images.** Real training images with their own conditions are noised to timestep t and
   denoised once: the noise prediction's error and norm against the true noise, and the x0 estimate's error and
   high-frequency energy. A network that leaves noise in x0 from the images it learned on is the cause.
2. **Whole sampling runs.** The bundle's own sampler draws images for a slice of its inference plan at each
   requested (eta, steps) setting; the high-frequency energy of the final samples. Samples noisier than the one-step
   estimates say the sampler's trajectory, not the network, puts the noise there.

    python benchmarks/denoising_diagnostics.py --bundle lesiongen --config ddpm.yaml --run_dir /tmp/runs/lg_e20 \\
        --dataset_dir /tmp/runs/demo --settings 0:25 0:100 0.5:25 1:25 1:50 \\
        --output benchmarks/results/denoising_diagnostics_lesiongen.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from torch import nn

from monai_lesiongen.bundle import load_network_weights
from monai_lesiongen.schedulers import noise_process

ROOT = Path(__file__).resolve().parents[1]
TIMESTEPS = (0, 10, 25, 50, 100, 200, 300, 500, 700, 900)


def high_frequency(images: torch.Tensor) -> float:
    """The standard deviation of `images` minus their 3x3 box blur: how much pixel-scale detail (or noise) they hold."""
    return float((images - F.avg_pool2d(images, 3, 1, 1, count_include_pad=False)).std())


def load_run(
    bundle: str, run_dir: Path, dataset_dir: Path, checkpoint: str, extra_configs: Sequence[str] = ()
) -> tuple[ConfigParser, nn.Module]:
    """The bundle's training (with `extra_configs`, e.g. ``ddpm.yaml``) and inference configs for the run, and its
    network with `checkpoint` loaded."""
    configs = ROOT / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / name) for name in ("train.yaml", *extra_configs, "inference.yaml")])
    parser.update({"bundle_root": str(configs.parent), "output_dir": str(run_dir), "dataset_dir": str(dataset_dir)})
    network = parser.get_parsed_content("network")
    load_network_weights(network, run_dir / "checkpoints" / checkpoint, torch.device("cpu"))
    return parser, network.eval()


@torch.no_grad()
def one_step(parser: ConfigParser, network: nn.Module, num_images: int, seed: int) -> dict[str, Any]:
    """Per timestep, the one-step prediction on real training images noised to it (conditions kept, no dropout)."""
    torch.manual_seed(seed)
    loader = parser.get_parsed_content("train#dataloader")
    prepare_batch = parser.get_parsed_content("train#prepare_batch")
    prepare_batch.condition_dropout = 0.0
    process = noise_process(parser.get_parsed_content("scheduler"), parser.get_parsed_content("prediction_type"))
    batches, count = [], 0
    for batch in loader:
        batches.append(batch)
        count += batch["image"].shape[0]
        if count >= num_images:
            break
    rows = []
    for batch in batches:
        images = torch.as_tensor(batch["image"])
        conditions = prepare_batch.get_conditions(batch, images.shape[0], "cpu")
        for t in TIMESTEPS:
            noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed + t))
            timesteps = torch.full((images.shape[0],), t, dtype=torch.long)
            noisy = process.add_noise(images, noise, timesteps)
            output = network(
                noisy, timesteps, context=conditions.get("condition"), class_labels=conditions.get("class_labels")
            )
            estimate = process.original_sample(output, noisy, timesteps)
            predicted_noise = process.noise_estimate(output, noisy, timesteps)
            noise_level = float(process.coefficients(timesteps[:1], 4)[1])
            estimate = estimate.clamp(-1, 1)
            rows.append(
                {
                    "timestep": t,
                    "noise_level": noise_level,
                    "noise_mse": float(F.mse_loss(predicted_noise, noise)),
                    "noise_norm_ratio": float(predicted_noise.norm() / noise.norm()),
                    "x0_mse": float(F.mse_loss(estimate, images)),
                    "x0_high_frequency": high_frequency(estimate),
                }
            )
    real = torch.cat([torch.as_tensor(b["image"]) for b in batches])
    # the mean over the batches, per timestep
    merged = [
        {
            "timestep": t,
            **{
                key: sum(r[key] for r in rows if r["timestep"] == t) / len(batches)
                for key in rows[0]
                if key != "timestep"
            },
        }
        for t in TIMESTEPS
    ]
    return {"real_high_frequency": high_frequency(real), "images": int(real.shape[0]), "per_timestep": merged}


def sampling(parser: ConfigParser, network: nn.Module, settings: list[tuple[float, int]], rows: int) -> list[dict]:
    """The high-frequency energy of the bundle sampler's images for the first `rows` plan rows (every third)."""
    plan = parser.get_parsed_content("inference_plan")[::3][:rows]
    sampler = parser.get_parsed_content("inference_sampler")
    captions = [row["caption"] for row in plan] if sampler.text_encoder is not None else None
    class_key = parser.get_parsed_content("class_key", default=None)
    labels = [row[class_key] for row in plan] if class_key else None
    results = []
    for eta, steps in settings:
        sampler.eta, sampler.num_inference_steps = eta, steps
        images = sampler(network, list(range(len(plan))), captions=captions, class_labels=labels)[:, :3]
        results.append({"eta": eta, "steps": steps, "sample_high_frequency": high_frequency(images * 2 - 1)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", choices=("lesiongen", "skindualgen"), default="lesiongen")
    parser.add_argument("--run_dir", type=Path, required=True)
    parser.add_argument("--dataset_dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default="model_best.pt", help="a weights file in the run's checkpoints/")
    parser.add_argument("--config", nargs="*", default=[], help="configs after train.yaml, e.g. ddpm.yaml")
    parser.add_argument("--settings", nargs="+", default=["0:25", "1:25"], help="eta:steps of each sampling run")
    parser.add_argument("--images", type=int, default=32, help="real images for the one-step measurement")
    parser.add_argument("--rows", type=int, default=14, help="plan rows (one image each) per sampling run")
    parser.add_argument("--output", type=Path, default=None, help="a JSON file for the figures")
    args = parser.parse_args()
    config, network = load_run(args.bundle, args.run_dir, args.dataset_dir, args.checkpoint, args.config)
    settings = [(float(eta), int(steps)) for eta, _, steps in (s.partition(":") for s in args.settings)]
    result = {"run_dir": str(args.run_dir), "checkpoint": args.checkpoint}
    result.update(one_step(config, network, args.images, seed=0))
    result["sampling"] = sampling(config, network, settings, args.rows)
    print(f"real training images: high-frequency energy {result['real_high_frequency']:.4f}\n")
    print("| t | noise level | noise MSE | predicted / true noise norm | x0 MSE | x0 high-frequency |")
    print("|---|---|---|---|---|---|")
    for row in result["per_timestep"]:
        print(
            f"| {row['timestep']} | {row['noise_level']:.3f} | {row['noise_mse']:.4f} | {row['noise_norm_ratio']:.3f} "
            f"| {row['x0_mse']:.4f} | {row['x0_high_frequency']:.4f} |"
        )
    print("\n| eta | steps | samples' high-frequency energy |\n|---|---|---|")
    for row in result["sampling"]:
        print(f"| {row['eta']} | {row['steps']} | {row['sample_high_frequency']:.4f} |")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
