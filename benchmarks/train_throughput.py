"""Training throughput of the default conditioned denoiser next to a diffusers ``UNet2DConditionModel`` of identical
size, and the FLOP/s a training step achieves against the machine's matmul FLOP/s.

One training step is forward + MSE loss + backward + AdamW step, on the same random inputs for every network (x,
timesteps, a (B, 16, 384) context as from the MiniLM text encoder), with the same batch and threads. The diffusers
network is built from the MONAI arguments by the inverse of ``sd_unet_arguments`` (which must give them back), and
the two parameter counts must be equal. All variants (MONAI with SDPA on and off, channels_last, diffusers, and
``--compile``'d ones) are warmed up and timed interleaved in one run, rotating their order every round, so that a
change of machine load hits all of them alike. FLOPs are the matmul and convolution FLOPs of forward + backward,
counted once per network and size by ``torch.utils.flop_counter.FlopCounterMode`` with SDPA on its math backend
(the counter has no formula for the CPU SDPA kernel); they are divided by the median step time and by the best FLOP/s
of a 2048 x 2048 ``torch.mm`` with the same threads, measured before and after the steps.

    python benchmarks/train_throughput.py --output benchmarks/results/train_throughput_cpu.json
    python benchmarks/train_throughput.py --device cuda --amp --batch 64 --sizes 32 64 128 256 --compile
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import bench_utils
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from monai_lesiongen.networks import ConditionedDiffusionUNet, sd_unet_arguments

__all__ = ["DEFAULT_DENOISER", "TrainingStep", "Variant", "build_diffusers_unet", "diffusers_unet_config"]

# the denoiser of bundles/lesiongen/configs/train.yaml
DEFAULT_DENOISER = bench_utils.default_denoiser()
CONTEXT_TOKENS = 16
NUM_TRAIN_TIMESTEPS = 1000
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Variant:
    """One network set-up to time: its library, attention kernel, memory format and compilation."""

    name: str
    library: str
    sdpa: bool = True
    channels_last: bool = False
    compiled: bool = False


VARIANTS = {
    v.name: v
    for v in (
        Variant("monai", "MONAI"),
        Variant("monai-no-sdpa", "MONAI", sdpa=False),
        Variant("monai-channels-last", "MONAI", channels_last=True),
        Variant("monai-compile", "MONAI", compiled=True),
        Variant("diffusers", "diffusers"),
        Variant("diffusers-no-sdpa", "diffusers", sdpa=False),
        Variant("diffusers-channels-last", "diffusers", channels_last=True),
        Variant("diffusers-compile", "diffusers", compiled=True),
    )
}
DEFAULT_VARIANTS = ("monai", "monai-no-sdpa", "monai-channels-last", "diffusers", "diffusers-channels-last")


def diffusers_unet_config(arguments: Mapping[str, Any], sample_size: int = 32) -> dict[str, Any]:
    """The ``UNet2DConditionModel`` config of the same network as `ConditionedDiffusionUNet(**arguments)`: the inverse
    of ``sd_unet_arguments``. diffusers counts attention heads where MONAI gives their width, and its residual-block
    norm epsilon is set to MONAI's 1e-6.

    Raises:
        ValueError: for a mask channel or class condition (no diffusers counterpart here), or when
            ``sd_unet_arguments`` does not give the same network back.
    """
    if arguments.get("mask_channels", 0) or arguments.get("num_classes") is not None:
        raise ValueError("the diffusers counterpart covers the text-conditioned denoiser only (no mask, no classes).")
    channels = list(arguments["channels"])
    levels = len(channels)
    attention = [bool(a) for a in arguments["attention_levels"]]
    head_channels = arguments["num_head_channels"]
    head_channels = list(head_channels) if isinstance(head_channels, Sequence) else [head_channels] * levels
    config = {
        "sample_size": sample_size,
        "in_channels": arguments["image_channels"],
        "out_channels": arguments["image_channels"],
        "block_out_channels": channels,
        "layers_per_block": arguments["num_res_blocks"],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "attention_head_dim": [c // h for c, h in zip(channels, head_channels, strict=True)],
        "cross_attention_dim": arguments["cross_attention_dim"],
        "norm_num_groups": arguments["norm_num_groups"],
        "norm_eps": 1e-6,
    }
    back = sd_unet_arguments(config)
    expected = {**back, **{k: arguments[k] for k in back if k in arguments}}
    expected["num_head_channels"] = head_channels
    if back != expected:
        raise ValueError(
            f"sd_unet_arguments gives {back} for the diffusers config, not the MONAI arguments {arguments}."
        )
    return config


def build_diffusers_unet(arguments: Mapping[str, Any], sdpa: bool = True) -> nn.Module:
    """The diffusers ``UNet2DConditionModel`` of the same size as `ConditionedDiffusionUNet(**arguments)`; with
    `sdpa` False its attention is diffusers' classic ``AttnProcessor`` (baddbmm, softmax, bmm), as MONAI's without
    SDPA."""
    from diffusers import UNet2DConditionModel

    unet: Any = UNet2DConditionModel(**diffusers_unet_config(arguments))
    if not sdpa:
        unet.set_default_attn_processor()
    return unet


def count_parameters(network: nn.Module) -> int:
    """The number of parameters (weights) of `network`."""
    return sum(p.numel() for p in network.parameters())


class TrainingStep:
    """One training step of a denoiser: forward, MSE loss against the target, backward, AdamW step.

    Args:
        network: the denoiser, moved to `device` (and to channels_last when asked) here.
        library: ``"MONAI"`` or ``"diffusers"``: how the network takes the context and gives its output.
        device: where the step runs.
        amp: bfloat16 autocast for forward and loss (CUDA).
        channels_last: the network's weights and the inputs in channels_last memory format.
        compiled: run the network through ``torch.compile``.
    """

    def __init__(
        self,
        network: nn.Module,
        library: str,
        device: torch.device,
        amp: bool = False,
        channels_last: bool = False,
        compiled: bool = False,
    ) -> None:
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # torch's stubs lack Module.to's memory_format keyword
        self.network = network.to(device).to(memory_format=memory_format).train()  # type: ignore[call-overload]
        self.library = library
        self.device = device
        self.amp = amp
        self.memory_format = memory_format
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
        self.run: Callable[..., Any] = torch.compile(self.network) if compiled else self.network

    def predict(self, network: Callable[..., Any], x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> Any:
        if self.library == "diffusers":
            return network(x, t, encoder_hidden_states=context, return_dict=False)[0]
        return network(x, t, context)

    def loss_backward(self, network: Callable[..., Any], inputs: Mapping[str, torch.Tensor]) -> None:
        x = inputs["x"].contiguous(memory_format=self.memory_format)
        with bench_utils.autocast(self.device, self.amp):
            prediction = self.predict(network, x, inputs["timesteps"], inputs["context"])
            loss = F.mse_loss(prediction.float(), inputs["target"])
        loss.backward()

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> None:
        self.loss_backward(self.run, inputs)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def count_training_flops(step: TrainingStep, inputs: Mapping[str, torch.Tensor]) -> int:
    """Matmul and convolution FLOPs of the forward + backward of `step`'s network, counted on a copy on the meta
    device (no computation), with SDPA on its math backend so that the counter sees the attention matmuls."""
    network = copy.deepcopy(step.network).to("meta")
    meta_inputs = {k: v.to("meta") for k, v in inputs.items()}
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        step.loss_backward(network, meta_inputs)
    return int(counter.get_total_flops())


def make_inputs(batch: int, size: int, channels: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Random x_t, timesteps, a (B, 16, 384) context and a noise target, the same for every network."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    inputs = {
        "x": torch.randn(shape, generator=generator),
        "timesteps": torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,), generator=generator),
        "context": torch.randn(batch, CONTEXT_TOKENS, DEFAULT_DENOISER["cross_attention_dim"], generator=generator),
        "target": torch.randn(shape, generator=generator),
    }
    return {k: v.to(device) for k, v in inputs.items()}


def build_steps(variants: Sequence[Variant], device: torch.device, amp: bool, seed: int) -> dict[str, TrainingStep]:
    steps = {}
    for variant in variants:
        torch.manual_seed(seed)
        if variant.library == "MONAI":
            network: nn.Module = ConditionedDiffusionUNet(**DEFAULT_DENOISER, use_flash_attention=variant.sdpa)
        else:
            network = build_diffusers_unet(DEFAULT_DENOISER, sdpa=variant.sdpa)
        steps[variant.name] = TrainingStep(
            network, variant.library, device, amp, variant.channels_last, variant.compiled
        )
    return steps


def measure_size(
    size: int, steps: Mapping[str, TrainingStep], args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Interleaved warm-up and timed rounds of every variant at one image size, then memory and FLOPs."""
    inputs = make_inputs(args.batch, size, DEFAULT_DENOISER["image_channels"], device, args.seed + size)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.warmup + args.repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = bench_utils.time_call(functools.partial(steps[name], inputs), device)
            if round_index >= args.warmup:
                times[name].append(seconds)
    flops_per_library: dict[str, int] = {}
    results = {}
    for name in names:
        step = steps[name]
        with bench_utils.step_memory_mib(device) as memory:
            step(inputs)
        if step.library not in flops_per_library:
            flops_per_library[step.library] = count_training_flops(step, inputs)
        timing = bench_utils.summarise(times[name])
        results[name] = {
            **timing,
            "images_per_s": args.batch / timing["median_s"],
            "step_peak_mib": memory["step_peak_mib"],
            "flops_per_step": flops_per_library[step.library],
            "achieved_flops": flops_per_library[step.library] / timing["median_s"],
        }
    return results


def print_report(
    results: Mapping[int, Mapping[str, Mapping[str, Any]]],
    variants: Sequence[Variant],
    peaks: Sequence[Mapping[str, float]],
    args: argparse.Namespace,
    env: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Print the per-variant table and the MONAI/diffusers ratios; returns the ratios."""
    peak = max(p["best_flops"] for p in peaks)
    print(
        f"\n{env['device']}, {env['torch_threads']} threads, torch {env['torch']}, batch {args.batch}, "
        f"{args.warmup} warm-up + {args.repeats} timed steps per variant, interleaved"
    )
    print(
        f"matmul peak ({args.matmul_size}^2 torch.mm, {'bfloat16' if args.amp else 'float32'}): "
        + ", ".join(f"{p['best_flops'] / 1e9:.1f}" for p in peaks)
        + " GFLOP/s (before, after the steps)"
    )
    memory = "CUDA max_memory_allocated rise" if args.device == "cuda" else "peak RSS rise"
    headers = ["px", "variant", "SDPA", "channels_last", "compiled", "step ms (median)", "images/s"]
    headers += [f"step MiB ({memory})", "GFLOP/step", "GFLOP/s", "% of matmul peak"]
    rows = [
        [size, v.name, v.sdpa, v.channels_last, v.compiled, 1e3 * r["median_s"], r["images_per_s"]]
        + [r["step_peak_mib"], r["flops_per_step"] / 1e9, r["achieved_flops"] / 1e9, 100 * r["achieved_flops"] / peak]
        for size, by_name in results.items()
        for v in variants
        for r in [by_name[v.name]]
    ]
    print("\n" + bench_utils.markdown_table(headers, rows))

    names = [v.name for v in variants]
    pairs = [
        (m, d)
        for m, d in itertools.product(names, names)
        if m.startswith("monai")
        and d.startswith("diffusers")
        and m.removeprefix("monai") == d.removeprefix("diffusers")
    ]
    ratios = [
        {
            "px": size,
            "monai": m,
            "diffusers": d,
            "monai_images_per_s": results[size][m]["images_per_s"],
            "diffusers_images_per_s": results[size][d]["images_per_s"],
            "ratio": results[size][m]["images_per_s"] / results[size][d]["images_per_s"],
        }
        for size in results
        for m, d in pairs
    ]
    if ratios:
        print(
            "\n"
            + bench_utils.markdown_table(
                ["px", "MONAI", "diffusers", "MONAI images/s", "diffusers images/s", "MONAI/diffusers"],
                [list(r.values()) for r in ratios],
            )
        )
    print(
        "\nGFLOP/step: matmul + convolution FLOPs of forward + backward (FlopCounterMode, SDPA math backend). "
        "Step MiB: activations, gradients and temporaries beyond the parameters and AdamW state that exist before the "
        "step."
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128], help="image sizes (px)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(DEFAULT_VARIANTS))
    parser.add_argument("--compile", action="store_true", help="add the torch.compile'd MONAI and diffusers networks")
    parser.add_argument("--matmul_size", type=int, default=2048, help="side of the square torch.mm for peak FLOP/s")
    bench_utils.add_common_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    device = bench_utils.setup_device(args)
    if args.compile and args.warmup < 1:
        parser.error("--compile needs --warmup >= 1: the first step of each size compiles.")
    names = list(dict.fromkeys([*args.variants, *(("monai-compile", "diffusers-compile") if args.compile else ())]))
    variants = [VARIANTS[name] for name in names]

    monai_count = count_parameters(ConditionedDiffusionUNet(**DEFAULT_DENOISER))
    diffusers_count = count_parameters(build_diffusers_unet(DEFAULT_DENOISER))
    print(f"parameters: MONAI {monai_count:,}, diffusers {diffusers_count:,}")
    if monai_count != diffusers_count:
        raise AssertionError(f"the networks differ in size: {monai_count:,} vs {diffusers_count:,} parameters.")

    peak_dtype = torch.bfloat16 if args.amp else torch.float32
    peaks = [bench_utils.matmul_flops(device, args.matmul_size, dtype=peak_dtype)]
    steps = build_steps(variants, device, args.amp, args.seed)
    results = {size: measure_size(size, steps, args, device) for size in args.sizes}
    peaks.append(bench_utils.matmul_flops(device, args.matmul_size, dtype=peak_dtype))
    env = bench_utils.environment(args, device)
    ratios = print_report(results, variants, peaks, args, env)
    bench_utils.write_json(
        args.output,
        {
            "benchmark": "train_throughput",
            "environment": env,
            "parameters": {"MONAI": monai_count, "diffusers": diffusers_count},
            "denoiser": DEFAULT_DENOISER,
            "context_tokens": CONTEXT_TOKENS,
            "matmul_peak": {"dtype": str(peak_dtype), "measurements": peaks},
            "variants": [asdict(v) for v in variants],
            "results": {str(size): by_name for size, by_name in results.items()},
            "monai_over_diffusers": ratios,
        },
    )


if __name__ == "__main__":
    main()
