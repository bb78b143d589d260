"""Tests for evseg.instances.components: holes, components, size/border filters, outline hulls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from evseg.instances import (
    check_mask,
    convex_hull_outlines,
    equivalent_diameters,
    fill_enclosed_holes,
    fill_small_holes,
    label_components,
    polygon_area,
    relabel_sequential,
    remove_border_objects,
    remove_small_objects_by_diameter,
)


def test_fill_small_holes_fills_up_to_the_limit_only() -> None:
    mask = np.zeros((20, 30), bool)
    mask[2:12, 2:12] = True
    mask[5:7, 5:7] = False  # 4 px hole
    mask[2:12, 15:28] = True
    mask[4:7, 18:21] = False  # 9 px hole
    out = fill_small_holes(mask, max_hole_area_px=4)
    assert out[5:7, 5:7].all()
    assert not out[4:7, 18:21].any()
    expected = mask.copy()
    expected[5:7, 5:7] = expected[4:7, 18:21] = True
    assert (fill_small_holes(mask, max_hole_area_px=9) == expected).all()
    assert (fill_small_holes(mask, max_hole_area_px=3) == mask).all()
    assert not mask[5, 5]  # the input is not modified


def test_fill_small_holes_leaves_background_at_the_border() -> None:
    mask = np.ones((10, 10), bool)
    mask[0, 0] = False  # a 1 px background region in the corner is not a hole
    mask[4, 4] = False
    out = fill_small_holes(mask, max_hole_area_px=100)
    assert not out[0, 0] and out[4, 4]


def test_fill_small_holes_3d_cavity() -> None:
    mask = np.zeros((7, 7, 7), bool)
    mask[1:6, 1:6, 1:6] = True
    mask[3, 3, 3] = False
    assert fill_small_holes(mask, max_hole_area_px=1)[3, 3, 3]
    assert not fill_small_holes(mask, max_hole_area_px=0)[3, 3, 3]


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_fill_small_holes_rejects_bad_limit(bad: float) -> None:
    with pytest.raises(ValueError, match="max_hole_area_px"):
        fill_small_holes(np.zeros((4, 4), bool), max_hole_area_px=bad)


def test_label_components_connectivity_and_dtype() -> None:
    mask = np.eye(4, dtype=bool)
    four = label_components(mask)
    assert four.dtype == np.int32 and four.max() == 4
    assert label_components(mask, connectivity=2).max() == 1
    vol = np.zeros((3, 4, 4), bool)
    vol[0, 0, 0] = vol[1, 1, 1] = True
    vol[2, 3, 2:4] = True
    assert label_components(vol).max() == 3
    assert label_components(vol, connectivity=3).max() == 2
    with pytest.raises(ValueError, match="connectivity"):
        label_components(mask, connectivity=3)


def test_check_mask_accepts_zero_one_ints_and_rejects_floats() -> None:
    assert check_mask(np.array([[0, 1]], np.uint8)).dtype == bool
    with pytest.raises(TypeError, match="probability > 0.5"):
        check_mask(np.array([[0.2, 0.9]]))
    with pytest.raises(TypeError, match="mask"):
        check_mask(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="dimensions"):
        check_mask(np.zeros(5, bool))


def test_equivalent_diameters_2d_and_3d() -> None:
    lab = np.zeros((10, 10), np.int32)
    lab[0:3, 0:3] = 1
    lab[5:10, 5:10] = 3
    d = equivalent_diameters(lab)
    assert d.shape == (4,)
    np.testing.assert_allclose(d[[1, 2, 3]], [np.sqrt(36 / np.pi), 0.0, np.sqrt(100 / np.pi)])
    vol = np.zeros((4, 4, 4), np.int32)
    vol[:2, :2, :2] = 1
    np.testing.assert_allclose(equivalent_diameters(vol)[1], np.cbrt(48 / np.pi))


def test_remove_small_objects_by_diameter_keeps_labels() -> None:
    lab = np.zeros((60, 60), np.int32)
    radii = {2: 3.0, 5: 6.0, 9: 10.0}
    for k, (label, r) in enumerate(radii.items()):
        lab[disk((10 + 20 * k, 30), r)] = label
    areas = np.bincount(lab.ravel())
    cutoff = 0.5 * (np.sqrt(4 * areas[5] / np.pi) + np.sqrt(4 * areas[9] / np.pi))
    out = remove_small_objects_by_diameter(lab, min_diameter_px=cutoff)
    assert out.dtype == np.int32
    assert sorted(np.unique(out)) == [0, 9]
    assert (out[lab == 9] == 9).all()
    exact = remove_small_objects_by_diameter(lab, min_diameter_px=np.sqrt(4 * areas[5] / np.pi))
    assert sorted(np.unique(exact)) == [0, 5, 9]  # "below" is strict
    assert (remove_small_objects_by_diameter(lab, min_diameter_px=0) == lab).all()
    with pytest.raises(ValueError, match="min_diameter_px"):
        remove_small_objects_by_diameter(lab, min_diameter_px=-1)
    with pytest.raises(TypeError, match="boolean mask"):
        remove_small_objects_by_diameter(lab > 0, min_diameter_px=1)


def test_remove_border_objects_and_relabel() -> None:
    lab = np.zeros((10, 10), np.int32)
    lab[0:2, 0:2] = 4
    lab[4:6, 4:6] = 7
    lab[8:9, 3:5] = 9  # one pixel from the border
    assert sorted(np.unique(remove_border_objects(lab))) == [0, 7, 9]
    assert sorted(np.unique(remove_border_objects(lab, buffer_px=1))) == [0, 7]
    seq = relabel_sequential(lab)
    assert seq.dtype == np.int32
    assert sorted(np.unique(seq)) == [0, 1, 2, 3]
    assert (seq[lab == 7] == 2).all()


def test_convex_hull_outlines_rectangle_and_missing_labels() -> None:
    lab = np.zeros((12, 20), np.int32)
    lab[2:6, 3:13] = 3  # 4 x 10 rectangle
    hulls = convex_hull_outlines(lab)
    assert len(hulls) == 3 and hulls[0] is None and hulls[1] is None
    hull = hulls[2]
    # outline through the pixel edge midpoints: the 4 x 10 rectangle with corners cut by 0.5 px legs
    assert polygon_area(hull) == pytest.approx(4 * 10 - 4 * 0.125)
    assert hull[:, 0].min() == 1.5 and hull[:, 0].max() == 5.5
    assert hull[:, 1].min() == 2.5 and hull[:, 1].max() == 12.5


def test_convex_hull_outlines_touching_labels_are_separate() -> None:
    lab = np.zeros((6, 10), np.int32)
    lab[1:5, 1:5] = 1
    lab[1:5, 5:9] = 2  # touches label 1 along a whole side
    h1, h2 = convex_hull_outlines(lab)
    assert h1[:, 1].max() == 4.5 and h2[:, 1].min() == 4.5
    assert polygon_area(h1) == pytest.approx(16 - 0.5)


def test_boundary_pixels_in_strips_equal_one_pass():
    from scipy import ndimage as ndi

    from evseg.instances.components import _boundary_pixels

    labels = ndi.label(np.random.default_rng(0).random((300, 200)) > 0.6)[0].astype(np.int32)
    cross = ndi.generate_binary_structure(2, 1)
    low = ndi.grey_erosion(labels, footprint=cross, mode="constant", cval=0)
    high = ndi.grey_dilation(labels, footprint=cross, mode="constant", cval=0)
    expected = set(zip(*np.nonzero((labels > 0) & ((low != labels) | (high != labels))), strict=True))
    assert set(zip(*_boundary_pixels(labels, strip_rows=37), strict=True)) == expected


def test_fill_enclosed_holes_equals_scipy_binary_fill_holes():
    rng = np.random.default_rng(4)
    for shape in [(40, 50), (9, 12, 14)]:
        for density in (0.3, 0.5, 0.7):
            mask = rng.random(shape) < density
            np.testing.assert_array_equal(fill_enclosed_holes(mask), ndi.binary_fill_holes(mask))
    ring = np.zeros((7, 7), bool)
    ring[1, 3] = ring[2, 2] = ring[2, 4] = ring[3, 1] = ring[3, 5] = ring[4, 2] = ring[4, 4] = ring[5, 3] = True
    assert fill_enclosed_holes(ring)[3, 3]  # a diagonal (8-connected) ring encloses its inside
    assert not fill_enclosed_holes(np.zeros((3, 3), bool)).any()


def test_fill_small_holes_accepts_inf():
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    assert fill_small_holes(ring, max_hole_area_px=np.inf).all()
    with pytest.raises(ValueError, match="or inf"):
        fill_small_holes(ring, max_hole_area_px=np.nan)


def test_relabel_sequential_with_gaps_and_huge_ids():
    labels = np.array([[0, 9, 9], [4, 0, 2]])
    np.testing.assert_array_equal(relabel_sequential(labels), [[0, 3, 3], [2, 0, 1]])
    sparse = np.array([[0, 2**30], [5, 5]], dtype=np.int64)
    np.testing.assert_array_equal(relabel_sequential(sparse), [[0, 2], [1, 1]])
