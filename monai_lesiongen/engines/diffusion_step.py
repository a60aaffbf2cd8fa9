"""One training iteration of a conditioned diffusion model with a weighted loss and auxiliary loss terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from monai.engines.utils import IterationEvents
from monai.networks.schedulers import Scheduler
from monai.utils import CommonKeys as Keys

from monai_lesiongen.engines.prepare_batch import PredictionType
from monai_lesiongen.losses.auxiliary import AuxiliaryLoss, DiffusionStepState
from monai_lesiongen.schedulers import noise_process

if TYPE_CHECKING:
    from monai.engines import SupervisedTrainer

__all__ = [
    "DiffusionTrainingStep",
    "predict_original_sample",
    "snr_weights",
]

LossWeighting = Literal["none", "min_snr"]


def predict_original_sample(
    scheduler: Scheduler,
    prediction_type: PredictionType,
    model_output: torch.Tensor,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """The model's estimate of the clean sample x0 from its output at (x_t, t), differentiable in `model_output`;
    for any scheduler `noise_process` knows (DDPM, DDIM, PNDM, rectified flow)."""
    return noise_process(scheduler, prediction_type).original_sample(model_output, noisy, timesteps)


def snr_weights(
    scheduler: Scheduler, timesteps: torch.Tensor, prediction_type: PredictionType, gamma: float
) -> torch.Tensor:
    """Min-SNR-gamma loss weights per sample (Hang et al. 2023), for the given prediction type."""
    return noise_process(scheduler, prediction_type).min_snr_weights(timesteps, gamma)


class DiffusionTrainingStep:
    """The iteration of a `SupervisedTrainer` (its ``iteration_update``) for conditioned diffusion models.

    It does what `SupervisedTrainer._iteration` does (prepare the batch, forward through the engine's inferer,
    backward, optimizer step, gradient accumulation, AMP on CUDA, the same iteration events), but the loss is
    ``mean_b(w_b * loss(pred_b, target_b)) + sum_k aux_k(state)``: `w` are min-SNR weights or ones, and each auxiliary
    term sees the noisy input and the model's x0 estimate. ``engine.state.output`` gets the total loss under
    ``loss`` and each term under its name (``loss_diffusion``, ``loss_<aux.name>``) for the stats handlers.

    Args:
        scheduler: the training scheduler (for x_t, x0 estimates and SNR weights): DDPM-like or rectified flow.
        prediction_type: what the network predicts, as in the prepare-batch.
        loss_weighting: ``none`` or ``min_snr``.
        snr_gamma: gamma of min-SNR weighting.
        auxiliary_losses: further loss terms.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        prediction_type: PredictionType = "epsilon",
        loss_weighting: LossWeighting = "none",
        snr_gamma: float = 5.0,
        auxiliary_losses: Sequence[AuxiliaryLoss] = (),
    ) -> None:
        if loss_weighting not in ("none", "min_snr"):
            raise ValueError(f"loss_weighting must be 'none' or 'min_snr', got {loss_weighting!r}.")
        self.scheduler = scheduler
        self.prediction_type: PredictionType = prediction_type
        self.process = noise_process(scheduler, prediction_type)
        self.loss_weighting = loss_weighting
        self.snr_gamma = snr_gamma
        self.auxiliary_losses = list(auxiliary_losses)

    def compute_loss(self, engine: SupervisedTrainer, state: DiffusionStepState, target: torch.Tensor) -> torch.Tensor:
        per_element = engine.loss_function(state.prediction.float(), target.float())
        if per_element.ndim == 0:
            raise ValueError(
                "the trainer's loss_function must not reduce: use e.g. torch.nn.MSELoss(reduction='none')."
            )
        per_sample = per_element.flatten(1).mean(1)
        if self.loss_weighting == "min_snr":
            per_sample = per_sample * self.process.min_snr_weights(state.timesteps, self.snr_gamma)
        loss = per_sample.mean()
        engine.state.output["loss_diffusion"] = loss.detach()
        for term in self.auxiliary_losses:
            value = term(state)
            engine.state.output[f"loss_{term.name}"] = value.detach()
            loss = loss + value
        return loss

    def _forward(
        self, engine: SupervisedTrainer, inputs: torch.Tensor, targets: torch.Tensor, args: tuple, kwargs: dict
    ) -> None:
        prediction = engine.inferer(inputs, engine.network, *args, **kwargs)
        engine.state.output[Keys.PRED] = prediction
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        conditions = {k: v for k, v in kwargs.items() if k not in ("noise", "timesteps")}
        noisy = self.process.add_noise(inputs, kwargs["noise"], kwargs["timesteps"])
        state = DiffusionStepState(
            inputs=inputs,
            noisy=noisy,
            noise=kwargs["noise"],
            timesteps=kwargs["timesteps"],
            prediction=prediction,
            original_estimate=self.process.original_sample(prediction, noisy, kwargs["timesteps"]),
            conditions=conditions,
            batchdata=engine.state.batch,
            network=engine.network,
        )
        engine.state.output[Keys.LOSS] = self.compute_loss(engine, state, targets)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

    def __call__(self, engine: SupervisedTrainer, batchdata: dict[str, Any]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        inputs, targets, args, kwargs = engine.prepare_batch(
            batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
        )
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
        accumulation = max(int(getattr(engine, "accumulation_steps", 1)), 1)
        local_iteration = engine.state.iteration - 1
        if engine.state.epoch_length is not None:
            local_iteration %= engine.state.epoch_length
        last_in_epoch = engine.state.epoch_length is not None and local_iteration + 1 == engine.state.epoch_length
        should_zero_grad = local_iteration % accumulation == 0
        should_step = (local_iteration + 1) % accumulation == 0 or last_in_epoch

        engine.network.train()
        if should_zero_grad:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        if engine.amp and engine.scaler is not None:
            with torch.autocast("cuda", **engine.amp_kwargs):
                self._forward(engine, inputs, targets, args, kwargs)
            engine.scaler.scale(engine.state.output[Keys.LOSS] / accumulation).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if should_step:
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
        else:
            self._forward(engine, inputs, targets, args, kwargs)
            (engine.state.output[Keys.LOSS] / accumulation).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if should_step:
                engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
