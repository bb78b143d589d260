"""Tests for evseg.instances.watershed: distance-transform marker watershed (2D and 3D)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from evseg.instances import split_watershed


def _two_discs(radius: float = 20.0, gap: float = 36.0) -> tuple[np.ndarray, tuple, tuple]:
    mask = np.zeros((2 * int(radius) + 10, 2 * int(radius) + int(gap) + 10), bool)
    c0 = (radius + 5, radius + 5)
    c1 = (radius + 5, radius + 5 + gap)
    for c in (c0, c1):
        mask[disk(c, radius)] = True
    return mask, tuple(int(v) for v in c0), tuple(int(v) for v in c1)


def test_two_touching_discs_are_split_at_the_neck() -> None:
    mask, c0, c1 = _two_discs()
    out = split_watershed(mask)
    assert out.dtype == np.int32 and out.max() == 2
    assert out[c0] != out[c1]
    assert ((out > 0) == mask).all()
    # the boundary is the neck, halfway between the two centres
    left, right = np.argwhere(out == out[c0])[:, 1], np.argwhere(out == out[c1])[:, 1]
    mid = (c0[1] + c1[1]) / 2
    assert left.max() <= mid + 1 and right.min() >= mid - 1


def test_large_h_keeps_objects_whole() -> None:
    mask, _, _ = _two_discs()
    neck_dynamic = 20 - np.sqrt(20**2 - 18**2)  # r - half-width of the neck
    assert split_watershed(mask, h_px=neck_dynamic + 2).max() == 1
    assert split_watershed(mask, h_px=neck_dynamic - 2).max() == 2


def test_ellipses_are_not_over_split() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        a = rng.uniform(10, 60)
        b = a / rng.uniform(1.0, 1.5)
        size = int(2 * a + 12)
        mask = np.zeros((size, size), bool)
        mask[ellipse(size / 2, size / 2, a, b, rotation=rng.uniform(0, np.pi))] = True
        assert split_watershed(mask).max() == 1


def test_pieces_never_cross_input_labels() -> None:
    lab = np.zeros((40, 80), np.int32)
    lab[disk((20, 20), 15)] = 3
    lab[disk((20, 46), 15)] = 8  # touches label 3, but is a separate object already
    out = split_watershed(lab)
    assert out.max() == 2
    assert len(np.unique(out[lab == 3])) == 1 and len(np.unique(out[lab == 8])) == 1
    assert out[20, 20] != out[20, 46]


def test_3d_two_spheres() -> None:
    zz, yy, xx = np.mgrid[:30, :30, :56]
    mask = ((zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2 < 12**2) | (
        (zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 37) ** 2 < 12**2
    )
    out = split_watershed(mask)
    assert out.max() == 2 and out[15, 15, 15] != out[15, 15, 37]


def test_empty_input_and_bad_parameters() -> None:
    assert split_watershed(np.zeros((5, 5), np.int32)).max() == 0
    with pytest.raises(ValueError, match="h_px"):
        split_watershed(np.zeros((5, 5), bool), h_px=-1)
    with pytest.raises(ValueError, match="min_distance_px"):
        split_watershed(np.zeros((5, 5), bool), min_distance_px=1.5)
    with pytest.raises(TypeError, match="integer"):
        split_watershed(np.zeros((5, 5), np.float32))
