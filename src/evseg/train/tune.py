"""Choose post-processing parameters (the probability threshold) on validation images, never on test images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evseg.models.store import SegmentationModel
from evseg.train.data import TrainingImage

#: Thresholds tried by default.
DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


#: Boundary-probability thresholds tried by default (models with a boundary output).
DEFAULT_BOUNDARY_THRESHOLDS = (0.3, 0.5, 0.7)
#: Foreground thresholds tried by :func:`tune_postprocessing` by default.
DEFAULT_TUNING_THRESHOLDS = (0.4, 0.5, 0.6, 0.7)
#: Multiples of the model's minimum object diameter tried by :func:`tune_postprocessing` by default.
DEFAULT_MIN_DIAMETER_FACTORS = (1.0, 1.5, 2.0)


def _probabilities(model: SegmentationModel, images: list[TrainingImage], precision: str) -> list[np.ndarray]:
    """The network's probabilities of every validation image (run once, reused for every candidate)."""
    from evseg.predict.pipeline import PredictOptions, network_probability

    if not images:
        raise ValueError("tuning needs at least one validation image.")
    options = PredictOptions(precision=precision, backend="torch")
    return [network_probability(model, item.image, options=options) for item in images]


def _pooled_f1(
    model: SegmentationModel, images: list[TrainingImage], probabilities: list[np.ndarray], params: dict
) -> float:
    """F1 at IoU 0.5 pooled over ``images`` with post-processing ``params``."""
    from evseg.evaluate.metrics import match_instances
    from evseg.predict.pipeline import probability_to_instances

    counts = np.zeros(3, dtype=np.int64)
    for item, probability in zip(images, probabilities, strict=True):
        pred = probability_to_instances(probability, params=params, pixel_size_nm=model.pixel_size_nm)
        match = match_instances(item.labels, pred, iou_threshold=0.5)
        counts += (match.tp, match.fp, match.fn)
    return float(2 * counts[0] / max(2 * counts[0] + counts[1] + counts[2], 1))


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
    probabilities = _probabilities(model, images, precision)
    scores = {float(t): _pooled_f1(model, images, probabilities, {**model.postprocessing, "threshold": float(t)})
              for t in thresholds}
    best = max(scores, key=lambda t: (scores[t], -abs(t - 0.5)))
    return best, scores


def tune_postprocessing(
    model: SegmentationModel,
    images: list[TrainingImage],
    *,
    thresholds: Sequence[float] = DEFAULT_TUNING_THRESHOLDS,
    boundary_thresholds: Sequence[float] = DEFAULT_BOUNDARY_THRESHOLDS,
    min_diameter_factors: Sequence[float] = DEFAULT_MIN_DIAMETER_FACTORS,
    precision: str = "fp32",
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Choose the foreground threshold, the boundary threshold, then the minimum object diameter, by F1@0.5.

    Three stages (coordinate search, at most ``len(thresholds) + len(boundary_thresholds) +
    len(min_diameter_factors)`` evaluations): the foreground threshold with the other parameters at
    their current values; for models with a boundary output, the boundary threshold at the chosen
    foreground threshold; then the size filter, the model's minimum diameter (``min_diameter_nm``,
    or ``min_diameter_px`` for a model that works in pixels) times each factor. Ties go to the
    threshold closest to 0.5 and to the smallest diameter. The network runs once per image.

    Parameters
    ----------
    model : SegmentationModel
        A trained model; its other post-processing parameters are kept.
    images : list of TrainingImage
        Validation images on the model grid with their labels (never test images).
    thresholds, boundary_thresholds : sequence of float
        Candidates in (0, 1).
    min_diameter_factors : sequence of float
        Multiples (>= 1 keeps the documented lower size bound) of the current minimum diameter;
        ``(1.0,)`` leaves it alone.
    precision : {"fp32", "bf16"}
        Network precision.

    Returns
    -------
    (params, rows)
        The chosen ``{"threshold": t, "boundary_threshold": b, <min diameter key>: d}`` (the
        boundary threshold only with a boundary output) and one row per evaluated candidate (its
        parameters and ``f1``).
    """
    probabilities = _probabilities(model, images, precision)
    current = dict(model.postprocessing)
    size_key = "min_diameter_px" if model.pixel_size_nm is None else "min_diameter_nm"
    keys = ("threshold", "boundary_threshold", size_key)
    rows: list[dict[str, float]] = []
    done: dict[tuple[float, ...], float] = {}

    def search(key: str, candidates: Sequence[float], preference) -> None:
        scores = {}
        for value in candidates:
            params = {**current, key: float(value)}
            point = tuple(float(params.get(k, 0.5)) for k in keys)
            if point not in done:
                done[point] = _pooled_f1(model, images, probabilities, params)
                rows.append({**dict(zip(keys, point, strict=True)), "f1": done[point]})
            scores[float(value)] = done[point]
        current[key] = max(scores, key=lambda v: (scores[v], preference(v)))

    def near_half(value: float) -> float:
        return -abs(value - 0.5)

    search("threshold", thresholds, near_half)
    chosen = {"threshold": current["threshold"]}
    if "boundary" in model.outputs:
        search("boundary_threshold", boundary_thresholds, near_half)
        chosen["boundary_threshold"] = current["boundary_threshold"]
    base_diameter = float(current[size_key])
    search(size_key, [base_diameter * float(f) for f in min_diameter_factors], lambda v: -v)
    chosen[size_key] = current[size_key]
    return chosen, rows
