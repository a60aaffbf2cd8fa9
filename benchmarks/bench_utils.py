"""Shared parts of the speed benchmarks: the default denoiser and noise schedule read from the LesionGen bundle config,
the common command-line options, device and thread set-up, timing with device synchronisation, step memory, the
machine's matmul FLOP/s, Markdown tables and the JSON report.

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on the path); not a script.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import importlib.metadata
import inspect
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from monai_lesiongen.networks import ConditionedDiffusionUNet

__all__ = [
    "BUNDLE_CONFIG",
    "MINILM_WIDTH",
    "add_common_arguments",
    "autocast",
    "bundle_defaults",
    "default_denoiser",
    "environment",
    "markdown_table",
    "matmul_flops",
    "setup_device",
    "step_memory_mib",
    "summarise",
    "synchronize",
    "time_call",
    "write_json",
]

_MIB = 2**20
BUNDLE_CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "lesiongen" / "configs" / "train.yaml"
# the DDPM schedules (DDPM for training, DDIM for sampling) the speed benchmarks time: lesiongen's configs/ddpm.yaml
DDPM_CONFIG = BUNDLE_CONFIG.with_name("ddpm.yaml")
# the hidden size of the bundle's default text encoder (all-MiniLM-L6-v2), the denoiser's cross_attention_dim
MINILM_WIDTH = 384


def bundle_defaults(config_path: Path = BUNDLE_CONFIG, schedules_path: Path | None = DDPM_CONFIG) -> dict[str, Any]:
    """The default denoiser of a bundle config and the schedules of `schedules_path` merged over it (lesiongen's
    DDPM ones by default), read from the YAML without building the bundle.

    Returns:
        ``network``: `ConditionedDiffusionUNet` arguments (``cross_attention_dim`` is the MiniLM width, which the
        config takes from the text encoder); ``scheduler`` and ``sampling_scheduler``: MONAI scheduler arguments;
        ``max_tokens``: the captions' token length.

    Raises:
        KeyError: when the config lacks one of those keys (the message names it and the file).
    """
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if schedules_path is not None:
        config.update(yaml.safe_load(schedules_path.read_text(encoding="utf-8")))

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@") and value[1:] in config:
            return resolve(config[value[1:]])
        return value

    def value(key: str) -> Any:
        if key not in config:
            raise KeyError(f"{config_path}: no '{key}' key; the benchmarks read the denoiser and schedules from it.")
        return resolve(config[key])

    def section(key: str) -> dict[str, Any]:
        return {k: resolve(v) for k, v in value(key).items() if k != "_target_"}

    network = section("network_def")
    network["cross_attention_dim"] = MINILM_WIDTH
    # the class condition beside the caption (an embedding-table lookup added to the timestep embedding) is left
    # out: it costs nothing measurable, and the diffusers counterpart has none
    network.pop("num_classes", None)
    return {
        "network": network,
        "scheduler": section("scheduler"),
        "sampling_scheduler": section("sampling_scheduler"),
        "max_tokens": value("max_tokens"),
    }


def default_denoiser(config_path: Path = BUNDLE_CONFIG) -> dict[str, Any]:
    """Every `ConditionedDiffusionUNet` argument but ``use_flash_attention``: the bundle config's ``network_def``,
    and the class defaults for what it leaves out."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(ConditionedDiffusionUNet).parameters.items()
        if name != "use_flash_attention"
    }
    return {**defaults, **bundle_defaults(config_path)["network"]}


def add_common_arguments(parser: argparse.ArgumentParser, repeats: int, warmup: int) -> None:
    """Add ``--device``, ``--amp``, ``--threads``, ``--repeats``, ``--warmup``, ``--seed`` and ``--output``."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed repeats of each measurement")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed runs of each measurement first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")


def setup_device(args: argparse.Namespace) -> torch.device:
    """The device of ``--device``, with ``--threads`` applied and ``--amp`` checked.

    Raises:
        ValueError: for ``--amp`` on the CPU, ``--device cuda`` without CUDA, or fewer than 1 repeat or thread.
    """
    if args.amp and args.device != "cuda":
        raise ValueError("--amp (bfloat16 autocast) is measured on --device cuda only.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this torch build sees no CUDA device; use --device cpu.")
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f"need --repeats >= 1 and --warmup >= 0, got {args.repeats}, {args.warmup}.")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch.device(args.device)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA when `enabled`, otherwise nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer reads the end of the computation."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of `fn`, synchronised with the device before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def summarise(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated timings, in seconds."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def matmul_flops(
    device: torch.device, size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32
) -> dict[str, float]:
    """The machine's achievable FLOP/s: a square ``torch.mm`` of `size` in `dtype` (2 size^3 FLOPs), best and median
    of `repeats` after one warm-up, with the current thread setting."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    seconds = [time_call(lambda: torch.mm(a, b), device) for _ in range(repeats)]
    flops = 2.0 * size**3
    return {"size": size, "best_flops": flops / min(seconds), "median_flops": flops / statistics.median(seconds)}


def _libc_malloc_trim() -> None:
    """Give the C heap's free pages back to the system (glibc), so that an RSS rise counts fresh allocations."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


def _proc_status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1])
    return None


def _reset_rss_peak() -> bool:
    """Reset the process's RSS high-water mark (Linux ``VmHWM``, by writing 5 to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def step_memory_mib(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Memory the body takes beyond what was allocated before it; the dict is filled on exit.

    On CUDA: ``torch.cuda.max_memory_allocated`` during the body minus ``memory_allocated`` before (tensors only,
    not the caching allocator's reserve). On the CPU torch has no allocator statistics, so it is the rise of the
    process's peak resident set (Linux ``VmHWM``, reset before the body) over the resident set before it, after
    returning the C heap's free pages; it includes allocator overhead and is None where ``/proc`` cannot be used.
    Either way, for a training step it is activations, gradients and temporaries: the parameters and optimizer state
    that exist before the step are not in it.
    """
    result: dict[str, float | None] = {"step_peak_mib": None}
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        synchronize(device)
        result["step_peak_mib"] = (torch.cuda.max_memory_allocated(device) - before) / _MIB
        return
    _libc_malloc_trim()
    before_kib = _proc_status_kib("VmRSS")
    can_measure = before_kib is not None and _reset_rss_peak()
    yield result
    peak_kib = _proc_status_kib("VmHWM")
    if can_measure and before_kib is not None and peak_kib is not None:
        result["step_peak_mib"] = (peak_kib - before_kib) / 1024


def environment(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """What the figures depend on: versions, device, threads and the command-line settings."""
    versions = {}
    for package in ("monai", "diffusers", "transformers"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    info: dict[str, Any] = {
        "torch": torch.__version__,
        **versions,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        "amp_bf16": bool(args.amp),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed with 3 significant digits, None as a dash."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON to `path` (folders created); nothing when `path` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
