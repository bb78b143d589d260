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
