"""Tests for instances from a foreground + boundary probability pair."""

import numpy as np
import pytest
from skimage.draw import disk
from skimage.segmentation import find_boundaries

from evseg.evaluate import match_instances
from evseg.instances.boundary import boundary_seeded_watershed


def _two_touching_discs():
    labels = np.zeros((80, 120), np.int32)
    for k, centre in enumerate(((40, 40), (40, 76)), start=1):
        rr, cc = disk(centre, 20, shape=labels.shape)
        labels[rr, cc] = k
    boundary = find_boundaries(labels, mode="inner").astype(np.float32)
    foreground = (labels > 0).astype(np.float32)
    return labels, foreground, boundary


def test_touching_objects_are_separated_by_the_boundary():
    labels, foreground, boundary = _two_touching_discs()
    result = boundary_seeded_watershed(foreground, boundary)
    match = match_instances(labels, result, iou_threshold=0.8)
    assert match.tp == 2 and match.fp == 0


def test_uncertain_interior_inside_a_predicted_rim_counts_whole():
    labels, foreground, boundary = _two_touching_discs()
    foreground[(labels == 1)] = 0.3  # the network is unsure inside vesicle 1
    foreground[find_boundaries(labels, mode="inner") & (labels == 1)] = 0.9
    foreground[35:45, 35:45] = 0.9  # but a core is found
    result = boundary_seeded_watershed(foreground, boundary)
    match = match_instances(labels, result, iou_threshold=0.8)
    assert match.tp == 2


def test_small_seeds_are_ignored():
    labels, foreground, boundary = _two_touching_discs()
    boundary[30, 30:50] = 1.0  # a spurious internal line cuts a small piece off vesicle 1
    boundary[20:31, 40] = 1.0
    result = boundary_seeded_watershed(foreground, boundary, min_seed_area_px=200)
    assert result.max() == 2


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        boundary_seeded_watershed(np.zeros((4, 4)), np.zeros((4, 5)))


def _global_watershed_reference(foreground, boundary, threshold, boundary_threshold, min_seed_area_px):
    """The definition, computed the slow way: one watershed over the whole image, then seedless components."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    inside = foreground > threshold
    mask = ndi.binary_fill_holes(inside | (boundary >= boundary_threshold))
    seeds, n = ndi.label(inside & (boundary < boundary_threshold))
    sizes = np.bincount(seeds.ravel(), minlength=n + 1)
    small = sizes < min_seed_area_px
    small[0] = False
    seeds[small[seeds]] = 0
    labels = watershed(boundary, markers=seeds, mask=mask)
    orphans, _ = ndi.label(mask & (labels == 0))
    labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    return labels


def test_component_wise_watershed_gives_the_same_partition_as_one_global_watershed():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    for _ in range(10):
        foreground = ndi.gaussian_filter(rng.random((120, 130)), 3)
        boundary = ndi.gaussian_filter(rng.random((120, 130)), 2)
        foreground = (foreground - foreground.min()) / np.ptp(foreground)
        boundary = (boundary - boundary.min()) / np.ptp(boundary)
        result = boundary_seeded_watershed(foreground, boundary, threshold=0.5, boundary_threshold=0.5,
                                           min_seed_area_px=6)
        expected = _global_watershed_reference(foreground, boundary, 0.5, 0.5, 6)
        assert np.array_equal(result > 0, expected > 0)
        pairs = np.unique(np.stack([result.ravel(), expected.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(result)) == len(np.unique(expected))  # a one-to-one relabelling
