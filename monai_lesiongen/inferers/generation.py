"""Turning a trained denoiser into images: seeded batched sampling, and synthetic data sets with a manifest."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.networks.schedulers import Scheduler
from monai.utils import optional_import
from torch import nn

from monai_lesiongen.inferers.conditioned import ConditionedDiffusionInferer, SamplingGuidance
from monai_lesiongen.networks.text_encoder import FrozenTextEncoder
from monai_lesiongen.utils.orientation import to_nifti_array, to_pil_image

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["ConditionedSampler", "SyntheticDatasetWriter"]


class ConditionedSampler:
    """Generate images for lists of captions and/or class labels, one fixed seed per image.

    Each image's starting noise, and the noise of a stochastic sampler's steps (DDPM, DDIM with eta > 0), come from
    its own seed, so an image does not change with the batch it is drawn in, and a run can be repeated or resumed
    image by image (a deterministic sampler's image is also the same on every device; a stochastic one's on every
    device of one kind).

    Args:
        inferer: the conditioned inferer.
        scheduler: the sampling scheduler: DDIM, DDPM, PNDM or `RFlowScheduler` from `monai.networks.schedulers`, or
            a `DiffusersSolver` (DPM-Solver++, UniPC) on the training schedule.
        sample_shape: (C, H, W) of the denoiser's samples.
        num_inference_steps: sampling steps.
        guidance_scale: classifier-free guidance scale (1 for none).
        text_encoder: encoder for the captions; None for a denoiser without text condition.
        null_class_label: the null class for classifier-free guidance with class labels.
        guidance: further guidance terms (e.g. classifier guidance).
        batch_size: images per forward batch.
        progress: show progress bars.
        decoder: maps samples to images for a latent diffusion model (a `LatentDecoder`); None in pixel space.
        eta: DDIM's eta (0: deterministic DDIM; 1: the noise of DDPM's ancestral step at each step); only for a
            scheduler whose step takes it.
    """

    def __init__(
        self,
        inferer: ConditionedDiffusionInferer,
        scheduler: Scheduler,
        sample_shape: Sequence[int],
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        text_encoder: FrozenTextEncoder | None = None,
        null_class_label: int | None = None,
        guidance: Sequence[SamplingGuidance] = (),
        batch_size: int = 16,
        progress: bool = True,
        decoder: nn.Module | None = None,
        eta: float = 0.0,
    ) -> None:
        if len(sample_shape) != 3:
            raise ValueError(f"sample_shape must be (C, H, W), got {tuple(sample_shape)}.")
        if num_inference_steps < 1 or batch_size < 1:
            raise ValueError(f"need num_inference_steps, batch_size >= 1, got {num_inference_steps}, {batch_size}.")
        self.inferer = inferer
        self.scheduler = scheduler
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.text_encoder = text_encoder
        self.null_class_label = null_class_label
        self.guidance = list(guidance)
        self.batch_size = batch_size
        self.progress = progress
        self.decoder = decoder
        self.eta = eta

    def initial_noise(self, seeds: Sequence[int], device: torch.device) -> torch.Tensor:
        """x_T for each seed, drawn on the CPU so that a seed gives the same image on every device."""
        noise = [torch.randn(self.sample_shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        return torch.stack(noise).to(device)

    @staticmethod
    def step_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
        """One generator per seed for the noise of the sampling steps, its stream apart from that of x_T.

        The generators live on `device` (the schedulers draw their step noise there), so a stochastic sampler's image
        is the same for a seed on every run on one kind of device, but not between a CPU and a GPU.
        """
        states = [np.random.SeedSequence([int(s), 1]).generate_state(1, dtype=np.uint64)[0] for s in seeds]
        return [torch.Generator(device=device).manual_seed(int(state)) for state in states]

    @torch.no_grad()
    def __call__(
        self,
        network: nn.Module,
        seeds: Sequence[int],
        captions: Sequence[str] | None = None,
        class_labels: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] (the [-1, 1] data range mapped back), one per seed; latent samples are
        decoded first.

        Raises:
            ValueError: when captions/labels and seeds differ in length, or captions come without a text encoder.
        """
        count = len(seeds)
        if captions is not None and len(captions) != count:
            raise ValueError(f"got {len(captions)} captions for {count} seeds.")
        if class_labels is not None and len(class_labels) != count:
            raise ValueError(f"got {len(class_labels)} class labels for {count} seeds.")
        if captions is not None and self.text_encoder is None:
            raise ValueError("captions were given but the sampler has no text_encoder.")
        device = next(network.parameters()).device
        was_training = network.training
        network.eval()
        outputs = []
        starts = range(0, count, self.batch_size)
        for start in tqdm(starts, desc="generating", leave=False) if self.progress and has_tqdm else starts:
            stop = min(start + self.batch_size, count)
            context = uncond = labels = None
            if captions is not None and self.text_encoder is not None:
                context = self.text_encoder.encode(list(captions[start:stop]), device=device)
                uncond = self.text_encoder.null_context(stop - start, device=device)
            if class_labels is not None:
                labels = torch.as_tensor(class_labels[start:stop], dtype=torch.long).view(-1).to(device)
            samples = self.inferer.sample(
                self.initial_noise(seeds[start:stop], device),
                network,
                scheduler=self.scheduler,
                num_inference_steps=self.num_inference_steps,
                conditioning=context,
                unconditional_conditioning=uncond,
                class_labels=labels,
                null_class_label=self.null_class_label,
                guidance_scale=self.guidance_scale,
                guidance=self.guidance,
                generator=self.step_generators(seeds[start:stop], device),
                eta=self.eta,
                verbose=False,
            )
            if self.decoder is not None:
                samples = self.decoder(samples)
            outputs.append(((samples.float() + 1) / 2).clamp(0, 1).cpu())
        network.train(was_training)
        return torch.cat(outputs)


class SyntheticDatasetWriter:
    """Write a synthetic data set: `num_per_row` images for every row of a generation plan, and a manifest CSV.

    A plan row is a mapping with a caption (under `caption_key`) and/or a class index (under `label_key`) and any
    condition fields worth recording (diagnosis, skin type, site, ...); every field goes into the manifest, and the
    two keys say which ones condition the model. Images are named ``<prefix>_<row>_<k>`` and written as PNG (or
    NIfTI through MONAI's `SaveImage` with ``output_ext=".nii.gz"``). Images already on disk are not generated
    again, so an interrupted run continues where it stopped, and the manifest lists exactly the files on disk.

    Several processes (``torchrun``, one per GPU) share the work: each generates its `shard` of the missing images,
    then rank 0 writes the one manifest. Every image is drawn in the same batch as in a one-process run, so the
    files and the manifest are the same as one process would write.

    Args:
        sampler: the sampler.
        plan: the generation plan.
        output_dir: the folder for images and ``manifest.csv``.
        num_per_row: images per plan row (a row's own count, under `count_key`, replaces it).
        seed: the base seed; image k of row r gets ``seed`` + the images of the rows before r + k (``seed + r *
            num_per_row + k`` when no row has its own count).
        output_ext: ``.png`` or ``.nii.gz``.
        prefix: the image name prefix.
        caption_key: the plan field holding the caption; None for a model without text condition.
        label_key: the plan field holding the class index; None for a model without class condition.
        count_key: the plan field holding a row's own number of images (a gap-filling plan's, 0 for none); rows
            without it get `num_per_row`. None: every row gets `num_per_row`.
        rank: this process's rank among `world_size` processes; None: torch.distributed's rank when a process group
            is initialised, else 0.
        world_size: the number of processes sharing the work; None: torch.distributed's world size when a process
            group is initialised, else 1. More than one needs an initialised process group (for its barriers).

    Raises:
        ValueError: for an unknown extension, an empty plan, ``num_per_row < 1``, rows without a conditioning
            field, or a rank outside ``[0, world_size)``.
    """

    def __init__(
        self,
        sampler: ConditionedSampler,
        plan: Sequence[Mapping[str, Any]],
        output_dir: str | Path,
        num_per_row: int = 1,
        seed: int = 0,
        output_ext: str = ".png",
        prefix: str = "synthetic",
        caption_key: str | None = "caption",
        label_key: str | None = None,
        count_key: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if output_ext not in (".png", ".nii.gz"):
            raise ValueError(f"output_ext must be '.png' or '.nii.gz', got {output_ext!r}.")
        if not plan:
            raise ValueError("the generation plan is empty: nothing to generate.")
        if num_per_row < 1:
            raise ValueError(f"num_per_row must be >= 1, got {num_per_row}.")
        for key in (caption_key, label_key):
            missing = [i for i, row in enumerate(plan) if key is not None and key not in row]
            if missing:
                raise ValueError(f"plan rows {missing[:10]} have no '{key}' field, which conditions the model.")
        for index, row in enumerate(plan):
            count = row.get(count_key, num_per_row) if count_key is not None else num_per_row
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"plan row {index}: '{count_key}' must be an integer >= 0, got {count!r}.")
        if world_size is not None and world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}.")
        if rank is not None and (rank < 0 or (world_size is not None and rank >= world_size)):
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        self.sampler = sampler
        self.plan = list(plan)
        self.output_dir = Path(output_dir)
        self.num_per_row = num_per_row
        self.seed = seed
        self.output_ext = output_ext
        self.prefix = prefix
        self.caption_key = caption_key
        self.label_key = label_key
        self.count_key = count_key
        if not any(self.row_count(row) for row in self.plan):
            raise ValueError(f"every plan row has '{count_key}' 0: nothing to generate.")
        self.rank = rank
        self.world_size = world_size

    def process_group(self) -> tuple[int, int]:
        """This process's ``(rank, world_size)``: the arguments, else torch.distributed's, else ``(0, 1)``.

        Raises:
            ValueError: when more than one process is asked for without an initialised process group of that size.
        """
        initialised = dist.is_available() and dist.is_initialized()
        world_size = self.world_size if self.world_size is not None else dist.get_world_size() if initialised else 1
        rank = self.rank if self.rank is not None else dist.get_rank() if initialised else 0
        if world_size > 1 and not (initialised and dist.get_world_size() == world_size):
            raise ValueError(
                f"world_size={world_size} needs an initialised torch.distributed process group of that size (the "
                "ranks wait for each other before the manifest is written): start the run with torchrun and call "
                "torch.distributed.init_process_group() first, or leave rank and world_size unset."
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        return rank, world_size

    def shard(self, todo: Sequence[dict[str, Any]], rank: int, world_size: int) -> list[dict[str, Any]]:
        """The entries of `todo` that `rank` of `world_size` generates: sampler batches of `todo`, dealt in turn.

        A one-process run draws `todo` in batches of ``sampler.batch_size``; dealing out those same batches makes
        every image the same as there (even with a stochastic scheduler, whose noise is seeded per batch), and the
        ranks' shares differ by at most one batch.
        """
        batch = self.sampler.batch_size
        return [entry for index, entry in enumerate(todo) if (index // batch) % world_size == rank]

    def row_count(self, row: Mapping[str, Any]) -> int:
        """The number of images of a plan row: its own count (under `count_key`) or `num_per_row`."""
        return int(row.get(self.count_key, self.num_per_row)) if self.count_key is not None else self.num_per_row

    def jobs(self) -> list[dict[str, Any]]:
        """One entry per image to exist when the run ends: its file name, seed and plan row."""
        entries = []
        first_seed = self.seed
        for row_index, row in enumerate(self.plan):
            count = self.row_count(row)
            for k in range(count):
                name = f"{self.prefix}_{row_index:05d}_{k:03d}{self.output_ext}"
                entries.append({"file": name, "seed": first_seed + k, "row": row})
            first_seed += count
        return entries

    def save(self, image: torch.Tensor, entry: Mapping[str, Any]) -> None:
        """Write one generated image in [0, 1] to its entry's file, atomically (temp file + rename).

        The image is in MONAI's (C, W, H) layout, as training loaded the real ones (see
        `monai_lesiongen.utils.orientation`).
        """
        self._save(image, self.output_dir / entry["file"])

    def _save(self, image: torch.Tensor, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.partial_path(path)
        if self.output_ext == ".png":
            to_pil_image(image).save(tmp, format="PNG")
        else:
            import nibabel as nib

            nifti = nib.Nifti1Image(to_nifti_array(image), np.eye(4))
            with open(tmp, "wb") as f, gzip.GzipFile(path.name, "wb", compresslevel=1, fileobj=f, mtime=0) as stream:
                nifti.to_stream(stream)
        tmp.replace(path)

    @staticmethod
    def partial_path(path: Path) -> Path:
        """Where `path` is written before it is renamed into place: ``.<name>.tmp`` next to it, a hidden file that
        no image or manifest pattern (``*.png``, ``*.nii.gz``, ``*.csv``) matches."""
        return path.parent / f".{path.name}.tmp"

    def remove_partial_files(self) -> list[Path]:
        """Delete the temporary files (see `partial_path`) that a run killed while writing left in `output_dir` and
        its subfolders; returns them."""
        patterns = (f".*{self.output_ext}.tmp", ".manifest.csv.tmp")
        removed = sorted({path for pattern in patterns for path in self.output_dir.rglob(pattern) if path.is_file()})
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def write_manifest(self, entries: Sequence[Mapping[str, Any]]) -> Path:
        """Write ``manifest.csv`` for the entries whose files exist; returns its path.

        Columns: the entry's own fields (``file``, ``seed``, and any a subclass adds), the sampling settings, then
        every field of the plan rows.
        """
        entry_fields = [k for k in entries[0] if k != "row"] if entries else ["file", "seed"]
        field_names: list[str] = []
        for entry in entries:
            for key in entry["row"]:
                if key not in field_names:
                    field_names.append(key)
        header = [*entry_fields, "guidance_scale", "num_inference_steps", "eta", *field_names]
        path = self.output_dir / "manifest.csv"
        tmp = self.partial_path(path)
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            for entry in entries:
                if (self.output_dir / entry["file"]).is_file():
                    writer.writerow(
                        {
                            **{k: entry[k] for k in entry_fields},
                            "guidance_scale": self.sampler.guidance_scale,
                            "num_inference_steps": self.sampler.num_inference_steps,
                            "eta": self.sampler.eta,
                            **{k: entry["row"].get(k, "") for k in field_names},
                        }
                    )
        tmp.replace(path)
        return path

    def run(self, network: nn.Module) -> Path:
        """Generate the missing images and write the manifest; returns the manifest's path.

        With several processes, every rank must call it: each lists the missing images before any rank writes one,
        generates its `shard`, and rank 0 writes the manifest once all are done (the manifest exists on return).
        """
        rank, world_size = self.process_group()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.remove_partial_files()  # before the first barrier: no rank is writing yet
        entries = self.jobs()
        todo = [e for e in entries if not (self.output_dir / e["file"]).is_file()]
        if world_size > 1:
            dist.barrier()  # every rank has listed the same missing images before any is written
        todo = self.shard(todo, rank, world_size)
        batch = self.sampler.batch_size
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            captions = [str(e["row"][self.caption_key]) for e in chunk] if self.caption_key else None
            labels = [int(e["row"][self.label_key]) for e in chunk] if self.label_key else None
            images = self.sampler(network, [e["seed"] for e in chunk], captions=captions, class_labels=labels)
            for entry, image in zip(chunk, images, strict=True):
                self.save(image, entry)
            if rank == 0:
                self.write_manifest(entries)
        if world_size > 1:
            dist.barrier()  # every rank's images are on disk
        manifest = self.write_manifest(entries) if rank == 0 else self.output_dir / "manifest.csv"
        if world_size > 1:
            dist.barrier()  # the manifest is on disk
        return manifest
