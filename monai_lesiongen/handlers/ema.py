"""An exponential moving average of the network whose momentum warm-up survives a resume."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
    from ignite.handlers import EMAHandler
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    EMAHandler, _ = optional_import(
        "ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EMAHandler", as_type="base"
    )

__all__ = ["ResumableEMAHandler"]


class ResumableEMAHandler(EMAHandler):
    """Ignite's `EMAHandler` whose momentum warm-up survives a resume.

    Ignite counts the warm-up iterations in a scheduler of its own that no checkpoint holds, so a resumed run would
    warm up again from `momentum_warmup` and wash out the averaged weights. Here the momentum follows the trainer's
    iteration, which the checkpoint restores; an uninterrupted run gets the same momenta as with ignite's handler.
    Put the EMA network (``ema_model``) into the checkpoint as well.

    Args:
        model: the network to average.
        momentum: the weight of the network in the average, once warmed up.
        momentum_warmup: the momentum at the first iteration; None for no warm-up.
        warmup_iters: the iterations over which the momentum goes linearly from `momentum_warmup` to `momentum`.
        handle_buffers: ``"copy"``, ``"update"`` or ``"ema_train"``, as in ignite.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        momentum: float = 0.0002,
        momentum_warmup: float | None = None,
        warmup_iters: int | None = None,
        handle_buffers: str = "copy",
    ) -> None:
        super().__init__(model, momentum, handle_buffers=handle_buffers)
        if (momentum_warmup is None) != (warmup_iters is None):
            raise ValueError("give momentum_warmup and warmup_iters together, or neither for no warm-up.")
        self.momentum_warmup = momentum_warmup
        self.warmup_iters = warmup_iters

    def momentum_at(self, iteration: int) -> float:
        """The momentum of the update after trainer iteration `iteration` (counted from 1)."""
        if self.momentum_warmup is None or self.warmup_iters is None:
            return self.momentum
        fraction = (iteration - 1) / max(1, self.warmup_iters - 1)
        value = self.momentum_warmup + (self.momentum - self.momentum_warmup) * fraction
        return min(self.momentum, value) if self.momentum >= self.momentum_warmup else max(self.momentum, value)

    def attach(
        self, engine: Engine, name: str = "ema_momentum", warn_if_exists: bool = True, event: Any = None
    ) -> None:
        """Update the EMA network after every `event` (each iteration by default), the momentum first.

        Args:
            engine: the trainer.
            name: the ``engine.state`` attribute holding the current momentum.
            warn_if_exists: warn when ``engine.state`` already has `name`.
            event: the update event; None for ``Events.ITERATION_COMPLETED``.
        """
        event = Events.ITERATION_COMPLETED if event is None else event
        engine.add_event_handler(event, self._set_momentum, name)  # before the update that the parent attaches
        super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event)

    def _set_momentum(self, engine: Engine, name: str) -> None:
        setattr(engine.state, name, self.momentum_at(engine.state.iteration))
