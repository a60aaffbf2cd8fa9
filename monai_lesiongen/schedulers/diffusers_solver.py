"""diffusers' multistep ODE solvers (DPM-Solver++, UniPC) sampling from a model trained with a MONAI schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.schedulers import Scheduler
from monai.utils import optional_import

__all__ = ["SOLVERS", "DiffusersSolver"]

diffusers, has_diffusers = optional_import("diffusers")

SOLVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "sde-dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
"""Solver name -> (diffusers scheduler class, its settings): DPM-Solver++ (Lu et al. 2022) and its stochastic (SDE)
form, UniPC (Zhao et al. 2023)."""


class DiffusersSolver(Scheduler):
    """A sampling scheduler that runs one of diffusers' multistep solvers on the noise schedule of a MONAI training
    scheduler (DDPM's betas, passed to diffusers as ``trained_betas``), so a model trained with MONAI's DDPM samples
    in 10-20 steps. It has MONAI's scheduler interface (``set_timesteps``, ``timesteps``, ``step``,
    ``alphas_cumprod``, ``add_noise``), so the inferers, classifier guidance and the bundles take it in place of
    `DDIMScheduler`.

    ``dpmsolver++`` and ``unipc`` are deterministic; ``sde-dpmsolver++`` adds noise at each step, drawn from the
    generator, or from one generator per image (`takes_generator_per_image`), so that an image does not depend on its
    batch. The solvers keep a history of the model's outputs: ``set_timesteps`` starts a new one, and each step moves
    the whole batch at once.

    Args:
        training_scheduler: the scheduler the model was trained with (DDPM, DDIM, PNDM: any with ``betas``).
        solver: ``dpmsolver++``, ``sde-dpmsolver++`` or ``unipc`` (see `SOLVERS`).
        solver_order: the solver's order (2: DPM-Solver++ 2M, the setting for guided sampling).
        prediction_type: what the network predicts; the training scheduler's when None.
        clip_sample: clip the x0 estimate to [-1, 1] (as MONAI's DDIM ``clip_sample``), through diffusers'
            thresholding with ``sample_max_value=1``; off for latents.
        use_karras_sigmas: space the steps by the noise levels of Karras et al. (2022), dense at low noise, instead
            of evenly in t (``timestep_spacing``). On a Gaussian whose per-pixel spread (0.2) is below the noise at
            t = 99, evenly spaced 10 steps end with one jump from there to the data and draw the posterior mean:
            0.39 of the target's standard deviation; with Karras' spacing 0.95 (tests/schedulers).
        timestep_spacing: diffusers' ``linspace``, ``leading`` or ``trailing`` (without Karras' spacing).
        solver_kwargs: further settings of the diffusers scheduler.

    Raises:
        ValueError: for an unknown solver.
        OptionalImportError: without the diffusers package (``pip install monai_lesiongen[sd]``).
    """

    takes_generator_per_image = True
    """`step` takes a list of generators, one per image of the batch (diffusers' ``randn_tensor`` draws with each)."""

    def __init__(
        self,
        training_scheduler: Scheduler,
        solver: str = "dpmsolver++",
        solver_order: int = 2,
        prediction_type: str | None = None,
        clip_sample: bool = False,
        use_karras_sigmas: bool = True,
        timestep_spacing: str = "linspace",
        **solver_kwargs: Any,
    ) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}.")
        super().__init__(num_train_timesteps=int(training_scheduler.num_train_timesteps))
        self.betas = training_scheduler.betas.clone()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.prediction_type = str(prediction_type or getattr(training_scheduler, "prediction_type", "epsilon"))
        class_name, settings = SOLVERS[solver]
        self.solver_name = solver
        # a zero-terminal-SNR schedule (beta_T = 1) is kept, with diffusers' stand-in 2^-24 for alpha_bar_T = 0
        zero_terminal_snr = float(self.alphas_cumprod[-1]) == 0.0
        self.solver = getattr(diffusers, class_name)(
            num_train_timesteps=self.num_train_timesteps,
            trained_betas=self.betas.double().numpy(),
            solver_order=solver_order,
            prediction_type=self.prediction_type,
            thresholding=clip_sample,
            sample_max_value=1.0,
            use_karras_sigmas=use_karras_sigmas,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=zero_terminal_snr,
            **settings,
            **solver_kwargs,
        )

    @property
    def stochastic_solver(self) -> bool:
        """Whether the solver draws noise at each step (``sde-dpmsolver++``)."""
        return str(getattr(self.solver.config, "algorithm_type", "")).startswith("sde")

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set the solver's `num_inference_steps` timesteps and start a new history of model outputs."""
        if num_inference_steps < 1 or num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be in [1, {self.num_train_timesteps}], got {num_inference_steps}."
            )
        self.solver.set_timesteps(num_inference_steps, device=device)
        self.num_inference_steps = num_inference_steps
        self.timesteps = self.solver.timesteps

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> tuple[torch.Tensor, None]:
        """The sample at the next of the solver's timesteps, from the model output at `timestep`; a stochastic
        solver's noise comes from `generator` (one, or one per image)."""
        extra = {}
        if generator is not None and self.stochastic_solver:
            extra["generator"] = list(generator) if isinstance(generator, Sequence) else generator
        previous: torch.Tensor = self.solver.step(model_output, timestep, sample, return_dict=False, **extra)[0]
        return previous.to(sample.dtype), None
