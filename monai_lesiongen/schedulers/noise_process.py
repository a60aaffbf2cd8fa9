"""What every code path needs from a noise scheduler, for MONAI's DDPM/DDIM/PNDM, its `RFlowScheduler` and the
diffusers solvers.

Both families noise a clean sample x0 the same way, ``x_t = a_t x0 + s_t eps``: the variance-preserving schedules of
DDPM, DDIM and PNDM with ``a_t = sqrt(alpha_bar_t)``, ``s_t = sqrt(1 - alpha_bar_t)``, and rectified flow with
``a_t = 1 - t / T``, ``s_t = t / T``. What the network predicts is a linear combination ``p_t x0 + q_t eps`` of the
two (epsilon, x0, the velocity ``a_t eps - s_t x0`` of Salimans & Ho (2022), or the flow velocity ``x0 - eps`` that
MONAI's rectified flow trains on), so the x0 and noise estimates, the classifier-guidance shift and the min-SNR
weights are one 2 x 2 solve for every scheduler. Noise, training targets, timestep draws and sampling steps are left
to the schedulers themselves.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from monai.networks.schedulers import RFlowScheduler, Scheduler

__all__ = ["NoiseProcess", "RectifiedFlowProcess", "VariancePreservingProcess", "noise_process"]


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.float().view(-1, *([1] * (ndim - 1)))


class NoiseProcess(ABC):
    """A scheduler seen as the noising ``x_t = a_t x0 + s_t eps`` and the parametrisation of the network's output.

    Args:
        scheduler: the MONAI (or MONAI-like) scheduler; noise, targets and steps are its own.
        prediction_type: what the network predicts; the scheduler's ``prediction_type`` when None.

    Raises:
        ValueError: for a prediction type the process does not know.
    """

    prediction_types: tuple[str, ...] = ()

    def __init__(self, scheduler: Scheduler, prediction_type: str | None = None) -> None:
        prediction_type = str(prediction_type or getattr(scheduler, "prediction_type", "epsilon"))
        if prediction_type not in self.prediction_types:
            raise ValueError(
                f"{type(scheduler).__name__} supports prediction_type {list(self.prediction_types)}, "
                f"got {prediction_type!r}."
            )
        self.scheduler = scheduler
        self.prediction_type = prediction_type
        self.num_train_timesteps = int(scheduler.num_train_timesteps)
        self._step_parameters = inspect.signature(scheduler.step).parameters  # type: ignore[arg-type]

    @abstractmethod
    def coefficients(self, timesteps: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_t, s_t) of ``x_t = a_t x0 + s_t eps``, each (B, 1, ...) for samples with `ndim` dimensions."""

    @abstractmethod
    def output_coefficients(self, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_t, q_t) of the network's output ``p_t x0 + q_t eps`` in this process's prediction type, from the
        (a_t, s_t) of `coefficients`."""

    @abstractmethod
    def target(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the network is trained to predict for clean samples `original` noised with `noise` at `timesteps`."""

    @abstractmethod
    def sample_timesteps(self, original: torch.Tensor) -> torch.Tensor:
        """Training timesteps (B,) for the clean batch `original`."""

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t: the scheduler's own ``add_noise``."""
        noisy: torch.Tensor = self.scheduler.add_noise(original_samples=original, noise=noise, timesteps=timesteps)
        return noisy

    def _solve(
        self, model_output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self.coefficients(timesteps, noisy.ndim)
        p, q = self.output_coefficients(a, s)
        determinant = a * q - s * p
        original = (q * noisy - s * model_output) / determinant
        noise = (a * model_output - p * noisy) / determinant
        return original, noise

    def original_sample(self, model_output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The model's estimate of x0 from its output at (x_t, t), differentiable in `model_output`."""
        return self._solve(model_output, noisy, timesteps)[0]

    def noise_estimate(self, model_output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The model's estimate of eps from its output at (x_t, t)."""
        return self._solve(model_output, noisy, timesteps)[1]

    def model_output(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The network output, in this prediction type, of the estimates (x0, eps)."""
        p, q = self.output_coefficients(*self.coefficients(timesteps, original.ndim))
        return p * original + q * noise

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The signal-to-noise ratio a_t^2 / s_t^2 per timestep (B,)."""
        a, s = self.coefficients(timesteps, 1)
        return a**2 / s**2

    def signal_fraction(self, timesteps: torch.Tensor) -> torch.Tensor:
        """a_t^2 / (a_t^2 + s_t^2) per timestep (B,): alpha_bar_t for a variance-preserving schedule; near 1 where
        an x0 estimate is sharp, 0 where x_t is all noise."""
        a, s = self.coefficients(timesteps, 1)
        return a**2 / (a**2 + s**2)

    def min_snr_weights(self, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023) per sample (B,) for a loss on this prediction type.

        The x0 loss is weighted by min(SNR, gamma); a loss on the output sees the x0 error scaled by
        d x0 / d output, so its weight is min(SNR, gamma) times that factor squared: 1/SNR for epsilon,
        1/(SNR + 1) for v-prediction, s_t^2 for the flow velocity.
        """
        a, s = self.coefficients(timesteps, 1)
        p, q = self.output_coefficients(a, s)
        factor = s / (a * q - s * p)
        return torch.clamp(a**2 / s**2, max=gamma) * factor**2

    def guide(
        self,
        model_output: torch.Tensor,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        score_shift: torch.Tensor,
        data_range: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """The model output after adding `score_shift` (e.g. ``s * grad_x log p(y | x_t)``) to the score of x_t.

        The noise estimate moves by ``-s_t * score_shift``, the x0 estimate follows from x_t and is clipped to
        `data_range` (with the noise estimate re-derived from the clipped x0) when given, and both are turned back
        into the prediction type. Where a_t = 0 (rectified flow's first step) x_t is all noise, holds no class
        information, and the output is left as it is.
        """
        a, s = self.coefficients(timesteps, noisy.ndim)
        x, output = noisy.float(), model_output.float()
        original, noise = self._solve(output, x, timesteps)
        guided_noise = noise - s * score_shift.float()
        has_signal = a > 0
        safe_a = torch.where(has_signal, a, torch.ones_like(a))
        guided_original = torch.where(has_signal, (x - s * guided_noise) / safe_a, original)
        guided_noise = torch.where(has_signal, guided_noise, noise)
        if data_range is not None:
            guided_original = guided_original.clamp(*data_range)
            guided_noise = torch.where(s > 0, (x - a * guided_original) / torch.where(s > 0, s, 1.0), guided_noise)
        return self.model_output(guided_original, guided_noise, timesteps).to(model_output.dtype)

    def set_timesteps(
        self, num_inference_steps: int, sample_shape: Sequence[int], device: torch.device | str | None = None
    ) -> None:
        """Set the scheduler's sampling timesteps for samples of shape (B, C, *spatial)."""
        self.scheduler.set_timesteps(num_inference_steps, device=device)  # type: ignore[operator]

    @property
    def timesteps(self) -> torch.Tensor:
        """The scheduler's sampling timesteps, from noise to data."""
        timesteps: torch.Tensor = self.scheduler.timesteps
        return timesteps

    def check_step_arguments(self, eta: float) -> None:
        """Raise a ValueError when `eta` is given to a scheduler whose step has no eta."""
        if eta != 0.0 and "eta" not in self._step_parameters:
            raise ValueError(
                f"eta={eta} needs a scheduler whose step takes eta (DDIM), got {type(self.scheduler).__name__}."
            )

    @property
    def stochastic(self) -> bool:
        """Whether the scheduler's step draws noise (takes a generator)."""
        return "generator" in self._step_parameters

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor,
        next_timestep: torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """x at `next_timestep` from x at `timestep`: one step of the scheduler with the arguments its step takes.

        With one generator per image, each image's step noise comes from its own generator: in one call where the
        scheduler takes a list of them (`DiffusersSolver`), else one call per image (MONAI's DDPM and DDIM).
        """
        kwargs: dict = {}
        if "eta" in self._step_parameters:
            kwargs["eta"] = eta
        if "next_timestep" in self._step_parameters:
            kwargs["next_timestep"] = next_timestep
        step_timestep = timestep.item() if timestep.is_floating_point() else int(timestep)
        per_image = generator is not None and not isinstance(generator, torch.Generator)
        if per_image and self.stochastic and not getattr(self.scheduler, "takes_generator_per_image", False):
            return torch.cat(
                [
                    self.scheduler.step(  # type: ignore[operator]
                        model_output[i : i + 1], step_timestep, sample[i : i + 1], **kwargs, generator=image_generator
                    )[0]
                    for i, image_generator in enumerate(generator)  # type: ignore[arg-type]
                ]
            )
        if generator is not None and self.stochastic:
            kwargs["generator"] = generator
        prev: torch.Tensor = self.scheduler.step(model_output, step_timestep, sample, **kwargs)[0]  # type: ignore
        return prev


class VariancePreservingProcess(NoiseProcess):
    """DDPM, DDIM, PNDM and any scheduler with ``alphas_cumprod``: ``a_t = sqrt(alpha_bar_t)``,
    ``s_t = sqrt(1 - alpha_bar_t)``; predictions ``epsilon``, ``v_prediction`` (``a_t eps - s_t x0``) or ``sample``."""

    prediction_types = ("epsilon", "v_prediction", "sample")

    def coefficients(self, timesteps: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        alpha_bar = self.scheduler.alphas_cumprod.to(timesteps.device)[timesteps.long()]
        alpha_bar = _per_sample(alpha_bar, ndim)
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()

    def output_coefficients(self, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prediction_type == "epsilon":
            return torch.zeros_like(a), torch.ones_like(a)
        if self.prediction_type == "sample":
            return torch.ones_like(a), torch.zeros_like(a)
        return -s, a

    def target(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return original
        velocity: torch.Tensor = self.scheduler.get_velocity(original, noise, timesteps)  # type: ignore[operator]
        return velocity

    def sample_timesteps(self, original: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (original.shape[0],), device=original.device).long()

    @property
    def terminal_snr(self) -> float:
        """alpha_bar_T / (1 - alpha_bar_T) at the last training timestep."""
        alpha_bar = float(self.scheduler.alphas_cumprod[-1])
        return alpha_bar / (1 - alpha_bar)


class RectifiedFlowProcess(NoiseProcess):
    """MONAI's `RFlowScheduler`: ``x_t = (1 - t/T) x0 + (t/T) eps`` and the flow velocity ``x0 - eps`` as the
    prediction (``v_prediction``, MONAI's name for it); training timesteps from the scheduler's uniform or
    logit-normal draw and resolution shift, sampling by its Euler step."""

    prediction_types = ("v_prediction",)

    def coefficients(self, timesteps: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = _per_sample(timesteps, ndim) / self.num_train_timesteps
        return 1 - s, s

    def output_coefficients(self, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ones = torch.ones_like(a)
        return ones, -ones

    def target(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return original - noise

    def sample_timesteps(self, original: torch.Tensor) -> torch.Tensor:
        timesteps: torch.Tensor = self.scheduler.sample_timesteps(original)  # type: ignore[operator]
        return timesteps

    def set_timesteps(
        self, num_inference_steps: int, sample_shape: Sequence[int], device: torch.device | str | None = None
    ) -> None:
        numel = math.prod(int(size) for size in sample_shape[2:])
        self.scheduler.set_timesteps(  # type: ignore[operator]
            num_inference_steps, device=device, input_img_size_numel=numel
        )


def noise_process(scheduler: Scheduler, prediction_type: str | None = None) -> NoiseProcess:
    """The `NoiseProcess` of `scheduler`: rectified flow for MONAI's `RFlowScheduler`, variance-preserving for any
    scheduler with ``alphas_cumprod`` (DDPM, DDIM, PNDM, `DiffusersSolver`).

    Args:
        scheduler: the scheduler.
        prediction_type: what the network predicts; the scheduler's ``prediction_type`` when None.

    Raises:
        TypeError: for a scheduler of neither kind.
        ValueError: for a prediction type the scheduler's process does not support.
    """
    if isinstance(scheduler, NoiseProcess):
        raise TypeError("noise_process takes a scheduler, got a NoiseProcess.")
    if isinstance(scheduler, RFlowScheduler):
        return RectifiedFlowProcess(scheduler, prediction_type)
    if hasattr(scheduler, "alphas_cumprod"):
        return VariancePreservingProcess(scheduler, prediction_type)
    raise TypeError(
        f"{type(scheduler).__name__} is neither a rectified-flow scheduler nor one with alphas_cumprod "
        "(DDPM, DDIM, PNDM, DiffusersSolver)."
    )
