from __future__ import annotations

import io
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.handlers import EMAHandler
from monai.handlers import CheckpointSaver
from monai.networks.schedulers import DDPMScheduler
from monai.transforms import Compose, RandFlipd
from monai.utils import set_determinism

from monai_lesiongen.data import CaptionBuilder
from monai_lesiongen.handlers import (
    AtomicCheckpointSaver,
    AtomicDiskSaver,
    RandomStates,
    ResumableEMAHandler,
    ResumeFromLatestCheckpoint,
    latest_checkpoint,
)
from monai_lesiongen.transforms import BuildCaptiond


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


def test_random_states_restore_the_transforms_and_the_caption_builder() -> None:
    builder = CaptionBuilder(field_dropout=0.5, seed=0)
    pipeline = Compose([BuildCaptiond(keys="caption", builder=builder), RandFlipd(keys="image", prob=0.5)])
    pipeline.set_random_state(seed=1)
    flip = pipeline.transforms[1]
    states = RandomStates([pipeline])
    saved = states.state_dict()
    expected = (builder.rng.random(3), flip.R.rand(3))
    builder.rng.random(5), flip.R.rand(5)
    states.load_state_dict(torch.load(_saved(saved), weights_only=True))
    assert np.array_equal(builder.rng.random(3), expected[0])  # the builder's Generator, which draws the captions
    assert np.array_equal(flip.R.rand(3), expected[1])


def _saved(state: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def _failing_save(fail_on_call: int):
    """A `torch.save` that, on its `fail_on_call`-th call, writes the first half of the bytes and then fails, like a
    full disk or a process dying mid-write."""
    real_save = torch.save
    calls = []

    def save(obj, f, *args, **kwargs) -> None:
        calls.append(f)
        if len(calls) != fail_on_call:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: buffer.tell() // 2]
        if isinstance(f, str | Path):
            Path(f).write_bytes(half)
        else:
            f.write(half)
            f.flush()
        raise OSError(28, "No space left on device")

    return save


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_intact(
    tiny_denoiser, make_trainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = tiny_denoiser(num_classes=2)
    trainer, optimizer, _ = make_trainer(network, 3, DDPMScheduler(100))
    objects = {"network": network, "optimizer": optimizer, "trainer": trainer, "random_states": RandomStates()}
    AtomicCheckpointSaver(str(tmp_path), objects, save_interval=1, n_saved=2).attach(trainer)
    monkeypatch.setattr(torch, "save", _failing_save(fail_on_call=2))
    with pytest.raises(OSError, match="No space left"):
        trainer.run()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch=1.pt"]  # no partial file, under any name
    path = latest_checkpoint(tmp_path)
    assert path == tmp_path / "checkpoint_epoch=1.pt"
    assert torch.load(path, weights_only=True)["trainer"]["iteration"] == 4  # one epoch of 64 images in batches of 16


def test_a_failed_save_keeps_the_file_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saver = AtomicDiskSaver(tmp_path, filename="model.pt")  # a fixed name, as for final checkpoints
    saver({"weight": torch.ones(3)}, "model_epoch=1.pt")
    monkeypatch.setattr(torch, "save", _failing_save(fail_on_call=1))
    with pytest.raises(OSError, match="No space left"):
        saver({"weight": torch.zeros(3)}, "model_epoch=2.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], torch.ones(3))


def test_every_checkpoint_of_the_saver_is_written_under_a_temporary_name(
    tiny_denoiser, make_trainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = tiny_denoiser(num_classes=2)
    trainer, _, _ = make_trainer(network, 1, DDPMScheduler(100))
    saver = AtomicCheckpointSaver(
        str(tmp_path), {"model": network}, save_interval=1, save_final=True, final_filename="model.pt"
    )
    saver.attach(trainer)
    real_save, targets = torch.save, []
    monkeypatch.setattr(torch, "save", lambda obj, f, **kwargs: (targets.append(Path(f.name)), real_save(obj, f)))
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model_epoch=1.pt"]
    assert len(targets) == 2
    for target in targets:  # hidden, and no checkpoint pattern matches the name
        assert target.parent == tmp_path and target.name.startswith(".model") and target.suffix == ".partial"


def test_the_saver_removes_partial_files_of_a_killed_run(tiny_denoiser, make_trainer, tmp_path: Path) -> None:
    network = tiny_denoiser(num_classes=2)
    trainer, _, _ = make_trainer(network, 1, DDPMScheduler(100))
    leftover = tmp_path / ".checkpoint_epoch=3.pt.k2x9.partial"  # what a SIGKILL during a save leaves
    leftover.write_bytes(b"PK\x03\x04")
    (tmp_path / "notes.txt").write_text("kept")
    assert latest_checkpoint(tmp_path) is None
    AtomicCheckpointSaver(str(tmp_path), {"model": network}, save_final=True, final_filename="model.pt").attach(trainer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _save_epochs(tiny_denoiser, make_trainer, folder: Path, epochs: int) -> None:
    network = tiny_denoiser(num_classes=2)
    trainer, optimizer, _ = make_trainer(network, epochs, DDPMScheduler(100))
    objects = {"network": network, "optimizer": optimizer, "trainer": trainer}
    AtomicCheckpointSaver(str(folder), objects, save_interval=1).attach(trainer)
    trainer.run()


def _resume(tiny_denoiser, make_trainer, folder: Path) -> tuple[ResumeFromLatestCheckpoint, object]:
    network = tiny_denoiser(num_classes=2, seed=1)
    trainer, optimizer, _ = make_trainer(network, 5, DDPMScheduler(100))
    resume = ResumeFromLatestCheckpoint(folder, {"network": network, "optimizer": optimizer, "trainer": trainer})
    resume(trainer)
    return resume, trainer


def test_resume_falls_back_from_a_broken_newest_checkpoint(
    tiny_denoiser, make_trainer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _save_epochs(tiny_denoiser, make_trainer, tmp_path, 2)
    second = tmp_path / "checkpoint_epoch=2.pt"
    second.write_bytes(second.read_bytes()[:1000])  # truncated, as by a killed in-place save
    (tmp_path / "checkpoint_epoch=3.pt").write_bytes(b"not a checkpoint")  # copied in by hand
    with caplog.at_level(logging.WARNING):
        resume, trainer = _resume(tiny_denoiser, make_trainer, tmp_path)
    assert resume.loaded_from == tmp_path / "checkpoint_epoch=1.pt"
    assert trainer.state.epoch == 1 and trainer.state.iteration == 4  # type: ignore[attr-defined]
    assert trainer.state.max_epochs == 5  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "checkpoint_epoch=3.pt" in warnings[0] and "checkpoint_epoch=2.pt" in warnings[1]


def test_resume_refuses_to_start_over_when_no_checkpoint_loads(tiny_denoiser, make_trainer, tmp_path: Path) -> None:
    _save_epochs(tiny_denoiser, make_trainer, tmp_path, 1)
    first = tmp_path / "checkpoint_epoch=1.pt"
    first.write_bytes(first.read_bytes()[:-100])
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match="none of the checkpoints") as error:
        _resume(tiny_denoiser, make_trainer, tmp_path)
    assert "checkpoint_epoch=1.pt" in str(error.value) and "checkpoint_epoch=2.pt" in str(error.value)
    assert "resume to false" in str(error.value)


def test_resume_names_the_objects_an_older_checkpoint_lacks(tiny_denoiser, make_trainer, tmp_path: Path) -> None:
    _save_epochs(tiny_denoiser, make_trainer, tmp_path, 1)
    network = tiny_denoiser(num_classes=2, seed=1)
    trainer, optimizer, _ = make_trainer(network, 5, DDPMScheduler(100))
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    objects = {"network": network, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": trainer}
    with pytest.raises(ValueError, match=r"checkpoint_epoch=1.pt has no \['lr_scheduler'\]") as error:
        ResumeFromLatestCheckpoint(tmp_path, objects)(trainer)
    assert "new output_dir" in str(error.value)
    assert trainer.state.epoch == 0  # type: ignore[attr-defined]


def _ema_run(tiny_denoiser, make_trainer, ckpt_dir: Path, max_epochs: int, ema_type: type) -> EMAHandler:
    network = tiny_denoiser(num_classes=2)
    ema = ema_type(network, momentum=0.01, momentum_warmup=0.5, warmup_iters=20)
    trainer, optimizer, _ = make_trainer(network, max_epochs, DDPMScheduler(100), handlers=[ema])
    objects = {
        "network": network,
        "ema_network": ema.ema_model,
        "optimizer": optimizer,
        "trainer": trainer,
        "random_states": RandomStates(),
    }
    ResumeFromLatestCheckpoint(ckpt_dir, objects).attach(trainer)
    AtomicCheckpointSaver(str(ckpt_dir), objects, save_interval=1, n_saved=1).attach(trainer)
    trainer.run()
    return ema


def _equal_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_ema_warmup_continues_after_a_resume(tiny_denoiser, make_trainer, tmp_path: Path) -> None:
    set_determinism(0)
    ignite_full = _ema_run(tiny_denoiser, make_trainer, tmp_path / "ignite", 3, EMAHandler)
    set_determinism(0)
    full = _ema_run(tiny_denoiser, make_trainer, tmp_path / "full", 3, ResumableEMAHandler)
    assert _equal_weights(full.ema_model, ignite_full.ema_model)  # uninterrupted, the same momenta as ignite's
    set_determinism(0)
    _ema_run(tiny_denoiser, make_trainer, tmp_path / "split", 1, ResumableEMAHandler)
    set_determinism(123)
    resumed = _ema_run(tiny_denoiser, make_trainer, tmp_path / "split", 3, ResumableEMAHandler)
    assert _equal_weights(resumed.ema_model, full.ema_model)
    set_determinism(None)


def test_random_states_save_and_restore_the_cuda_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.arange(16, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: generator.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", restored.append)
    state = RandomStates().state_dict()
    assert torch.equal(state["cuda"], generator)
    RandomStates().load_state_dict(state)
    assert len(restored) == 1 and torch.equal(restored[0], generator)
