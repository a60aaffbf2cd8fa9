"""The validator's figures on images whose conditions are known, and its best-checkpoint bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from monai_lesiongen.handlers import ConditionFidelityValidator

SKIN = {1: (0.95, 0.82, 0.75), 3: (0.8, 0.6, 0.45), 6: (0.45, 0.3, 0.2)}  # ITA 70, 32, -33: types I, III, VI


class ColourSampler:
    """Draws, for each caption ``"<diagnosis> <type>"``, a skin of that type with the diagnosis index written in the
    first pixel's red channel; with `wrong_skin`, the lightest skin asked as the darkest and back."""

    def __init__(self, wrong_skin: bool = False) -> None:
        self.wrong_skin = wrong_skin
        self.calls: list[list[int]] = []

    def __call__(
        self, network: nn.Module, seeds: Sequence[int], captions: Sequence[str] | None = None, class_labels=None
    ) -> torch.Tensor:
        self.calls.append(list(seeds))
        images = []
        for caption in captions or []:
            diagnosis, skin = (int(v) for v in caption.split())
            if self.wrong_skin:
                skin = {1: 6, 6: 1}.get(skin, skin)
            image = torch.tensor(SKIN[skin]).view(3, 1, 1).repeat(1, 8, 8)
            image[0, 0, 0] = diagnosis / 10
            images.append(torch.cat([image, torch.zeros(1, 8, 8)]))  # a paired mask channel, left out when judged
        return torch.stack(images)


class PixelJudge(nn.Module):
    """Reads the diagnosis back from the first pixel; with `blind`, always says diagnosis 0."""

    def __init__(self, blind: bool = False) -> None:
        super().__init__()
        self.blind = blind
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        index = (images[:, 0, 0, 0] * 10).round().long()
        if self.blind:
            index = torch.zeros_like(index)
        return nn.functional.one_hot(index, 3).float() * 10 + self.anchor


PLAN = [{"caption": f"{d} {t}", "label": d, "fitzpatrick": t} for d in range(3) for t in (1, 6)]


def _validator(tmp_path: Path, sampler: ColourSampler, judge: nn.Module | None, **kwargs) -> ConditionFidelityValidator:
    settings = {"num_classes": 3, "num_per_row": 2, "interval": 1, "best_path": tmp_path / "model_best.pt", **kwargs}
    return ConditionFidelityValidator(sampler, nn.Linear(2, 2), PLAN, judge=judge, **settings)


def test_figures_follow_what_the_images_show(tmp_path: Path) -> None:
    figures = _validator(tmp_path, ColourSampler(), PixelJudge()).evaluate()
    assert figures == {"val_recognition": 1.0, "val_skin_match": 1.0, "val_score": 1.0}
    figures = _validator(tmp_path, ColourSampler(wrong_skin=True), PixelJudge(blind=True)).evaluate()
    assert figures["val_skin_match"] == 0.0
    assert figures["val_recognition"] == pytest.approx(1 / 3)  # balanced: diagnosis 0 recognised, 1 and 2 not
    assert figures["val_score"] == pytest.approx((0.0 + 1 / 3) / 2)
    assert "val_recognition" not in _validator(tmp_path, ColourSampler(), None, num_classes=None).evaluate()


def test_seeds_repeat_between_checks(tmp_path: Path) -> None:
    sampler = ColourSampler()
    validator = _validator(tmp_path, sampler, PixelJudge(), seed=7)
    validator.evaluate()
    validator.evaluate()
    assert sampler.calls[0] == sampler.calls[1] == list(range(7, 7 + 2 * len(PLAN)))


def test_best_network_kept_and_state_round_trips(tmp_path: Path) -> None:
    """Epoch 1 is right (saved), epoch 2 wrong (the file stays epoch 1's), and a resumed validator keeps the best."""
    network = nn.Linear(2, 2)
    samplers = iter([ColourSampler(), ColourSampler(wrong_skin=True)])
    validator = ConditionFidelityValidator(
        lambda *args, **kwargs: next(samplers)(*args, **kwargs), network, PLAN, interval=1,
        best_path=tmp_path / "model_best.pt",
    )  # fmt: skip
    engine = Engine(lambda engine, batch: None)
    validator.attach(engine)
    saved = {}

    @engine.on(Events.EPOCH_COMPLETED)
    def change_weights(engine: Engine) -> None:
        saved[engine.state.epoch] = {k: v.clone() for k, v in network.state_dict().items()}
        with torch.no_grad():
            network.weight.add_(1.0)

    engine.run([0], max_epochs=2)
    assert validator.best_epoch == 1 and validator.best_score == 1.0
    assert engine.state.metrics["val_skin_match"] == 0.0  # the last check's figures
    best = torch.load(tmp_path / "model_best.pt", weights_only=True)
    assert torch.equal(best["weight"], saved[1]["weight"])  # saved before epoch 1's weight change
    resumed = ConditionFidelityValidator(ColourSampler(wrong_skin=True), network, PLAN, best_path=tmp_path / "b.pt")
    resumed.load_state_dict(validator.state_dict())
    resumed(engine)  # a worse check after resuming does not overwrite the best
    assert resumed.best_epoch == 1 and not (tmp_path / "b.pt").exists()
    assert [entry["epoch"] for entry in resumed.history] == [1.0, 2.0, 2.0]


def test_bad_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        ConditionFidelityValidator(ColourSampler(), nn.Linear(1, 1), [])
    with pytest.raises(ValueError, match=r"rows \[0\].*'caption'"):
        ConditionFidelityValidator(ColourSampler(), nn.Linear(1, 1), [{"label": 0}])
    with pytest.raises(ValueError, match="num_classes"):
        ConditionFidelityValidator(ColourSampler(), nn.Linear(1, 1), PLAN, judge=PixelJudge())


def test_a_run_ends_with_a_check(tmp_path: Path) -> None:
    """Three epochs checked every two: at epoch 2 and, once the run completes, at epoch 3."""
    validator = _validator(tmp_path, ColourSampler(), PixelJudge(), interval=2)
    engine = Engine(lambda engine, batch: None)
    validator.attach(engine)
    engine.run([0], max_epochs=3)
    assert [entry["epoch"] for entry in validator.history] == [2.0, 3.0]
    assert (tmp_path / "model_best.pt").is_file()
