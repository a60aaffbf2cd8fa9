from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import FIDMetric
from monai.networks.layers import GaussianFilter

from monai_lesiongen.metrics import (
    InceptionV3FeatureExtractor,
    default_inception_weights_path,
    extract_features,
    frechet_distance,
    kernel_inception_distance,
    ms_ssim_diversity,
    precision_recall,
    subgroup_frechet_distances,
)


def _features(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    noise = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    smooth = GaussianFilter(spatial_dims=2, sigma=2.0)(noise)
    low, high = smooth.amin(dim=(1, 2, 3), keepdim=True), smooth.amax(dim=(1, 2, 3), keepdim=True)
    return (smooth - low) / (high - low)


@pytest.mark.parametrize("n", [30, 300])  # fewer samples than dimensions (SVD path) and more (eigen path)
def test_frechet_distance_matches_monai(n: int) -> None:
    real, fake = _features(n, 64, 0), 1.3 * _features(n + 7, 64, 1) + 0.2
    expected = FIDMetric()(fake, real).item()
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_self_and_monotonic() -> None:
    real = _features(200, 128, 0)
    assert abs(frechet_distance(real, real)) < 1e-3
    values = [frechet_distance(real, real + std * _features(200, 128, 1)) for std in (0.1, 0.3, 0.6, 1.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(real, real[:, :10])


def test_subgroup_frechet_distances_find_the_group_the_generator_misses() -> None:
    # three groups; the synthetic images of "b" are shifted, those of "a" and "c" come from the real distribution
    real = _features(90, 32, 0)
    real_groups = ["a"] * 20 + ["b"] * 40 + ["c"] * 30
    fake = _features(150, 32, 1)
    fake_groups = ["a"] * 50 + ["b"] * 50 + ["c"] * 48 + ["d"] * 2
    fake[50:100] += 1.0
    result = subgroup_frechet_distances(real, fake, real_groups, fake_groups, num_draws=30, seed=0)
    assert list(result) == ["a", "b", "c"]  # "d" has no real image
    assert {(r.real_size, r.synthetic_size) for r in result.values()} == {(10, 24)}  # half the smallest counts
    assert [(r.num_real, r.num_synthetic) for r in result.values()] == [(20, 50), (40, 50), (30, 48)]
    for r in result.values():
        assert r.lower <= r.mean <= r.upper
    # at equal sizes the two well-drawn groups agree, and the shifted one is far above both
    assert abs(result["a"].mean - result["c"].mean) < 0.25 * result["a"].mean
    assert result["b"].lower > max(result["a"].upper, result["c"].upper)
    again = subgroup_frechet_distances(real, fake, real_groups, fake_groups, num_draws=30, seed=0)
    assert again == result
    # the largest sizes: every draw of "a" holds all its real images, so its draws vary less than at half the size
    sized = subgroup_frechet_distances(real, fake, real_groups, fake_groups, real_size=20, fake_size=48, num_draws=30)
    assert (sized["a"].real_size, sized["a"].synthetic_size) == (20, 48)
    assert sized["a"].upper - sized["a"].lower < result["a"].upper - result["a"].lower
    assert sized["a"].mean < result["a"].mean  # the estimate's upward bias falls as the samples grow


def test_subgroup_frechet_distances_pair_the_real_draws_of_two_calls() -> None:
    # the real subsamples hang on the seed and the real groups alone, not on the other set, so the draws of two
    # calls (against a synthetic set, against a reference) are paired: here every draw takes a whole generated
    # group, of 24 images in one set and 30 (the same 24 and 6 of them again) in the other
    real = _features(60, 16, 0)
    real_groups = ["a"] * 30 + ["b"] * 30
    first = _features(48, 16, 1) + 0.5
    second = torch.cat([first[:24], first[:6], first[24:], first[24:30]])
    groups_first, groups_second = ["a"] * 24 + ["b"] * 24, ["a"] * 30 + ["b"] * 30
    one = subgroup_frechet_distances(real, first, real_groups, groups_first, real_size=8, fake_size=24, seed=3)
    two = subgroup_frechet_distances(real, second, real_groups, groups_second, real_size=8, fake_size=30, seed=3)
    other = subgroup_frechet_distances(real, second, real_groups, groups_second, real_size=8, fake_size=30, seed=4)
    for group in ("a", "b"):
        assert np.corrcoef(one[group].draws, two[group].draws)[0, 1] > 0.9
        assert abs(np.corrcoef(one[group].draws, other[group].draws)[0, 1]) < 0.5
    # a generated set without group "a": the real draws of "b" stay those of the other calls
    only_b = subgroup_frechet_distances(real, first[24:], real_groups, ["b"] * 24, real_size=8, fake_size=24, seed=3)
    assert list(only_b) == ["b"] and only_b["b"].draws == one["b"].draws


def test_subgroup_frechet_distances_refuse_what_they_cannot_measure() -> None:
    real, fake = _features(10, 8, 0), _features(10, 8, 1)
    groups = ["a"] * 5 + ["b"] * 5
    with pytest.raises(ValueError, match="group labels"):
        subgroup_frechet_distances(real, fake, groups[:-1], groups)
    with pytest.raises(ValueError, match="two or more images in both"):
        subgroup_frechet_distances(real, fake, ["a"] * 10, ["b"] * 10)
    with pytest.raises(ValueError, match=r"real_size must lie in \[2, 5\]"):
        subgroup_frechet_distances(real, fake, groups, groups, real_size=6)
    with pytest.raises(ValueError, match="num_draws"):
        subgroup_frechet_distances(real, fake, groups, groups, num_draws=0)


@pytest.mark.slow
@pytest.mark.skipif(not default_inception_weights_path().is_file(), reason="FID Inception weights not installed")
def test_fid_with_inception_grows_with_noise() -> None:
    extractor = InceptionV3FeatureExtractor()
    images = _smooth_images(64, 32, seed=0)
    real = extract_features(extractor, images)
    assert abs(frechet_distance(real, real)) < 1e-3
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    values = [
        frechet_distance(real, extract_features(extractor, (images + std * noise).clamp(0, 1)))
        for std in (0.02, 0.1, 0.3)
    ]
    assert 0 < values[0] < values[1] < values[2]


def test_kid_identical_and_shifted() -> None:
    real = _features(400, 32, 0)
    same = kernel_inception_distance(real, real, num_subsets=20, subset_size=200)
    independent = kernel_inception_distance(real, _features(400, 32, 1), num_subsets=20, subset_size=200)
    shifted = kernel_inception_distance(real, _features(400, 32, 1) + 0.5, num_subsets=20, subset_size=200)
    # unbiased: ~0 up to the 2 (k(x, x) - k(x, y)) / n effect of shared samples, far below a real shift
    assert abs(same.mean) < 0.05 and abs(independent.mean) < 0.05
    assert shifted.mean > 0.5 and shifted.mean > 10 * shifted.std
    again = kernel_inception_distance(real, _features(400, 32, 1) + 0.5, num_subsets=20, subset_size=200)
    assert again == shifted  # seeded


def test_precision_recall_constructed_sets() -> None:
    real = _features(200, 8, 0)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # half of the fake set is the real set, half is far away: precision 0.5
    half = torch.cat([real[:100], real[:100] + 100.0])
    precision, recall = precision_recall(real, half, k=3, batch_size=64)
    assert precision == pytest.approx(0.5)
    assert 0.0 < recall < 1.0
    # a fake set collapsed onto a few real points keeps precision but loses recall
    collapsed = real[:5].repeat(40, 1)
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.1
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(real[:3], real[:3], k=3)


def test_ms_ssim_diversity() -> None:
    distinct = _smooth_images(12, 32, seed=0)
    noise = 0.01 * torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    copies = (distinct[:1] + noise).clamp(0, 1)
    diverse = ms_ssim_diversity(distinct, num_pairs=30)
    collapsed = ms_ssim_diversity(copies, num_pairs=30)
    assert diverse.overall < 0.5 < 0.95 < collapsed.overall <= 1.0
    assert diverse.per_class == {}
    mixed = ms_ssim_diversity(torch.cat([distinct, copies]), labels=[0] * 12 + [1] * 12, num_pairs=30)
    assert mixed.per_class[0] == pytest.approx(diverse.overall, abs=1e-5)
    assert mixed.per_class[1] == pytest.approx(collapsed.overall, abs=0.01)  # other random pairs
    assert mixed.overall == pytest.approx((mixed.per_class[0] + mixed.per_class[1]) / 2)
    with pytest.raises(ValueError, match="at least 176 px"):
        ms_ssim_diversity(distinct, kernel_size=11, weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333))
