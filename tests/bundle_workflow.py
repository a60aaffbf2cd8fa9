"""The one way the bundle tests build a bundle workflow: MONAI's ConfigWorkflow on merged configs, tiny overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

__all__ = ["TINY_CLASSIFIER", "TINY_DENOISER", "bundle_workflow", "tiny_settings"]

TINY_DENOISER: dict[str, Any] = {
    "network_def#channels": [16, 32, 32],
    "network_def#num_head_channels": 16,
    "network_def#norm_num_groups": 8,
}
"""A ~100k-parameter denoiser of the bundles' architecture."""

TINY_CLASSIFIER: dict[str, Any] = {
    "induced_loss_probability": 1.0,
    "classifier_def#channels": [16, 32, 32],
    "classifier_def#num_head_channels": 16,
    "classifier_def#norm_num_groups": 8,
}
"""Class-N-Diff's classifier at the same size, its induced loss on every step (so one epoch exercises it)."""


def tiny_settings(num_images: int = 48, **overrides: Any) -> dict[str, Any]:
    """The overrides a bundle test starts from: one epoch of batch 8 at 16 px on `num_images` demo images of 32 px,
    the tiny denoiser, a checkpoint every epoch, no sample grids, 2-step sampling; `overrides` win."""
    return {
        "num_epochs": 1,
        "batch_size": 8,
        "image_dim": 16,
        "checkpoint_interval": 1,
        "sample_interval": 0,
        "sample_steps": 2,
        "demo_kwargs": {"num_images": num_images, "image_size": 32, "seed": 0},
        **TINY_DENOISER,
        **overrides,
    }


def bundle_workflow(
    bundle: Path,
    root: Path,
    configs: Sequence[str],
    run_id: str,
    workflow_type: str,
    overrides: Mapping[str, Any],
) -> ConfigWorkflow:
    """An initialised workflow of `bundle` (its ``configs/`` files merged in order) with outputs under `root`."""
    workflow = ConfigWorkflow(
        config_file=[str(bundle / "configs" / name) for name in configs],
        meta_file=str(bundle / "configs" / "metadata.json"),
        workflow_type=workflow_type,
        run_id=run_id,
        bundle_root=str(root),
        **overrides,
    )
    workflow.initialize()
    return workflow
