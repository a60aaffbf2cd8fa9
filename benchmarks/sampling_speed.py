"""Sampling speed of the default conditioned denoiser: seconds per image for DDPM-1000, DDIM-50, DDIM-25 and PNDM-50
(MONAI schedulers with the noise schedule of the LesionGen bundle), without classifier-free guidance (scale 1: one
forward of the batch per step) and with it (scale 3, the bundle's default: the conditional and unconditional passes
as one forward of twice the batch), through the bundle's `ConditionedSampler`; and the cost per prompt of the
`FrozenTextEncoder` with its cache off (``cache_size=0``) and on (a miss, a hit).

DDPM is timed over ``--ddpm_steps`` steps (a strided DDPM schedule; each step costs one forward and one scheduler
step, as in the full chain) and the time is extrapolated linearly to the scheduler's 1000 training steps; the table
marks such rows. The denoiser has random weights (speed does not depend on their values), the captions are real
prompts of the generation grid, encoded once before timing, so that the sampling figures are the denoising loop and
the text-encoding table gives the encoder's share. Each sampler call draws ``--batch`` images; configurations are
timed interleaved, rotating their order every round.

    python benchmarks/sampling_speed.py --output benchmarks/results/sampling_speed_cpu.json
    python benchmarks/sampling_speed.py --device cuda --amp --ddpm_steps 1000 --sizes 32 64 128
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bench_utils
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler, Scheduler
from transformers.utils import logging as transformers_logging

from monai_lesiongen.data import HAM10000_CLASSES, CaptionBuilder, condition_grid_plan
from monai_lesiongen.inferers import ConditionedDiffusionInferer, ConditionedSampler
from monai_lesiongen.networks import ConditionedDiffusionUNet, FrozenTextEncoder

__all__ = ["SamplerSpec", "grid_prompts", "sampler_specs", "time_text_encoding"]


@dataclass(frozen=True)
class SamplerSpec:
    """A sampling scheduler to time: its name, class and arguments, the steps run and the steps reported."""

    name: str
    scheduler: type[Scheduler]
    arguments: Mapping[str, Any]
    steps: int
    reported_steps: int

    @property
    def scale(self) -> float:
        """Factor from the timed steps to the reported ones (1 when nothing is extrapolated)."""
        return self.reported_steps / self.steps


def sampler_specs(args: argparse.Namespace, defaults: Mapping[str, Any]) -> list[SamplerSpec]:
    """DDPM (over ``--ddpm_steps``, reported for the full chain), DDIM at each ``--ddim_steps`` and PNDM, with the
    bundle's noise schedule (DDIM with the bundle's sampling scheduler, DDPM and PNDM with its training one)."""
    training = dict(defaults["scheduler"])
    full = int(training["num_train_timesteps"])
    if not 1 <= args.ddpm_steps <= full:
        raise ValueError(f"--ddpm_steps must be in 1..{full}, got {args.ddpm_steps}.")
    specs = [SamplerSpec(f"DDPM-{full}", DDPMScheduler, training, args.ddpm_steps, full)]
    specs += [
        SamplerSpec(f"DDIM-{n}", DDIMScheduler, dict(defaults["sampling_scheduler"]), n, n) for n in args.ddim_steps
    ]
    specs += [SamplerSpec(f"PNDM-{n}", PNDMScheduler, training, n, n) for n in args.pndm_steps]
    return specs


def grid_prompts(encoder: FrozenTextEncoder, max_tokens: int) -> list[str]:
    """The captions of the bundle's generation grid: every HAM10000 diagnosis at Fitzpatrick types 1-6."""
    builder = CaptionBuilder(
        mode="caption", max_tokens=max_tokens, tokenizer=lambda text: encoder.tokenizer(text)["input_ids"]
    )
    return [str(row["caption"]) for row in condition_grid_plan(HAM10000_CLASSES, range(1, 7), builder)]


class CallCounter:
    """Counts the forward calls of a network while in a ``with`` block (a forward hook, removed on exit)."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network
        self.calls = 0

    def __enter__(self) -> CallCounter:
        self._handle = self.network.register_forward_hook(self._count)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.remove()

    def _count(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        self.calls += 1


def time_sampling(
    size: int,
    specs: Sequence[SamplerSpec],
    network: ConditionedDiffusionUNet,
    encoder: FrozenTextEncoder,
    captions: Sequence[str],
    args: argparse.Namespace,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Seconds per image of every (sampler, guidance scale) at one image size, timed interleaved."""
    inferer = ConditionedDiffusionInferer(scheduler=DDPMScheduler(**specs[0].arguments))
    configs = [(spec, scale) for spec in specs for scale in args.guidance_scales]
    seeds = list(range(args.batch))

    def sample(spec: SamplerSpec, scale: float, steps: int) -> None:
        sampler = ConditionedSampler(
            inferer,
            spec.scheduler(**spec.arguments),
            (network.image_channels, size, size),
            num_inference_steps=steps,
            guidance_scale=scale,
            text_encoder=encoder,
            batch_size=args.batch,
            progress=False,
        )
        with bench_utils.autocast(device, args.amp):
            sampler(network, seeds, captions=captions)

    for _ in range(args.warmup):
        for scale in args.guidance_scales:
            sample(specs[0], scale, 2)
    times: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    calls: dict[int, int] = {}
    with CallCounter(network) as counter:
        for round_index in range(args.repeats):
            order = list(range(len(configs)))
            shift = round_index % len(order)
            for i in order[shift:] + order[:shift]:
                spec, scale = configs[i]
                counter.calls = 0
                times[i].append(bench_utils.time_call(functools.partial(sample, spec, scale, spec.steps), device))
                calls[i] = counter.calls
    results = []
    for i, (spec, scale) in enumerate(configs):
        timing = bench_utils.summarise(times[i])
        per_image = timing["median_s"] * spec.scale / args.batch
        results.append(
            {
                "px": size,
                "sampler": spec.name,
                "guidance_scale": scale,
                "timed_steps": spec.steps,
                "extrapolated_to": spec.reported_steps if spec.scale != 1 else None,
                "network_calls": calls[i],
                "forward_batch": args.batch * (2 if scale != 1 else 1),
                **timing,
                "s_per_image": per_image,
                "images_per_s": 1 / per_image,
                "s_per_network_call": timing["median_s"] / calls[i],
            }
        )
    return results


def time_text_encoding(
    encoder_path: str | None, captions: Sequence[str], max_tokens: int, args: argparse.Namespace, device: torch.device
) -> list[dict[str, Any]]:
    """Seconds per prompt of `FrozenTextEncoder.encode` for a batch of `captions`: cache off; cache on with new
    captions (misses: encoded and stored); cache on with the same captions again (hits)."""
    without = FrozenTextEncoder(encoder_path, max_length=max_tokens, cache_size=0).to(device)
    cached = FrozenTextEncoder(encoder_path, max_length=max_tokens, cache_size=8192).to(device)
    runs: dict[str, Callable[[int], torch.Tensor]] = {
        "cache off (cache_size=0)": lambda r: without.encode(captions, device=device),
        "cache on, miss": lambda r: cached.encode([f"{c}, take {r}" for c in captions], device=device),
        "cache on, hit": lambda r: cached.encode(captions, device=device),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(-args.warmup, args.text_repeats):
        for name, run in runs.items():
            seconds = bench_utils.time_call(functools.partial(run, round_index), device)
            if round_index >= 0:
                times[name].append(seconds)
    results = []
    for name, repeats in times.items():
        timing = bench_utils.summarise(repeats)
        results.append(
            {
                "encoder": name,
                "prompts": len(captions),
                **timing,
                "ms_per_prompt": 1e3 * timing["median_s"] / len(captions),
            }
        )
    return results


def note(row: Mapping[str, Any]) -> str:
    """The table's note on a row whose time is extrapolated."""
    if not row["extrapolated_to"]:
        return ""
    return f"timed over {row['timed_steps']} steps, extrapolated to {row['extrapolated_to']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (px)")
    parser.add_argument("--batch", type=int, default=16, help="images per sampler call (the sampler's batch)")
    parser.add_argument("--ddpm_steps", type=int, default=50, help="DDPM steps timed; extrapolated to 1000")
    parser.add_argument("--ddim_steps", type=int, nargs="*", default=[50, 25])
    parser.add_argument("--pndm_steps", type=int, nargs="*", default=[50])
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--text_encoder_path", default=None, help="a local Hugging Face encoder (default: MiniLM)")
    parser.add_argument("--text_repeats", type=int, default=20, help="timed encodings of the prompt batch")
    bench_utils.add_common_arguments(parser, repeats=1, warmup=1)
    args = parser.parse_args()
    device = bench_utils.setup_device(args)
    transformers_logging.disable_progress_bar()
    defaults = bench_utils.bundle_defaults()
    specs = sampler_specs(args, defaults)

    encoder = FrozenTextEncoder(args.text_encoder_path, max_length=defaults["max_tokens"], cache_size=8192).to(device)
    denoiser = {**bench_utils.default_denoiser(), "cross_attention_dim": encoder.hidden_size}
    network = ConditionedDiffusionUNet(**denoiser).to(device)
    prompts = grid_prompts(encoder, defaults["max_tokens"])
    captions = [prompts[i % len(prompts)] for i in range(args.batch)]
    encoder.encode(captions, device=device)
    sampling = [
        row for size in args.sizes for row in time_sampling(size, specs, network, encoder, captions, args, device)
    ]
    text = time_text_encoding(args.text_encoder_path, captions, defaults["max_tokens"], args, device)

    env = bench_utils.environment(args, device)
    print(
        f"{env['device']}, {env['torch_threads']} threads, torch {env['torch']}, {args.batch} images per sampler call, "
        f"{args.warmup} warm-up + {args.repeats} timed call(s) per configuration, interleaved"
    )
    headers = ["px", "sampler", "guidance", "network calls", "forward batch", "s/image", "images/s", "s/call", "note"]
    rows = [
        [r["px"], r["sampler"], r["guidance_scale"], r["network_calls"], r["forward_batch"], r["s_per_image"]]
        + [r["images_per_s"], r["s_per_network_call"]]
        + [note(r)]
        for r in sampling
    ]
    print("\n" + bench_utils.markdown_table(headers, rows))
    print(
        "\n"
        + bench_utils.markdown_table(
            ["text encoder", "prompts per call", "ms/prompt (median)"],
            [[r["encoder"], r["prompts"], r["ms_per_prompt"]] for r in text],
        )
    )
    bench_utils.write_json(
        args.output,
        {
            "benchmark": "sampling_speed",
            "environment": env,
            "denoiser": denoiser,
            "text_encoder": encoder.model_path,
            "sampling": sampling,
            "text_encoding": text,
        },
    )


if __name__ == "__main__":
    main()
