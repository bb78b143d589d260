"""Tests for evseg.instances.postprocess: probability -> labels and the split-method registry."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from evseg.instances import SPLIT_METHODS, probability_to_labels, split_instances


def _probability_map() -> np.ndarray:
    """Hand-made map: a square with a 4 px hole, a touching pair of discs, a 2 x 2 speck."""
    p = np.full((100, 160), 0.1, np.float32)
    p[10:30, 10:30] = 0.9
    p[19:21, 19:21] = 0.2  # hole (4 px)
    p[disk((60, 60), 18)] = 0.8
    p[disk((60, 92), 18)] = 0.7  # touches the previous disc
    p[90:92, 150:152] = 0.95  # speck: equivalent diameter 2.26 px
    p[5, 100] = 0.5  # exactly the threshold: background (strict >)
    return p


def test_probability_to_labels_end_to_end() -> None:
    p = _probability_map()
    labels = probability_to_labels(p, threshold=0.5, min_diameter_px=4.0, max_hole_area_px=10)
    assert labels.dtype == np.int32 and labels.shape == p.shape
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]  # sequential
    assert labels[20, 20] > 0 and (labels[10:30, 10:30] == labels[20, 20]).all()  # hole filled
    assert labels[60, 60] != labels[60, 92] and labels[60, 60] > 0 and labels[60, 92] > 0
    assert labels[91, 151] == 0 and labels[5, 100] == 0


def test_probability_to_labels_options() -> None:
    p = _probability_map()
    plain = probability_to_labels(p, split_method="none")
    assert plain.max() == 3  # square, merged pair, speck
    assert plain[19, 19] == 0  # no hole filling by default
    assert plain[60, 60] == plain[60, 92]
    no_split = probability_to_labels(p, split_options={"min_valley_depth": 0.99})
    assert no_split[60, 60] == no_split[60, 92]
    ws = probability_to_labels(p, split_method="watershed", min_diameter_px=4.0)
    assert ws.max() == 3 and ws[60, 60] != ws[60, 92]
    assert probability_to_labels(p, threshold=0.75, split_method="none")[60, 92] == 0


def test_probability_to_labels_3d() -> None:
    zz, yy, xx = np.mgrid[:24, :24, :44]
    p = np.where(
        ((zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2 < 10**2)
        | ((zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 30) ** 2 < 10**2),
        0.9,
        0.0,
    )
    assert probability_to_labels(p, split_method="none").max() == 1
    assert probability_to_labels(p, split_method="watershed").max() == 2
    with pytest.raises(ValueError, match="2D images only"):
        probability_to_labels(p, split_method="radon")


def test_split_instances_registry() -> None:
    assert SPLIT_METHODS == ("radon", "watershed", "none")
    lab = np.zeros((8, 8), np.int32)
    lab[2:5, 2:5] = 4
    assert (split_instances(lab, method="none") == lab).all()
    with pytest.raises(ValueError, match="Did you mean 'radon'"):
        split_instances(lab, method="radom")
    with pytest.raises(TypeError, match="no options"):
        split_instances(lab, method="none", h_px=2)
    with pytest.raises(TypeError):
        split_instances(lab, method="radon", h_px=2)


def test_probability_to_labels_validates_inputs() -> None:
    with pytest.raises(ValueError, match="probability"):
        probability_to_labels(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="threshold"):
        probability_to_labels(np.zeros((4, 4)), threshold=float("inf"))
    with pytest.raises(ValueError, match="split method"):
        probability_to_labels(np.zeros((4, 4)), split_method="otsu")
    with pytest.raises(ValueError, match="max_hole_area_px"):
        probability_to_labels(np.zeros((4, 4)), max_hole_area_px=-3)
