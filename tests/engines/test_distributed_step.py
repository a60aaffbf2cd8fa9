"""One `DiffusionTrainingStep` on two gloo processes (DistributedDataParallel, half of a batch each) is the step of
one process on the whole batch: the losses are per-sample means, so averaging the ranks' gradients gives the
full-batch gradient."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.engines import SupervisedTrainer
from monai.networks.schedulers import DDPMScheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from monai_lesiongen.engines import DiffusionTrainingStep
from monai_lesiongen.inferers import ConditionedDiffusionInferer
from monai_lesiongen.losses.classifier import ClassifierInducedLoss, NoisyClassifierLoss
from monai_lesiongen.losses.mask import PairedMaskLoss
from monai_lesiongen.networks.classifier import NoiseAwareClassifier

WORLD_SIZE = 2
BATCH = 8
NUM_TIMESTEPS = 100


def _fixed_batch(channels: int) -> dict[str, torch.Tensor]:
    """Images (a mask-like last channel when `channels` is 4), noise, timesteps and labels, all fixed."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, channels, 8, 8, generator=generator) * 2 - 1
    if channels == 4:
        images[:, 3] = torch.where(images[:, 3] > 0, 1.0, -1.0)
    return {
        "image": images,
        "noise": torch.randn(BATCH, channels, 8, 8, generator=generator),
        "timesteps": torch.randint(0, NUM_TIMESTEPS, (BATCH,), generator=generator),
        "label": torch.arange(BATCH) % 2,
    }


def _fixed_prepare_batch(
    batchdata: Mapping[str, torch.Tensor], device: Any = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
    """A prepare-batch that takes the noise and timesteps from the batch instead of drawing them."""
    noise = batchdata["noise"]
    conditions = {"noise": noise, "timesteps": batchdata["timesteps"], "class_labels": batchdata["label"]}
    return batchdata["image"], noise, (), conditions


def _case(name: str, denoiser: nn.Module) -> dict[str, Any]:
    """The networks and step settings of one case; the aux losses are built per process around its classifier."""
    case: dict[str, Any] = {"name": name, "denoiser": denoiser, "weighting": "none", "classifier": None}
    if name == "paired_min_snr":
        case["weighting"] = "min_snr"
    if name == "classifier":
        torch.manual_seed(1)
        case["classifier"] = NoiseAwareClassifier(
            image_channels=3, num_classes=2, spatial_size=(8, 8), channels=(16, 32), attention_levels=(False, True),
            num_res_blocks=1, num_head_channels=16, norm_num_groups=8,
        )  # fmt: skip
        for module in case["classifier"].modules():
            if isinstance(module, nn.Dropout):  # MONAI's encoder head drops out at random: no part of the comparison
                module.p = 0.0
    return case


def _one_step(case: Mapping[str, Any], batch: Mapping[str, torch.Tensor], wrap: bool) -> dict[str, torch.Tensor]:
    """One training step of copies of the case's networks (wrapped in DistributedDataParallel when `wrap`) on
    `batch`; returns the updated weights of every network, by name."""
    denoiser = copy.deepcopy(case["denoiser"])
    classifier = copy.deepcopy(case["classifier"])
    network: nn.Module = DistributedDataParallel(denoiser) if wrap else denoiser
    params = list(denoiser.parameters())
    scheduler = DDPMScheduler(NUM_TIMESTEPS)
    auxiliary: list[Any] = []
    if case["name"] == "paired_min_snr":
        auxiliary.append(PairedMaskLoss(scheduler, mask_channels=1, dice_weight=0.5, bce_weight=0.5))
    if classifier is not None:
        judge: nn.Module = DistributedDataParallel(classifier) if wrap else classifier
        params += list(classifier.parameters())
        auxiliary += [
            NoisyClassifierLoss(judge),
            ClassifierInducedLoss(judge, weight=0.5, probability=1.0, weighting="alpha_bar", scheduler=scheduler),
        ]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[dict(batch)],
        network=network,
        optimizer=torch.optim.SGD(params, lr=0.5),
        loss_function=nn.MSELoss(reduction="none"),
        inferer=ConditionedDiffusionInferer(scheduler),
        prepare_batch=_fixed_prepare_batch,
        iteration_update=DiffusionTrainingStep(scheduler, loss_weighting=case["weighting"], auxiliary_losses=auxiliary),
        decollate=False,
    )
    trainer.run()
    weights = {f"denoiser.{k}": v.clone() for k, v in denoiser.state_dict().items()}
    if classifier is not None:
        weights.update({f"classifier.{k}": v.clone() for k, v in classifier.state_dict().items()})
    return weights


def _worker(rank: int, init_file: str, cases: Sequence[Mapping[str, Any]], out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        for case in cases:
            batch = _fixed_batch(case["denoiser"].in_channels)
            half = {k: v.chunk(WORLD_SIZE)[rank] for k, v in batch.items()}
            torch.save(_one_step(case, half, wrap=True), Path(out_dir) / f"{case['name']}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_on_half_batches_step_like_one_process_on_the_batch(tiny_denoiser, tmp_path: Path) -> None:
    cases = [
        _case("class", tiny_denoiser(num_classes=2)),
        _case("paired_min_snr", tiny_denoiser(num_classes=2, mask_channels=1)),
        _case("classifier", tiny_denoiser(num_classes=2)),
    ]
    # forked, the workers need not import torch and MONAI again (seconds each); they compute on one thread
    mp.start_processes(
        _worker, args=(str(tmp_path / "init"), cases, str(tmp_path)), nprocs=WORLD_SIZE, join=True, start_method="fork"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for case in cases:
            initial = {f"denoiser.{k}": v for k, v in case["denoiser"].state_dict().items()}
            if case["classifier"] is not None:
                initial.update({f"classifier.{k}": v for k, v in case["classifier"].state_dict().items()})
            single = _one_step(case, _fixed_batch(case["denoiser"].in_channels), wrap=False)
            ranks = [torch.load(tmp_path / f"{case['name']}_rank{r}.pt") for r in range(WORLD_SIZE)]
            for key, value in single.items():
                assert torch.equal(ranks[0][key], ranks[1][key]), (case["name"], key)  # the ranks stay in sync
                assert torch.allclose(ranks[0][key], value, rtol=1e-4, atol=1e-6), (case["name"], key)
            moved = max(float((single[k] - initial[k]).abs().max()) for k in single)
            assert moved > 1e-3, case["name"]  # the step did change the weights: the comparison is not vacuous
            if case["classifier"] is not None:
                classifier_moved = [float((single[k] - initial[k]).abs().max()) for k in single if "classifier" in k]
                assert max(classifier_moved) > 1e-3
    finally:
        torch.set_num_threads(threads)
