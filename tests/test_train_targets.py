"""Tests for evseg.train.targets: U-Net border weights (hand values, brute force) and boundary targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from evseg.train.targets import boundary_target, unet_border_weights


def _two_squares() -> np.ndarray:
    """Two 9 x 9 squares in a 41 x 53 image, 7 background columns apart (cols 23..29)."""
    lab = np.zeros((41, 53), np.int32)
    lab[16:25, 14:23] = 1
    lab[16:25, 30:39] = 2
    return lab


def _brute_force(labels: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """The formula with a full-image distance transform per object (no cropping)."""
    ids = [k for k in np.unique(labels) if k]
    dist = np.sort(np.stack([ndi.distance_transform_edt(labels != k) for k in ids]), axis=0)
    fg = labels > 0
    f = fg.mean()
    w_c = np.where(fg, 0.5 / f, 0.5 / (1 - f))
    return w_c + np.where(fg, 0.0, w0 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * sigma**2)))


def test_border_weight_at_hand_computed_pixels():
    lab = _two_squares()
    w = unet_border_weights(lab, w0=10.0, sigma_px=5.0)
    f = 2 * 81 / lab.size
    w_bg, w_fg = 0.5 / (1 - f), 0.5 / f
    # (20, 26): 4 px from both squares -> d1 = d2 = 4
    assert w[20, 26] == pytest.approx(w_bg + 10.0 * math.exp(-(8.0**2) / (2 * 25.0)), rel=1e-5)
    # (20, 2): d1 = 12 (square 1), d2 = 28 (square 2): border term ~1e-13
    assert w[20, 2] == pytest.approx(w_bg, rel=1e-5)
    # (10, 18): straight above square 1 (d1 = 6), d2 = dist to (16, 30) = sqrt(36 + 144)
    d2 = math.hypot(6, 12)
    assert w[10, 18] == pytest.approx(w_bg + 10.0 * math.exp(-((6 + d2) ** 2) / 50.0), rel=1e-5)
    np.testing.assert_allclose(w[lab > 0], w_fg, rtol=1e-6)  # objects: class weight only
    assert w.dtype == np.float32 and w.shape == lab.shape


def test_border_weights_are_largest_in_the_gap_between_close_discs():
    lab = np.zeros((64, 96), np.int32)
    lab[disk((32, 30), 10)] = 1
    lab[disk((32, 54), 10)] = 2  # 3-pixel gap around column 42
    w = unet_border_weights(lab, w0=10.0, sigma_px=5.0, class_balance=False)
    gap, above_gap, far = w[32, 42], w[18, 42], w[32, 10]  # d1 + d2: 3, ~17, ~45 pixels
    assert gap > 5.0 and gap > above_gap > far + 0.01
    assert far == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(w[lab > 0], 1.0)


@pytest.mark.parametrize("shape", [(64, 64), (12, 24, 24)])
def test_border_weights_match_brute_force(shape):
    rng = np.random.default_rng(0)
    lab = np.zeros(shape, np.int32)
    for k in range(1, 9):
        centre = tuple(int(rng.integers(0, s)) for s in shape)
        ball = sum((g - c) ** 2 for g, c in zip(np.indices(shape), centre, strict=True)) <= int(rng.integers(2, 5)) ** 2
        lab[ball] = k
    w = unet_border_weights(lab, w0=10.0, sigma_px=3.0)
    np.testing.assert_allclose(w, _brute_force(lab, 10.0, 3.0), atol=1e-4)


def test_border_weights_without_objects_or_border_term():
    np.testing.assert_array_equal(unet_border_weights(np.zeros((8, 8), np.uint16)), 1.0)
    lab = _two_squares()
    w = unet_border_weights(lab, w0=0.0, class_balance=False)
    np.testing.assert_array_equal(w, 1.0)
    one = np.zeros((20, 20), np.int32)
    one[5:9, 5:9] = 3  # a single object: no second-nearest object, no border term
    w = unet_border_weights(one, class_balance=False)
    np.testing.assert_array_equal(w, 1.0)


def test_border_weights_reject_bad_input():
    with pytest.raises(TypeError, match="boolean"):
        unet_border_weights(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="sigma_px"):
        unet_border_weights(np.ones((4, 4), np.int32), sigma_px=0.0)
    with pytest.raises(ValueError, match="w0"):
        unet_border_weights(np.ones((4, 4), np.int32), w0=-1.0)


def test_boundary_target_classes_for_touching_objects():
    row = [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0]
    lab = np.array([row] * 4, np.int32)  # full-height stripes: the image edge is no boundary
    expected_1 = [0, 2, 1, 1, 2, 2, 1, 1, 1, 2, 0, 0]
    expected_2 = [0, 2, 2, 2, 2, 2, 2, 1, 2, 2, 0, 0]
    np.testing.assert_array_equal(boundary_target(lab, width_px=1), [expected_1] * 4)
    target = boundary_target(lab, width_px=2)
    np.testing.assert_array_equal(target, [expected_2] * 4)
    assert target.dtype == np.uint8


def test_boundary_target_rim_and_union_is_foreground():
    lab = np.zeros((20, 20, 20), np.int32)
    lab[4:15, 4:15, 4:15] = 7
    target = boundary_target(lab, width_px=2)
    np.testing.assert_array_equal(target > 0, lab > 0)
    np.testing.assert_array_equal(np.unique(target[6:13, 6:13, 6:13]), [1])  # interior
    assert (target[4:6, 4:15, 4:15] == 2).all() and (target[7, 7, 4:6] == 2).all()
    with pytest.raises(ValueError, match="width_px"):
        boundary_target(lab, width_px=0)
