"""An interrupted `SyntheticDatasetWriter` run, resumed: no image drawn twice, none overwritten, no temporary file."""

from __future__ import annotations

import csv
import fnmatch
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler

from monai_lesiongen.inferers import ConditionedDiffusionInferer, ConditionedSampler, SyntheticDatasetWriter

PLAN = [{"label": 0, "label_name": "bcc"}, {"label": 1, "label_name": "mel"}, {"label": 0, "label_name": "bcc"}]


class _CountingSampler(ConditionedSampler):
    """Records the seeds it is asked for, and raises once more than `stop_after` images would have been drawn."""

    def __init__(self, *args, stop_after: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_after = stop_after
        self.seeds: list[int] = []

    def __call__(self, network, seeds, captions=None, class_labels=None) -> torch.Tensor:
        if self.stop_after is not None and len(self.seeds) + len(seeds) > self.stop_after:
            raise KeyboardInterrupt("interrupted")
        self.seeds.extend(int(s) for s in seeds)
        return super().__call__(network, seeds, captions=captions, class_labels=class_labels)


def _writer(folder: Path, stop_after: int | None = None, output_ext: str = ".png") -> SyntheticDatasetWriter:
    scheduler = DDIMScheduler(50)
    sampler = _CountingSampler(
        ConditionedDiffusionInferer(scheduler), scheduler, (3, 8, 8), num_inference_steps=2, guidance_scale=2.0,
        null_class_label=2, batch_size=4, progress=False, stop_after=stop_after,
    )  # fmt: skip
    return SyntheticDatasetWriter(
        sampler, PLAN, folder, num_per_row=4, seed=3, output_ext=output_ext, caption_key=None, label_key="label"
    )


def _manifest_files(folder: Path) -> list[str]:
    with open(folder / "manifest.csv", newline="") as f:
        return sorted(row["file"] for row in csv.DictReader(f))


def test_an_interrupted_run_resumes_where_it_stopped(tiny_denoiser, tmp_path: Path) -> None:
    network = tiny_denoiser(num_classes=2)
    full = tmp_path / "full"
    _writer(full).run(network)
    folder = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        _writer(folder, stop_after=8).run(network)
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.png")}
    assert len(done) == 8
    assert _manifest_files(folder) == sorted(done)  # the manifest of the interrupted run matches the disk
    # what processes killed between writing a temporary file and renaming it leave: for an image still to draw, for
    # one that this (smaller) plan no longer has, and for the manifest
    for name in [".synthetic_00002_003.png.tmp", ".synthetic_00007_000.png.tmp", ".manifest.csv.tmp"]:
        (folder / name).write_bytes(b"\x89PNG\r\n")

    writer = _writer(folder)
    writer.run(network)
    assert writer.sampler.seeds == list(range(3 + 8, 3 + 12))  # only the missing images are drawn
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.png") if p.name in done} == done
    names = sorted(p.name for p in full.glob("*.png"))
    assert len(names) == 12 and sorted(p.name for p in folder.glob("*.png")) == names
    for name in names:
        assert (folder / name).read_bytes() == (full / name).read_bytes(), name
    assert _manifest_files(folder) == names
    assert (folder / "manifest.csv").read_bytes() == (full / "manifest.csv").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "manifest.csv"])  # no temporary file left


def test_temporary_files_match_no_image_pattern(tmp_path: Path) -> None:
    for name in ["synthetic_00000_000.png", "synthetic_00000_000.nii.gz", "manifest.csv"]:
        partial = SyntheticDatasetWriter.partial_path(tmp_path / name)
        partial.write_bytes(b"")
        assert partial.parent == tmp_path and partial.name.startswith(".")
        assert not any(fnmatch.fnmatch(partial.name, p) for p in ["*.png", "*.nii.gz", "*.csv", "synthetic_*"])
        assert not list(tmp_path.glob(f"*{''.join(Path(name).suffixes)}"))  # pathlib's glob matches hidden files


def test_nifti_images_are_written_through_a_temporary_file(tiny_denoiser, tmp_path: Path) -> None:
    network = tiny_denoiser(num_classes=2)
    writer = _writer(tmp_path, output_ext=".nii.gz")
    (tmp_path / ".synthetic_00000_000.nii.gz.tmp").write_bytes(b"\x1f\x8b")
    writer.run(network)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted([*(f"synthetic_{r:05d}_{k:03d}.nii.gz" for r in range(3) for k in range(4)), "manifest.csv"])
    expected = writer.sampler(network, [3], class_labels=[0])[0]
    image = nib.load(tmp_path / "synthetic_00000_000.nii.gz")
    assert image.shape == (8, 8, 3)
    # samples are (C, W, H) as LoadImage reads a PNG; the NIfTI file stores (W, H, C), read back by LoadImage the same
    assert np.allclose(np.asarray(image.dataobj), expected.permute(1, 2, 0).numpy())


def test_rows_with_their_own_counts(tiny_denoiser, tmp_path: Path) -> None:
    """A gap-filling plan's rows carry their number of images: seeds run on from row to row, a count 0 draws none."""
    scheduler = DDIMScheduler(50)
    sampler = _CountingSampler(
        ConditionedDiffusionInferer(scheduler), scheduler, (3, 8, 8), num_inference_steps=2, guidance_scale=1.0,
        null_class_label=2, batch_size=4, progress=False,
    )  # fmt: skip
    plan = [dict(PLAN[0], count=2), dict(PLAN[1], count=0), dict(PLAN[2], count=3), {"label": 1, "label_name": "mel"}]
    writer = SyntheticDatasetWriter(
        sampler, plan, tmp_path, num_per_row=4, seed=3, caption_key=None, label_key="label", count_key="count"
    )
    writer.run(tiny_denoiser(num_classes=2))
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], int(r["seed"]), r["count"]) for r in rows] == [
        ("synthetic_00000_000.png", 3, "2"),
        ("synthetic_00000_001.png", 4, "2"),
        ("synthetic_00002_000.png", 5, "3"),
        ("synthetic_00002_001.png", 6, "3"),
        ("synthetic_00002_002.png", 7, "3"),
        *[(f"synthetic_00003_{k:03d}.png", 8 + k, "") for k in range(4)],  # no count: num_per_row
    ]
    assert sorted(sampler.seeds) == list(range(3, 12))
    # without counts, the seeds are those of num_per_row images per row
    assert [e["seed"] for e in _writer(tmp_path / "plain").jobs()] == list(range(3, 15))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="row 0: 'count' must be an integer >= 0"):
            SyntheticDatasetWriter(sampler, [dict(PLAN[0], count=bad)], tmp_path, caption_key=None, count_key="count")
    with pytest.raises(ValueError, match="nothing to generate"):
        SyntheticDatasetWriter(sampler, [dict(PLAN[0], count=0)], tmp_path, caption_key=None, count_key="count")
