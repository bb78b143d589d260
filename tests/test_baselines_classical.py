"""Tests for the classical (no learning) baseline, evseg.baselines.classical."""

from __future__ import annotations

import numpy as np
import pytest

from evseg.baselines import segment_classical
from evseg.data.synthetic import synthetic_tem_image


def _n_matched(truth: np.ndarray, pred: np.ndarray, iou_min: float = 0.5) -> int:
    """Number of true objects with a predicted object of IoU >= iou_min (unique above 0.5)."""
    found = 0
    for k in range(1, int(truth.max()) + 1):
        t = truth == k
        ids, counts = np.unique(pred[t], return_counts=True)
        for i, inter in zip(ids, counts, strict=True):
            if i and inter / (t.sum() + (pred == i).sum() - inter) >= iou_min:
                found += 1
                break
    return found


def _discs(
    rng: np.random.Generator, centres_radii: list[tuple[float, float, float]], shape=(256, 256)
) -> tuple[np.ndarray, np.ndarray]:
    """Dark discs (0.3) on a bright (0.7), unevenly lit, noisy background, and their labels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rho = np.stack([np.hypot(yy - cy, xx - cx) / r for cy, cx, r in centres_radii])
    truth = np.where(rho.min(0) < 1, rho.argmin(0) + 1, 0).astype(np.int32)  # overlap: nearest
    image = np.where(truth > 0, 0.3, 0.7) + 0.1 * xx / shape[1]
    return (image + rng.normal(0, 0.05, shape)).astype(np.float32), truth


SEPARATE = [(40, 40, 12), (40, 130, 18), (50, 210, 10), (130, 60, 22), (125, 150, 15),
            (135, 215, 14), (210, 40, 16), (205, 125, 11), (200, 205, 20)]


@pytest.mark.parametrize("method", ["edges", "threshold"])
@pytest.mark.parametrize("invert", [False, True])
def test_finds_well_separated_discs_of_either_polarity(rng, method: str, invert: bool) -> None:
    image, truth = _discs(rng, SEPARATE)
    if invert:
        image = 1.0 - image
    labels = segment_classical(image, min_diameter_px=12, max_diameter_px=80, method=method)
    assert labels.dtype == np.int32 and labels.shape == image.shape
    assert _n_matched(truth, labels) >= 0.8 * len(SEPARATE)
    assert labels.max() <= len(SEPARATE) + 1  # no flood of false objects


def test_edges_method_does_not_depend_on_polarity(rng) -> None:
    image, _ = _discs(rng, SEPARATE)
    a = segment_classical(image, min_diameter_px=12, max_diameter_px=80)
    b = segment_classical(1.0 - image, min_diameter_px=12, max_diameter_px=80)
    np.testing.assert_array_equal(a, b)


def test_touching_discs_are_split(rng) -> None:
    # two discs of radius 20 px whose centres are 34 px apart (overlap 15 % of the radius each)
    image, truth = _discs(rng, [(64, 47, 20), (64, 81, 20)], shape=(128, 128))
    labels = segment_classical(image, min_diameter_px=15, max_diameter_px=80)
    assert labels.max() == 2
    assert _n_matched(truth, labels) == 2


def test_size_limits_in_nm_use_the_pixel_size(rng) -> None:
    # 2 nm/px: an 8 px disc is 16 nm (below 30 nm), a 30 px disc is 60 nm, a 90 px disc 180 nm
    image, truth = _discs(rng, [(40, 40, 4), (40, 120, 15), (150, 100, 45)], shape=(220, 220))
    labels = segment_classical(image, pixel_size_nm=2.0, min_diameter_nm=30, max_diameter_nm=120)
    assert labels.max() == 1
    assert _n_matched(truth == 2, labels) == 1
    labels_px = segment_classical(image, min_diameter_px=6, max_diameter_px=100)
    assert _n_matched(truth, labels_px) == 3


@pytest.mark.parametrize("value", [0.0, 0.37, 200])
def test_constant_image_gives_no_objects(value: float) -> None:
    labels = segment_classical(np.full((64, 80), value), pixel_size_nm=1.56)
    assert labels.dtype == np.int32 and labels.shape == (64, 80) and labels.max() == 0


def test_accepts_integer_images(rng) -> None:
    image, truth = _discs(rng, SEPARATE)
    as_uint8 = np.clip(image * 255, 0, 255).astype(np.uint8)
    labels = segment_classical(as_uint8, min_diameter_px=12, max_diameter_px=80)
    assert _n_matched(truth, labels) >= 0.8 * len(SEPARATE)


def test_finds_most_synthetic_vesicles() -> None:
    n_true = n_found = 0
    for seed in (11, 12, 13):
        sample = synthetic_tem_image((384, 384), n_vesicles=8, cluster_probability=0.0, rng=seed)
        labels = segment_classical(sample.image, pixel_size_nm=sample.pixel_size_nm)
        n_true += int(sample.labels.max())
        n_found += _n_matched(sample.labels, labels)
    assert n_true >= 20
    assert n_found >= 0.5 * n_true  # a baseline: about 60-80 % on these images


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "edge"}, "Did you mean 'edges'"),
        ({"polarity": "darker"}, "polarity"),
        ({"threshold": "otsu2"}, "threshold"),
        ({"min_diameter_px": 50, "max_diameter_px": 20}, "min_diameter_px"),
        ({"pixel_size_nm": 1.0, "min_diameter_nm": -3}, "min_diameter_nm"),
        ({"pixel_size_nm": 0.0}, "pixel_size_nm"),
    ],
)
def test_bad_parameters_raise_and_name_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        segment_classical(np.zeros((32, 32)), **kwargs)


def test_rejects_3d_images() -> None:
    with pytest.raises(ValueError, match="2 dimensions"):
        segment_classical(np.zeros((4, 32, 32)))
