"""Tests for evseg.instances.radon: Radon-transform splitting of touching vesicles."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from evseg.instances import label_components, split_radon
from evseg.instances.radon import _valley_depth


def touching_discs(
    rng: np.random.Generator, n: int, *, r_range: tuple[float, float] = (15, 60),
    max_overlap: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """A cluster of ``n`` discs, each touching an earlier one; overlaps up to ``max_overlap``
    times the smaller radius (at least 1.5 px, so that the digital discs touch).

    Returns the ground-truth labels (overlaps go to the earlier disc) and the centres (n, 2).
    """
    radii = rng.uniform(*r_range, n)
    centres = [np.zeros(2)]
    for i in range(1, n):
        for _ in range(1000):
            j = int(rng.integers(i))
            overlap = max(1.5, rng.uniform(0, max_overlap) * min(radii[i], radii[j]))
            angle = rng.uniform(0, 2 * np.pi)
            c = centres[j] + (radii[i] + radii[j] - overlap) * np.array([np.sin(angle), np.cos(angle)])
            limits = radii[i] + radii[:i] - np.maximum(1.5, max_overlap * np.minimum(radii[i], radii[:i]))
            if (np.hypot(*(np.array(centres) - c).T) >= limits - 1e-9).all():
                break
        centres.append(c)
    centres_arr = np.array(centres)
    low = (centres_arr - radii[:, None]).min(axis=0) - 4
    centres_arr -= low
    shape = tuple(int(v) for v in np.ceil((centres_arr + radii[:, None]).max(axis=0) + 4))
    truth = np.zeros(shape, np.int32)
    for k, (c, r) in enumerate(zip(centres_arr, radii, strict=True), start=1):
        rr, cc = disk(c, r, shape=shape)
        free = truth[rr, cc] == 0
        truth[rr[free], cc[free]] = k
    return truth, centres_arr


def test_clusters_of_2_to_4_discs_get_the_right_count() -> None:
    rng = np.random.default_rng(2019)
    n_clusters, correct, ious = 60, 0, []
    for _ in range(n_clusters):
        n = int(rng.integers(2, 5))
        truth, centres = touching_discs(rng, n)
        labels = label_components(truth > 0)
        assert labels.max() == 1  # one touching cluster
        out = split_radon(labels)
        assert ((out > 0) == (labels > 0)).all()  # no pixel lost or added
        if len(np.unique(out)) - 1 == n:
            correct += 1
            for k, (cy, cx) in enumerate(np.rint(centres).astype(int), start=1):
                piece, disc = out == out[cy, cx], truth == k
                ious.append((piece & disc).sum() / (piece | disc).sum())
    assert correct / n_clusters >= 0.9
    assert np.median(ious) >= 0.9  # the boundaries follow the necks


def _random_ellipse(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(10, 60)
    b = a / rng.uniform(1.0, 1.5)
    size = int(2 * a + 12)
    lab = np.zeros((size, size), np.int32)
    centre = size / 2 + rng.uniform(-1, 1, 2)
    lab[ellipse(centre[0], centre[1], a, b, rotation=rng.uniform(0, np.pi))] = 1
    return lab


@pytest.mark.parametrize("solidity_threshold", [0.96, 1.5])  # 1.5: every object goes to Radon
def test_ellipses_up_to_axis_ratio_1_5_are_never_split(solidity_threshold: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(80):
        lab = _random_ellipse(rng)
        out = split_radon(lab, solidity_threshold=solidity_threshold)
        assert out.max() == 1


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 45.0, 90.0, 125.0, 160.0])
@pytest.mark.parametrize("radius", [12.0, 40.0])  # 40: the crop is block-averaged before Radon
def test_straight_cut_lands_between_the_centres(angle_deg: float, radius: float) -> None:
    direction = np.array([np.sin(np.radians(angle_deg)), np.cos(np.radians(angle_deg))])  # (y, x)
    distance = 1.8 * radius
    c0 = np.array([radius + 7.0, radius + 9.0]) + np.maximum(-direction, 0) * distance
    c1 = c0 + distance * direction
    shape = tuple(int(v) for v in np.ceil(np.maximum(c0, c1) + radius + 7))
    lab = np.zeros(shape, np.int32)
    for c in (c0, c1):
        lab[disk(c, radius, shape=shape)] = 1
    assert label_components(lab > 0).max() == 1
    out = split_radon(lab, refine=False)
    a, b = out[tuple(np.rint(c0).astype(int))], out[tuple(np.rint(c1).astype(int))]
    assert sorted(np.unique(out)) == [0, 1, 2] and {a, b} == {1, 2}
    # pixels of piece a with a 4-neighbour in piece b: the cut, halfway between the equal discs
    shifted = [np.roll(out, s, axis=ax) for ax in (0, 1) for s in (1, -1)]
    edge = (out == a) & np.any([s == b for s in shifted], axis=0)
    along = (np.argwhere(edge) - c0) @ direction
    assert edge.sum() > 0.5 * radius
    assert np.abs(along - distance / 2).max() <= 2.0


def test_other_objects_and_labels_are_kept() -> None:
    lab = np.zeros((90, 200), np.int32)
    lab[disk((45, 30), 20)] = 5  # a single disc
    lab[disk((45, 100), 22)] = 9  # two touching discs
    lab[disk((45, 138), 22)] = 9
    out = split_radon(lab)
    assert out.dtype == np.int32
    assert (out[lab == 5] == 5).all()
    assert sorted(np.unique(out[lab == 9])) == [9, 10]  # new labels above the input maximum
    assert out[45, 100] != out[45, 138]
    assert (split_radon(lab, max_depth=0) == lab).all()
    assert (split_radon(lab, min_valley_depth=0.99) == lab).all()


def test_valley_depth_is_relative_to_the_smaller_flanking_peak() -> None:
    profile = np.array([0.0, 4.0, 10.0, 4.0, 8.0, 0.0])[:, None]
    depth = _valley_depth(profile, min_side=0.0)
    np.testing.assert_allclose(depth[:, 0], [0, 0, 0, 1 - 4 / 8, 0, 0])
    concave = np.array([0.0, 3.0, 5.0, 6.0, 5.0, 2.0, 0.0])[:, None]
    assert (_valley_depth(concave, min_side=0.0) == 0).all()
    # a valley with less than `min_side` of area on one side does not count
    assert (_valley_depth(profile, min_side=9.0) == 0).all()  # only 8 on the right


def test_radon_rejects_3d_and_bad_parameters() -> None:
    with pytest.raises(ValueError, match="watershed"):
        split_radon(np.zeros((3, 8, 8), np.int32))
    with pytest.raises(TypeError, match="boolean mask"):
        split_radon(np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="min_valley_depth"):
        split_radon(np.zeros((8, 8), np.int32), min_valley_depth=1.5)
    with pytest.raises(ValueError, match="n_angles"):
        split_radon(np.zeros((8, 8), np.int32), n_angles=1)
