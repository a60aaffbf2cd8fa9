"""Classifier-free guidance: one forward of the conditional and unconditional halves together (what
`ConditionedDiffusionInferer` does) against two forwards of half the batch each, for the default denoiser.

    python benchmarks/cfg_batching.py --threads 2 --output benchmarks/results/cfg_batching_cpu.json
    python benchmarks/cfg_batching.py --device cuda --amp --sizes 32 64 128 --batch 64
"""

from __future__ import annotations

import argparse
from typing import Any

import bench_utils
import torch

from monai_lesiongen.networks import ConditionedDiffusionUNet

__all__ = ["time_cfg_forward"]


def time_cfg_forward(
    network: torch.nn.Module, size: int, context_length: int, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """Seconds of one guided denoiser evaluation for ``--batch`` images, batched and as two passes, interleaved."""
    generator = torch.Generator().manual_seed(args.seed + size)
    batch = args.batch
    x = torch.randn(batch, network.in_channels, size, size, generator=generator).to(device)
    timesteps = torch.full((batch,), 500, dtype=torch.long, device=device)
    context = torch.randn(batch, context_length, bench_utils.MINILM_WIDTH, generator=generator).to(device)
    null_context = torch.zeros_like(context)

    @torch.no_grad()
    def batched() -> None:
        with bench_utils.autocast(device, args.amp):
            out = network(torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([null_context, context]))
            out_uncond, out_cond = out.chunk(2)
            _ = out_uncond + 3.0 * (out_cond - out_uncond)

    @torch.no_grad()
    def two_passes() -> None:
        with bench_utils.autocast(device, args.amp):
            out_uncond = network(x, timesteps, null_context)
            out_cond = network(x, timesteps, context)
            _ = out_uncond + 3.0 * (out_cond - out_uncond)

    runs = {"one forward of 2B": batched, "two forwards of B": two_passes}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(-args.warmup, args.repeats):
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds = bench_utils.time_call(runs[name], device)
            if round_index >= 0:
                times[name].append(seconds)
    return {"px": size, "batch": batch, "modes": {name: bench_utils.summarise(t) for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (px)")
    parser.add_argument("--batch", type=int, default=16, help="images per guided evaluation (B)")
    parser.add_argument("--context_length", type=int, default=32, help="text tokens in the context")
    bench_utils.add_common_arguments(parser, repeats=10, warmup=2)
    args = parser.parse_args()
    device = bench_utils.setup_device(args)
    denoiser = {**bench_utils.default_denoiser(), "cross_attention_dim": bench_utils.MINILM_WIDTH}
    network = ConditionedDiffusionUNet(**denoiser).to(device).eval()
    results = [time_cfg_forward(network, size, args.context_length, args, device) for size in args.sizes]

    env = bench_utils.environment(args, device)
    print(
        f"{env['device']}, {env['torch_threads']} threads, torch {env['torch']}, B = {args.batch}, "
        f"{args.context_length} context tokens, {args.warmup} warm-up + {args.repeats} timed rounds, interleaved"
    )
    rows = []
    for result in results:
        batched = result["modes"]["one forward of 2B"]["median_s"]
        separate = result["modes"]["two forwards of B"]["median_s"]
        rows.append([result["px"], result["batch"], 1e3 * batched, 1e3 * separate, separate / batched])
    headers = ["px", "B", "one forward of 2B (ms)", "two forwards of B (ms)", "speed-up of batching"]
    print("\n" + bench_utils.markdown_table(headers, rows))
    bench_utils.write_json(
        args.output, {"benchmark": "cfg_batching", "environment": env, "denoiser": denoiser, "results": results}
    )


if __name__ == "__main__":
    main()
