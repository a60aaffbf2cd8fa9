"""The one way the bundle tests build a bundle workflow: MONAI's ConfigWorkflow on merged configs, tiny overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow


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
