"""Choose post-processing parameters (the probability threshold) on validation images, never on test images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evseg.models.store import SegmentationModel
from evseg.train.data import TrainingImage

#: Thresholds tried by default.
DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def tune_threshold(
    model: SegmentationModel,
    images: list[TrainingImage],
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    precision: str = "fp32",
) -> tuple[float, dict[float, float]]:
    """Find the foreground threshold that maximises F1 at IoU 0.5 over ``images``.

    The network runs once per image; only the post-processing is repeated per threshold.

    Parameters
    ----------
    model : SegmentationModel
        A trained model (its other post-processing parameters are kept).
    images : list of TrainingImage
        Validation images on the model grid, with their labels.
    thresholds : sequence of float
        Candidates in (0, 1).
    precision : {"fp32", "bf16"}
        Network precision.

    Returns
    -------
    (best_threshold, f1_by_threshold)
        The threshold with the highest pooled F1 (ties: the one closest to 0.5), and all scores.
    """
    from evseg.evaluate.metrics import match_instances
    from evseg.predict.pipeline import PredictOptions, network_probability, probability_to_instances

    if not images:
        raise ValueError("tune_threshold needs at least one validation image.")
    options = PredictOptions(precision=precision, backend="torch")
    probabilities = [network_probability(model, item.image, options=options) for item in images]
    counts = {t: np.zeros(3, dtype=np.int64) for t in thresholds}
    for item, probability in zip(images, probabilities, strict=True):
        for t in thresholds:
            params = {**model.postprocessing, "threshold": float(t)}
            pred = probability_to_instances(probability, params=params, pixel_size_nm=model.pixel_size_nm)
            match = match_instances(item.labels, pred, iou_threshold=0.5)
            counts[t] += (match.tp, match.fp, match.fn)
    scores = {float(t): float(2 * c[0] / max(2 * c[0] + c[1] + c[2], 1)) for t, c in counts.items()}
    best = max(scores, key=lambda t: (scores[t], -abs(t - 0.5)))
    return best, scores
