"""Tests for percentile normalisation and rescaling between pixel sizes."""

import numpy as np
import pytest

from evseg.data.normalize import normalize_image, percentile_normalize
from evseg.data.rescale import rescale_image, resize_labels


def test_percentile_normalize_maps_percentiles_to_0_and_1(rng):
    image = rng.normal(1000, 50, size=(64, 64)).astype(np.uint16)
    out = percentile_normalize(image, low=1, high=99)
    lo, hi = np.percentile(image, [1, 99])
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.percentile(out, [1, 99]), [0, 1], atol=1e-3)
    np.testing.assert_allclose(out, (image - lo) / (hi - lo + 1e-6), rtol=1e-5, atol=1e-5)


def test_constant_image_gives_zeros_not_nan():
    out = percentile_normalize(np.full((8, 8), 7.0))
    assert np.all(out == 0)


def test_nan_image_is_rejected():
    image = np.zeros((8, 8))
    image[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalize_image(image, {"method": "percentile"})


def test_rescale_changes_size_and_keeps_mean(rng):
    image = rng.random((100, 60)).astype(np.float32)
    half = rescale_image(image, 0.5)
    assert half.shape == (50, 30)
    assert abs(float(half.mean()) - float(image.mean())) < 0.01
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 2:5] = 3
    big = resize_labels(labels, (20, 20))
    assert set(np.unique(big)) == {0, 3}
    assert np.count_nonzero(big == 3) == 36
