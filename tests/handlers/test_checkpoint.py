from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from monai.handlers import CheckpointSaver
from monai.networks.schedulers import DDPMScheduler
from monai.utils import set_determinism

from monai_lesiongen.handlers import RandomStates, ResumeFromLatestCheckpoint, latest_checkpoint


def _run(tiny_denoiser, make_trainer, ckpt_dir: Path, max_epochs: int, resume: bool) -> tuple[list[float], object]:
    network = tiny_denoiser(num_classes=2)
    scheduler = DDPMScheduler(100)
    trainer, optimizer, losses = make_trainer(network, max_epochs, scheduler)
    objects = {"network": network, "optimizer": optimizer, "trainer": trainer, "random_states": RandomStates()}
    ResumeFromLatestCheckpoint(ckpt_dir, objects, enabled=resume).attach(trainer)
    CheckpointSaver(str(ckpt_dir), objects, save_interval=1, n_saved=2).attach(trainer)
    trainer.run()
    return losses, trainer


def test_resumed_run_matches_an_uninterrupted_run(tiny_denoiser, make_trainer, tmp_path: Path) -> None:
    set_determinism(0)
    full, _ = _run(tiny_denoiser, make_trainer, tmp_path / "full", 4, resume=False)
    set_determinism(0)
    first_half, _ = _run(tiny_denoiser, make_trainer, tmp_path / "split", 2, resume=True)
    # a new process would start with other random states: scramble them before resuming
    set_determinism(123)
    second_half, trainer = _run(tiny_denoiser, make_trainer, tmp_path / "split", 4, resume=True)
    assert trainer.state.epoch == 4 and trainer.state.iteration == 16  # type: ignore[attr-defined]
    assert len(first_half) == 8 and len(second_half) == 8
    assert np.allclose(first_half + second_half, full, rtol=1e-5, atol=1e-6)
    set_determinism(None)


def test_latest_checkpoint_picks_the_highest_step(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "absent") is None
    for name in ["checkpoint_epoch=2.pt", "checkpoint_epoch=10.pt", "checkpoint_final.pt", "model_epoch=12.pt"]:
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=10.pt"


def test_random_states_round_trip() -> None:
    states = RandomStates()
    saved = states.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    states.load_state_dict(saved)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
