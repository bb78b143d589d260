"""Tests for the synthetic TEM sEV generator (evseg.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from evseg.data.synthetic import (
    SyntheticImage,
    _rasterise,
    _Vesicles,
    synthetic_tem_dataset,
    synthetic_tem_image,
)


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different labels that are 4-neighbours somewhere."""
    pairs = set()
    for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
        m = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[m].tolist(), b[m].tolist(), strict=True)}
    return pairs


def _border_labels(labels: np.ndarray) -> set[int]:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return set(np.unique(edge).tolist()) - {0}


def test_same_seed_same_image_other_seed_other_image() -> None:
    a = synthetic_tem_image((96, 128), rng=3)
    b = synthetic_tem_image((96, 128), rng=3)
    c = synthetic_tem_image((96, 128), rng=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_types_shapes_and_ranges() -> None:
    s = synthetic_tem_image((96, 128), pixel_size_nm=2.0, n_vesicles=4, rng=0)
    assert isinstance(s, SyntheticImage)
    assert s.image.shape == s.labels.shape == (96, 128)
    assert s.image.dtype == np.float32 and s.labels.dtype == np.int32
    assert s.pixel_size_nm == 2.0
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0
    ids = np.unique(s.labels)
    np.testing.assert_array_equal(ids, np.arange(len(ids)))  # 0, 1..n consecutive
    assert 1 <= ids.max() <= 4


@pytest.mark.parametrize("cluster_probability", [0.0, 1.0])
def test_every_label_is_one_connected_blob(cluster_probability: float) -> None:
    s = synthetic_tem_image((256, 256), cluster_probability=cluster_probability, rng=1)
    assert s.labels.max() >= 3
    for k, sl in enumerate(ndi.find_objects(s.labels), start=1):
        _, n_pieces = ndi.label(s.labels[sl] == k)
        assert n_pieces == 1, f"label {k} has {n_pieces} pieces"


def test_sizes_within_requested_range_in_pixels() -> None:
    lo_nm, hi_nm, px = 40.0, 90.0, 2.0
    found = []
    for seed in range(3):
        s = synthetic_tem_image(
            (256, 256), pixel_size_nm=px, diameter_range_nm=(lo_nm, hi_nm),
            n_vesicles=8, cluster_probability=0.0, rng=seed,
        )
        inner = set(range(1, s.labels.max() + 1)) - _border_labels(s.labels)
        areas = np.bincount(s.labels.ravel())
        found += [2 * np.sqrt(areas[k] / np.pi) for k in inner]
    d = np.array(found)
    assert len(d) >= 10
    # equivalent diameter in px; 1.5 px of rasterisation slack
    assert d.min() >= lo_nm / px - 1.5 and d.max() <= hi_nm / px + 1.5


def test_default_sizes_weighted_to_50_120_nm() -> None:
    d_nm = []
    for s in synthetic_tem_dataset(3, shape=(384, 384), rng=5, cluster_probability=0.0):
        inner = set(range(1, s.labels.max() + 1)) - _border_labels(s.labels)
        areas = np.bincount(s.labels.ravel())
        d_nm += [2 * np.sqrt(areas[k] / np.pi) * s.pixel_size_nm for k in inner]
    d_nm = np.array(d_nm)
    assert len(d_nm) >= 10
    assert 50 <= np.median(d_nm) <= 120
    assert d_nm.min() >= 30 - 2 * 1.56 and d_nm.max() <= 200 + 2 * 1.56


def test_clusters_touch_and_isolated_vesicles_do_not() -> None:
    touching = synthetic_tem_image((256, 256), cluster_probability=1.0, rng=2)
    apart = synthetic_tem_image((256, 256), cluster_probability=0.0, rng=2)
    assert len(_touching_pairs(touching.labels)) >= 1
    assert apart.labels.max() >= 3 and _touching_pairs(apart.labels) == set()


def test_overlap_is_split_along_the_chord_of_equal_discs() -> None:
    # Two circles of radius 10 px whose centres are 16 px apart (overlap 4 px): the split
    # must be the perpendicular bisector x = 26, and the union must equal the two discs.
    ves = _Vesicles(
        cy=np.array([20.0, 20.0]), cx=np.array([18.0, 34.0]), radius=np.array([10.0, 10.0]),
        aspect=np.ones(2), angle=np.zeros(2), wobble=np.zeros((2, 3)), phase=np.zeros((2, 3)),
    )
    labels = _rasterise((40, 52), ves)
    yy, xx = np.mgrid[:40, :52]
    in1 = np.hypot(yy - 20, xx - 18) < 10
    in2 = np.hypot(yy - 20, xx - 34) < 10
    np.testing.assert_array_equal(labels > 0, in1 | in2)
    assert (xx[labels == 1] <= 26).all() and (xx[labels == 2] >= 26).all()
    assert abs((labels == 1).sum() - (labels == 2).sum()) <= 40  # the x = 26 column goes to one


def test_dark_polarity_vesicles_darker_on_average() -> None:
    diffs = []
    for s in synthetic_tem_dataset(4, shape=(256, 256), rng=8, polarity="dark"):
        fg = s.labels > 0
        assert fg.any()
        diffs.append(s.image[fg].mean() - s.image[~fg].mean())
    assert np.mean(diffs) < -0.02


def test_bright_polarity_is_the_inverse_of_dark() -> None:
    dark = synthetic_tem_image((128, 128), polarity="dark", n_vesicles=3, rng=8)
    bright = synthetic_tem_image((128, 128), polarity="bright", n_vesicles=3, rng=8)
    assert dark.labels.max() >= 1
    np.testing.assert_array_equal(bright.labels, dark.labels)
    np.testing.assert_allclose(bright.image, 1.0 - dark.image, atol=1e-6)


def test_random_polarity_gives_both() -> None:
    signs = set()
    for s in synthetic_tem_dataset(8, shape=(96, 96), rng=0, polarity="random", n_vesicles=2):
        fg = s.labels > 0
        if fg.any():
            signs.add(bool(s.image[fg].mean() < s.image[~fg].mean()))
    assert signs == {True, False}


def test_dataset_children_do_not_depend_on_length() -> None:
    short = synthetic_tem_dataset(2, shape=(64, 64), rng=7)
    long = synthetic_tem_dataset(3, shape=(64, 64), rng=7)
    assert len(short) == 2 and len(long) == 3
    for a, b in zip(short, long[:2], strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(long[0].image, long[1].image)
    assert synthetic_tem_dataset(0, shape=(64, 64), rng=7) == []


def test_no_vesicles_gives_empty_labels() -> None:
    s = synthetic_tem_image((64, 64), n_vesicles=0, rng=0)
    assert s.labels.max() == 0 and np.isfinite(s.image).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"polarity": "drak"}, "Did you mean 'dark'"),
        ({"diameter_range_nm": (100, 50)}, "diameter_range_nm"),
        ({"shape": (8, 64)}, "shape"),
        ({"pixel_size_nm": -1.0}, "pixel_size_nm"),
        ({"cluster_probability": 1.5}, "cluster_probability"),
        ({"n_vesicles": -2}, "n_vesicles"),
        ({"dose_e_per_px": 0.0}, "dose_e_per_px"),
    ],
)
def test_bad_parameters_raise_and_name_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_tem_image(**{"shape": (64, 64), **kwargs})


def test_scale_bar_annotation_is_burned_in_as_background():
    from evseg.data.synthetic import synthetic_tem_image

    plain = synthetic_tem_image((256, 256), n_vesicles=30, rng=4)
    annotated = synthetic_tem_image((256, 256), n_vesicles=30, rng=4, annotation_prob=1.0)
    changed = annotated.image != plain.image
    assert 50 < changed.sum() < 0.2 * changed.size  # a bar and a caption, in a corner
    assert not (annotated.labels[changed] > 0).any()  # annotation pixels are background
    assert np.array_equal(annotated.labels[~changed], plain.labels[~changed])
    assert np.isin(annotated.image[changed], (0.0, 1.0)).sum() > 30  # the bar: crisp black or white
    with pytest.raises(ValueError, match="annotation_prob"):
        synthetic_tem_image((64, 64), annotation_prob=1.5)
