"""Tests for choosing the probability threshold on validation images."""

import numpy as np
import pytest
import torch
from skimage.draw import disk

from evseg.models.store import SegmentationModel
from evseg.train.data import TrainingImage
from evseg.train.tune import tune_threshold


class _ProbabilityIsInput(torch.nn.Module):
    """A 'network' whose sigmoid output equals its input (logit of the input)."""

    required_divisor = (1, 1)
    halo = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x.clamp(1e-4, 1 - 1e-4))


def test_threshold_that_separates_objects_from_clutter_is_chosen():
    labels = np.zeros((96, 96), np.int32)
    probability = np.full(labels.shape, 0.1, np.float32)
    for k, centre in enumerate(((24, 24), (24, 70), (70, 48)), start=1):
        rr, cc = disk(centre, 10, shape=labels.shape)
        labels[rr, cc] = k
        probability[rr, cc] = 0.65
    rr, cc = disk((70, 15), 9, shape=labels.shape)  # clutter the threshold must exclude
    probability[rr, cc] = 0.45
    config = {"arch": "x", "arch_kwargs": {}, "pixel_size_nm": None,
              "postprocessing": {"split_method": "none", "min_diameter_px": 5.0}}
    model = SegmentationModel(network=_ProbabilityIsInput(), config=config)
    best, scores = tune_threshold(model, [TrainingImage("a", probability, labels)], thresholds=(0.3, 0.5, 0.7))
    assert best == 0.5
    assert scores[0.5] == 1.0 and scores[0.3] < 1.0 and scores[0.7] == 0.0


class _ForegroundAndNeck(torch.nn.Module):
    """Foreground = the input; boundary = 0.6 where the input is 0.75 (the neck), else 0.05."""

    required_divisor = (1, 1)
    halo = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boundary = torch.where((x - 0.75).abs() < 0.01, 0.6, 0.05)
        return torch.logit(torch.cat([x.clamp(1e-4, 1 - 1e-4), boundary], dim=1))


def test_boundary_threshold_that_cuts_the_neck_is_chosen():
    from evseg.train.tune import tune_postprocessing

    labels = np.zeros((64, 84), np.int32)
    for k, centre in enumerate(((32, 30), (32, 52)), start=1):  # two touching discs
        rr, cc = disk(centre, 12, shape=labels.shape)
        labels[rr, cc] = k
    image = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    image[:, 40:43][labels[:, 40:43] > 0] = 0.75  # the neck: foreground, predicted as boundary
    config = {"arch": "x", "arch_kwargs": {}, "pixel_size_nm": None, "outputs": ["foreground", "boundary"],
              "postprocessing": {"split_method": "none", "min_diameter_px": 5.0}}
    model = SegmentationModel(network=_ForegroundAndNeck(), config=config)
    chosen, rows = tune_postprocessing(model, [TrainingImage("a", image, labels)], thresholds=(0.5, 0.95),
                                       boundary_thresholds=(0.3, 0.5, 0.7))
    f1 = {(r["threshold"], r["boundary_threshold"], r["min_diameter_px"]): r["f1"] for r in rows}
    # 0.3 ties with 0.5 (0.5 is closer to 0.5); larger minimum diameters tie too (the smallest wins)
    assert chosen == {"threshold": 0.5, "boundary_threshold": 0.5, "min_diameter_px": 5.0}
    assert f1[(0.5, 0.5, 5.0)] == 1.0 and f1[(0.5, 0.7, 5.0)] < 1.0  # 0.7 leaves the neck: one merged object
    assert f1[(0.95, 0.5, 5.0)] == 0.0  # nothing above 0.95
    assert f1[(0.5, 0.5, 10.0)] == 1.0
    assert len(rows) == 6  # (0.5, 0.5, 5) is evaluated once


def test_minimum_diameter_that_drops_specks_is_chosen():
    from evseg.train.tune import tune_postprocessing

    labels = np.zeros((64, 84), np.int32)
    rr, cc = disk((32, 40), 14, shape=labels.shape)
    labels[rr, cc] = 1
    image = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    for centre in ((8, 8), (8, 70), (56, 10), (56, 72)):  # specks of diameter ~6 px the network calls objects
        rr, cc = disk(centre, 3, shape=labels.shape)
        image[rr, cc] = 0.9
    config = {"arch": "x", "arch_kwargs": {}, "pixel_size_nm": None, "outputs": ["foreground", "boundary"],
              "postprocessing": {"split_method": "none", "min_diameter_px": 5.0}}
    model = SegmentationModel(network=_ForegroundAndNeck(), config=config)
    chosen, rows = tune_postprocessing(model, [TrainingImage("a", image, labels)], thresholds=(0.5,),
                                       boundary_thresholds=(0.5,), min_diameter_factors=(1.0, 1.5, 2.0))
    f1 = {r["min_diameter_px"]: r["f1"] for r in rows}
    assert f1[5.0] == pytest.approx(2 / 6)  # 1 tp, 4 fp
    assert f1[7.5] == f1[10.0] == 1.0
    assert chosen["min_diameter_px"] == 7.5
