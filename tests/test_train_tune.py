"""Tests for choosing the probability threshold on validation images."""

import numpy as np
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
