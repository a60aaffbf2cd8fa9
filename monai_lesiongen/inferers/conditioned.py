"""Diffusion inferer with text and class conditions and guided sampling (classifier-free and classifier guidance)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import Scheduler
from monai.utils import optional_import
from torch import nn

from monai_lesiongen.schedulers import noise_process

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["ConditionedDiffusionInferer", "SamplingGuidance"]


class SamplingGuidance(Protocol):
    """A term that changes the model output at each sampling step (e.g. classifier guidance).

    It receives the (guided) model output, the current sample x_t, the timestep and the scheduler, and returns the
    new model output in the scheduler's prediction type.
    """

    def __call__(
        self, model_output: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor, scheduler: Scheduler
    ) -> torch.Tensor: ...


class ConditionedDiffusionInferer(DiffusionInferer):
    """`DiffusionInferer` for a denoiser conditioned on text context, a class label, or both.

    MONAI's `DiffusionInferer` passes ``context`` but not ``class_labels`` to the network, and its classifier-free
    guidance uses a constant-filled tensor as the unconditional input. This inferer passes both conditions, and its
    `sample` takes the same null condition the training used (the empty caption's context, the null class), runs the
    conditional and unconditional passes, and applies further guidance terms.

    Args:
        scheduler: the training scheduler (noise is added with it in `__call__`).
        batched_guidance: run the conditional and unconditional passes of classifier-free guidance as one forward of
            twice the batch (True) or as two forwards (False). The results are the same; which is faster depends on
            the device: on a 2-core CPU two forwards were 15-17% faster (benchmarks/cfg_batching.py).
        guidance_rescale: phi of Lin et al. (2024, section 3.4): the guided output is rescaled to the standard
            deviation of the conditional output (per sample) and mixed as ``phi * rescaled + (1 - phi) * guided``,
            which keeps a large guidance scale from over-exposing the samples of a zero-terminal-SNR model. 0 is
            plain classifier-free guidance.
        guidance_interval: ``(low, high)``: classifier-free guidance only at the steps whose noise level
            ``t / num_train_timesteps`` (0 clean, 1 pure noise) lies in ``[low, high]``; the other steps take the
            conditional prediction alone, in one forward (Kynkaenniemi et al. 2024, "Applying guidance in a limited
            interval improves sample and distribution quality"). None: guidance at every step.

    Raises:
        ValueError: for a `guidance_rescale` outside [0, 1], or a `guidance_interval` that is not
            ``0 <= low < high <= 1``.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        batched_guidance: bool = True,
        guidance_rescale: float = 0.0,
        guidance_interval: Sequence[float] | None = None,
    ) -> None:
        super().__init__(scheduler=scheduler)
        if not 0.0 <= guidance_rescale <= 1.0:
            raise ValueError(f"guidance_rescale must be in [0, 1], got {guidance_rescale}.")
        if guidance_interval is not None:
            low, high = (float(v) for v in guidance_interval)
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(
                    f"guidance_interval must be (low, high) with 0 <= low < high <= 1, got {guidance_interval}."
                )
            guidance_interval = (low, high)
        self.guidance_interval = guidance_interval
        self.batched_guidance = batched_guidance
        self.guidance_rescale = guidance_rescale

    def _guided_output(
        self,
        diffusion_model: nn.Module,
        sample: torch.Tensor,
        t_batch: torch.Tensor,
        context_in: torch.Tensor | None,
        labels_in: torch.Tensor | None,
        guidance_scale: float,
    ) -> torch.Tensor:
        """``u + w (c - u)`` from the unconditional and conditional halves of `context_in` / `labels_in`."""
        if self.batched_guidance:
            output = diffusion_model(
                x=torch.cat([sample, sample]),
                timesteps=torch.cat([t_batch, t_batch]),
                context=context_in,
                class_labels=labels_in,
            )
            output_uncond, output_cond = output.chunk(2)
        else:
            contexts = context_in.chunk(2) if context_in is not None else (None, None)
            labels = labels_in.chunk(2) if labels_in is not None else (None, None)
            output_uncond, output_cond = (
                diffusion_model(x=sample, timesteps=t_batch, context=context, class_labels=label)
                for context, label in zip(contexts, labels, strict=True)
            )
        guided: torch.Tensor = output_uncond + guidance_scale * (output_cond - output_uncond)
        if self.guidance_rescale > 0:
            dims = tuple(range(1, guided.ndim))
            rescaled = guided * output_cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
            guided = self.guidance_rescale * rescaled + (1 - self.guidance_rescale) * guided
        return guided

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        diffusion_model: nn.Module,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's prediction for `inputs` noised with `noise` at `timesteps` (one training forward)."""
        noisy = self.scheduler.add_noise(original_samples=inputs, noise=noise, timesteps=timesteps)
        prediction: torch.Tensor = diffusion_model(
            x=noisy, timesteps=timesteps, context=condition, class_labels=class_labels
        )
        return prediction

    def guides_at(self, timestep: torch.Tensor, scheduler: Scheduler) -> bool:
        """Whether classifier-free guidance applies at `timestep` (see `guidance_interval`)."""
        if self.guidance_interval is None:
            return True
        low, high = self.guidance_interval
        level = float(timestep) / float(scheduler.num_train_timesteps)
        return low <= level <= high

    @torch.no_grad()
    def sample(  # type: ignore[override]
        self,
        input_noise: torch.Tensor,
        diffusion_model: nn.Module,
        scheduler: Scheduler | None = None,
        num_inference_steps: int | None = None,
        conditioning: torch.Tensor | None = None,
        unconditional_conditioning: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        null_class_label: int | None = None,
        guidance_scale: float = 1.0,
        guidance: Sequence[SamplingGuidance] = (),
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        eta: float = 0.0,
        verbose: bool = True,
        intermediate_callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Sample from the denoiser, starting at `input_noise`.

        Args:
            input_noise: x_T, the shape of the samples.
            diffusion_model: the denoiser.
            scheduler: the sampling scheduler (DDPM, DDIM, PNDM, `RFlowScheduler`, `DiffusersSolver`); the
                inferer's own by default.
            num_inference_steps: number of sampling steps; the scheduler's current setting when None.
            conditioning: text context (B, L, D), or None.
            unconditional_conditioning: the null context (B, L, D) for classifier-free guidance.
            class_labels: class labels (B,), or None.
            null_class_label: the null class for classifier-free guidance.
            guidance_scale: classifier-free guidance scale w: ``u + w (c - u)``; 1 is plain conditional sampling.
            guidance: further guidance terms applied to the model output at each step.
            generator: random generator for the schedulers' stochastic steps (DDPM, DDIM with eta > 0), for
                reproducible samples; or one generator per image, so that an image does not depend on its batch.
            eta: DDIM's eta: 0 is the deterministic DDIM sampler, 1 adds the noise of DDPM's ancestral step at each
                step (Song et al., 2021, eq. 16). Only for schedulers whose step takes eta.
            verbose: show a progress bar.
            intermediate_callback: called as ``f(step_index, sample)`` after each step.

        Raises:
            ValueError: when guidance is asked for without the unconditional inputs it needs, eta is given to a
                scheduler without it, or the generators are not one per image.
        """
        scheduler = scheduler or self.scheduler
        process = noise_process(scheduler)
        process.check_step_arguments(eta)
        if not process.stochastic:
            generator = None  # a deterministic scheduler (PNDM, rectified flow's Euler step)
        elif generator is not None and not isinstance(generator, torch.Generator):
            if len(generator) != input_noise.shape[0]:
                raise ValueError(f"got {len(generator)} generators for a batch of {input_noise.shape[0]}.")
        if num_inference_steps is not None:
            process.set_timesteps(num_inference_steps, input_noise.shape, device=input_noise.device)
        use_cfg = guidance_scale != 1.0
        if use_cfg:
            if conditioning is not None and unconditional_conditioning is None:
                raise ValueError("guidance_scale != 1 with text conditioning needs unconditional_conditioning.")
            if class_labels is not None and null_class_label is None:
                raise ValueError("guidance_scale != 1 with class labels needs null_class_label.")
            if conditioning is None and class_labels is None:
                raise ValueError("guidance_scale != 1 needs a condition (text context or class labels) to guide by.")
        batch_size = input_noise.shape[0]
        context_in = conditioning
        labels_in = class_labels
        if use_cfg:
            if conditioning is not None:
                context_in = torch.cat([unconditional_conditioning.expand_as(conditioning), conditioning])  # type: ignore
            if class_labels is not None:
                labels_in = torch.cat([torch.full_like(class_labels, int(null_class_label)), class_labels])  # type: ignore
        sample = input_noise
        timesteps = process.timesteps
        # rectified flow's continuous timesteps (float16 in MONAI's scheduler) reach the network as float32
        timestep_dtype = torch.float32 if timesteps.is_floating_point() else torch.long
        next_timesteps = torch.cat([timesteps[1:], torch.zeros_like(timesteps[:1])])
        steps = list(zip(timesteps, next_timesteps, strict=True))
        progress = tqdm(steps, desc="sampling", leave=False) if verbose and has_tqdm else steps
        for index, (t, next_t) in enumerate(progress):
            t_batch = torch.full((batch_size,), t.item(), device=sample.device, dtype=timestep_dtype)
            if use_cfg and self.guides_at(t, scheduler):
                model_output = self._guided_output(
                    diffusion_model, sample, t_batch, context_in, labels_in, guidance_scale
                )
            elif use_cfg:  # outside the guidance interval: the conditional half alone
                model_output = diffusion_model(
                    x=sample, timesteps=t_batch, context=conditioning, class_labels=class_labels
                )
            else:
                model_output = diffusion_model(x=sample, timesteps=t_batch, context=context_in, class_labels=labels_in)
            for term in guidance:
                model_output = term(model_output, sample, t_batch, scheduler)
            sample = process.step(model_output, t, next_t, sample, eta=eta, generator=generator)
            if intermediate_callback is not None:
                intermediate_callback(index, sample)
        return sample
