"""Segmentation metrics over label images: pixel overlap, CTC SEG/DET, IoU matching, size and shape.

Every function takes a ground-truth and a predicted label image of the same shape, ``(Y, X)`` or
``(Z, Y, X)``, integer, 0 = background and k > 0 = object k (ids need not be consecutive). A label
id is one object even where its pixels form several disconnected regions, as in the Cell Tracking
Challenge (CTC); run ``skimage.measure.label`` first to count each region separately.

Everything is built on :func:`label_overlap`, the contingency matrix of pixel counts;
``evseg.evaluate.scores`` reuses the same pieces to compute all metrics of an image at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.measure import regionprops

from evseg._validate import check_labels, check_same_shape

#: IoU threshold of the matching behind the ``*_0.5`` metrics and the size/shape similarity.
EVALUATION_IOU = 0.5

#: CTC AOGM-D weights (Matula et al. 2015): split, false negative, false positive.
W_SPLIT, W_FN, W_FP = 5, 10, 1


# ----------------------------------------------------------------------------- contingency


class _Overlap(NamedTuple):
    matrix: np.ndarray  # (n_gt + 1, n_pred + 1) int64 pixel counts; row/column 0 = background
    gt_ids: np.ndarray  # (n_gt,) original GT ids, increasing
    pred_ids: np.ndarray  # (n_pred,)
    gt_seq: np.ndarray  # GT relabelled to 0..n_gt (same shape as the input)
    pred_seq: np.ndarray


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ids, seq)``: the object ids (increasing) and ``labels`` mapped to 0..len(ids)."""
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 65536:  # look-up table, O(N): far faster than sorting
        flat = flat.astype(np.intp, copy=False)
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = True
        ids = np.flatnonzero(present)
        lut = np.zeros(top + 1, dtype=np.intp)
        lut[ids] = np.arange(ids.size)
        seq = lut[flat]
    else:  # huge ids: sort instead of a huge table
        ids, seq = np.unique(flat, return_inverse=True)
        if ids[0] != 0:
            ids = np.concatenate([[0], ids])
            seq = seq + 1
    return ids[1:].astype(np.int64), seq.reshape(labels.shape)


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = check_labels(gt, name="gt")
    pred = check_labels(pred, name="pred")
    check_same_shape(gt, pred, names=("gt", "pred"))
    return gt, pred


def _overlap(gt: np.ndarray, pred: np.ndarray) -> _Overlap:
    gt, pred = _check_pair(gt, pred)
    gt_ids, gt_seq = _relabel(gt)
    pred_ids, pred_seq = _relabel(pred)
    n_cols = pred_ids.size + 1
    combined = gt_seq.ravel() * n_cols + pred_seq.ravel()
    counts = np.bincount(combined, minlength=(gt_ids.size + 1) * n_cols)
    return _Overlap(counts.reshape(gt_ids.size + 1, n_cols).astype(np.int64), gt_ids, pred_ids,
                    gt_seq, pred_seq)


def label_overlap(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Contingency matrix of pixel counts between the objects of two label images.

    ``overlap[i, j]`` is the number of pixels that are GT object ``i`` and predicted object
    ``j``. Row and column 0 are the background; rows ``1..n_gt`` are the GT ids in increasing
    order (``np.unique(gt)`` without 0) and columns ``1..n_pred`` likewise for ``pred``, so
    non-consecutive ids are compacted. Row 0 / column 0 exist even where there is no background.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Ground-truth and predicted label images, 0 = background.

    Returns
    -------
    ndarray of int64, shape (n_gt + 1, n_pred + 1)
        Pixel (voxel) counts; the total is ``gt.size``.

    Raises
    ------
    TypeError
        If an input is not an integer array.
    ValueError
        If the shapes differ (both are named) or an input has negative values.

    Examples
    --------
    >>> gt = np.array([[0, 3, 3], [0, 3, 3]])
    >>> pred = np.array([[0, 0, 9], [0, 0, 9]])
    >>> label_overlap(gt, pred)
    array([[2, 0],
           [2, 2]])
    """
    return _overlap(gt, pred).matrix


def _sizes(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object sizes in pixels: GT ``(n_gt,)`` and predicted ``(n_pred,)``."""
    return matrix[1:].sum(axis=1), matrix[:, 1:].sum(axis=0)


def _iou(matrix: np.ndarray) -> np.ndarray:
    """IoU of every GT/pred object pair, ``(n_gt, n_pred)``: |R∩S| / (|R| + |S| − |R∩S|)."""
    inter = matrix[1:, 1:].astype(np.float64)
    gt_sizes, pred_sizes = _sizes(matrix)
    union = gt_sizes[:, None] + pred_sizes[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _ctc_match(matrix: np.ndarray) -> np.ndarray:
    """CTC matching ``(n_gt, n_pred)`` bool: pred S matches GT R when |R∩S| > 0.5·|R|.

    At most one S can match a given R; one S may match several R (a merge).
    """
    gt_sizes, _ = _sizes(matrix)
    return 2 * matrix[1:, 1:] > gt_sizes[:, None]


def _det_counts(match: np.ndarray) -> tuple[int, int, int]:
    """AOGM-D operations ``(splits, false negatives, false positives)`` from the CTC matching."""
    per_pred = match.sum(axis=0)
    splits = int(np.maximum(per_pred - 1, 0).sum())
    false_neg = int(np.count_nonzero(match.sum(axis=1) == 0))
    false_pos = int(np.count_nonzero(per_pred == 0))
    return splits, false_neg, false_pos


def _ratio(num: float, den: float, *, empty: float) -> float:
    return float(num) / float(den) if den > 0 else empty


def _detection_rates(tp: int, fp: int, fn: int) -> tuple[float, float, float, float]:
    """``(precision, recall, f1, average_precision)``; each 0.0 when undefined (StarDist)."""
    return (
        _ratio(tp, tp + fp, empty=0.0),
        _ratio(tp, tp + fn, empty=0.0),
        _ratio(2 * tp, 2 * tp + fp + fn, empty=0.0),
        _ratio(tp, tp + fp + fn, empty=0.0),
    )


# ----------------------------------------------------------------------------- pixel metrics


def pixel_jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """Jaccard index of the foregrounds: |G ∩ P| / |G ∪ P| with G = ``gt > 0``, P = ``pred > 0``.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images (only foreground vs background matters).

    Returns
    -------
    float
        In [0, 1]; 1.0 when both foregrounds are empty (nothing to find, nothing found).

    Raises
    ------
    TypeError, ValueError
        As :func:`label_overlap`.
    """
    gt, pred = _check_pair(gt, pred)
    g, p = gt > 0, pred > 0
    return _ratio(np.count_nonzero(g & p), np.count_nonzero(g | p), empty=1.0)


def pixel_dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice coefficient of the foregrounds: 2·|G ∩ P| / (|G| + |P|), G = gt > 0, P = pred > 0.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images (only foreground vs background matters).

    Returns
    -------
    float
        In [0, 1]; 1.0 when both foregrounds are empty.

    Raises
    ------
    TypeError, ValueError
        As :func:`label_overlap`.
    """
    gt, pred = _check_pair(gt, pred)
    g, p = gt > 0, pred > 0
    return _ratio(2 * np.count_nonzero(g & p), np.count_nonzero(g) + np.count_nonzero(p), empty=1.0)


# ----------------------------------------------------------------------------- CTC SEG / DET


def seg_score(gt: np.ndarray, pred: np.ndarray) -> float:
    """Cell Tracking Challenge SEG: mean Jaccard of each GT object with its matching prediction.

    A predicted object S matches GT object R when |R ∩ S| > 0.5·|R| (so at most one S per R).
    SEG = (1 / n_gt) · Σ_R J(R, S_R) with J = |R∩S| / |R∪S|, and J = 0 for an unmatched R.
    False positives do not lower SEG. Identical to py-ctcmetrics ``seg`` for one frame.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.

    Returns
    -------
    float
        In [0, 1]; NaN when ``gt`` has no object (SEG is undefined; CTC would report 0).

    Raises
    ------
    TypeError, ValueError
        As :func:`label_overlap`.
    """
    matrix = label_overlap(gt, pred)
    n_gt = matrix.shape[0] - 1
    return _ratio(_iou(matrix)[_ctc_match(matrix)].sum(), n_gt, empty=math.nan)


def det_score(gt: np.ndarray, pred: np.ndarray) -> float:
    """Cell Tracking Challenge DET (segmentation only, no tracking edges).

    Objects are matched as in :func:`seg_score` (S matches R when |R ∩ S| > 0.5·|R|). Then
    AOGM-D = 5·NS + 10·FN + 1·FP, where NS counts the splits needed (a predicted object matching
    k > 1 GT objects costs k − 1), FN the unmatched GT objects and FP the predicted objects that
    match none; AOGM-D0 = 10·n_gt (every object missing) and
    DET = 1 − min(AOGM-D, AOGM-D0) / AOGM-D0. Identical to py-ctcmetrics ``det`` for one frame.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.

    Returns
    -------
    float
        In [0, 1]; NaN when ``gt`` has no object (AOGM-D0 = 0).

    Raises
    ------
    TypeError, ValueError
        As :func:`label_overlap`.
    """
    matrix = label_overlap(gt, pred)
    splits, false_neg, false_pos = _det_counts(_ctc_match(matrix))
    aogm_d = W_SPLIT * splits + W_FN * false_neg + W_FP * false_pos
    return _det(aogm_d, W_FN * (matrix.shape[0] - 1))


def _det(aogm_d: float, aogm_d0: float) -> float:
    return 1.0 - min(aogm_d, aogm_d0) / aogm_d0 if aogm_d0 > 0 else math.nan


# ----------------------------------------------------------------------------- IoU matching


def _readonly(values: np.ndarray, dtype: type) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of GT and predicted objects at one IoU threshold.

    Conventions follow StarDist ``matching``: precision = tp / (tp + fp), recall = tp / (tp + fn),
    f1 = 2·tp / (2·tp + fp + fn), average_precision = tp / (tp + fp + fn) (the DSB2018 "AP"),
    and every one of them is 0.0 when tp = 0, including when both images are empty.

    Attributes
    ----------
    iou_threshold : float
        Pairs are kept when their IoU >= this.
    n_gt, n_pred : int
        Numbers of objects.
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched GT objects.
    precision, recall, f1, average_precision : float
        As above, in [0, 1].
    mean_matched_iou : float
        Mean IoU of the matched pairs (0.0 when tp = 0).
    panoptic_quality : float
        Σ IoU(matched) / (tp + fp/2 + fn/2) (Kirillov et al. 2019; 0.0 when undefined).
    gt_ids, pred_ids : ndarray of int64, shape (tp,)
        Original ids of the matched pairs, sorted by GT id (read-only; not compared by ``==``).
    ious : ndarray of float64, shape (tp,)
        IoU of each matched pair.
    """

    iou_threshold: float
    n_gt: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    mean_matched_iou: float
    panoptic_quality: float
    gt_ids: np.ndarray = field(compare=False, repr=False)
    pred_ids: np.ndarray = field(compare=False, repr=False)
    ious: np.ndarray = field(compare=False, repr=False)


def _check_threshold(iou_threshold: float) -> float:
    value = float(iou_threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"`iou_threshold` must be in (0, 1], got {iou_threshold!r}.")
    return value


def _hungarian(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of the pairs with IoU >= threshold in a maximum one-to-one matching.

    As StarDist: maximise the number of pairs reaching the threshold, ties broken by total IoU.
    """
    n_matched = min(iou.shape)
    ok = iou >= threshold
    if n_matched == 0 or not ok.any():
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    rows, cols = linear_sum_assignment(-ok.astype(np.float64) - iou / (2 * n_matched))
    keep = ok[rows, cols]
    return rows[keep], cols[keep]


def _match_result(ov: _Overlap, iou: np.ndarray, threshold: float) -> MatchResult:
    rows, cols = _hungarian(iou, threshold)
    n_gt, n_pred = iou.shape
    tp = int(rows.size)
    fp, fn = n_pred - tp, n_gt - tp
    ious = iou[rows, cols]
    total = float(ious.sum())
    precision, recall, f1, ap = _detection_rates(tp, fp, fn)
    return MatchResult(
        iou_threshold=threshold, n_gt=n_gt, n_pred=n_pred, tp=tp, fp=fp, fn=fn,
        precision=precision, recall=recall, f1=f1, average_precision=ap,
        mean_matched_iou=_ratio(total, tp, empty=0.0),
        panoptic_quality=_ratio(total, tp + fp / 2 + fn / 2, empty=0.0),
        gt_ids=_readonly(ov.gt_ids[rows], np.int64),
        pred_ids=_readonly(ov.pred_ids[cols], np.int64),
        ious=_readonly(ious, np.float64),
    )


def match_instances(gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = 0.5) -> MatchResult:
    """Match GT and predicted objects one-to-one on IoU (Hungarian) and count tp/fp/fn.

    The assignment (``scipy.optimize.linear_sum_assignment``) maximises the number of pairs with
    IoU >= ``iou_threshold``, ties broken by the summed IoU, as StarDist ``matching`` does; at
    thresholds > 0.5 the matching is unique anyway.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.
    iou_threshold : float
        Minimum IoU of a matched pair, in (0, 1].

    Returns
    -------
    MatchResult
        Counts, rates (see :class:`MatchResult` for the empty-image conventions) and pairs.

    Raises
    ------
    TypeError, ValueError
        As :func:`label_overlap`; ValueError for a threshold outside (0, 1].

    Examples
    --------
    >>> gt = np.zeros((20, 20), int); gt[0:10, 0:10] = 1
    >>> pred = np.roll(gt, 2, axis=1)  # IoU = 80 / 120
    >>> m = match_instances(gt, pred)
    >>> m.tp, m.fp, m.fn, round(float(m.ious[0]), 4)
    (1, 0, 0, 0.6667)
    """
    threshold = _check_threshold(iou_threshold)
    ov = _overlap(gt, pred)
    return _match_result(ov, _iou(ov.matrix), threshold)


def match_thresholds(
    gt: np.ndarray, pred: np.ndarray, thresholds: Iterable[float] | None = None
) -> list[MatchResult]:
    """:func:`match_instances` at several IoU thresholds, sharing one overlap computation.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.
    thresholds : iterable of float, optional
        IoU thresholds in (0, 1]; default ``0.5, 0.55, ..., 0.95``.

    Returns
    -------
    list of MatchResult
        One per threshold, in the given order.
    """
    if thresholds is None:
        thresholds = np.round(np.arange(0.5, 1.0, 0.05), 2)
    if np.isscalar(thresholds):
        raise TypeError(
            "`thresholds` must be an iterable of floats; for one threshold use match_instances."
        )
    values = [_check_threshold(t) for t in thresholds]
    ov = _overlap(gt, pred)
    iou = _iou(ov.matrix)
    return [_match_result(ov, iou, t) for t in values]


def average_precision(gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = 0.5) -> float:
    """DSB2018 / StarDist "average precision" at one threshold: tp / (tp + fp + fn).

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.
    iou_threshold : float
        Minimum IoU of a matched pair, in (0, 1].

    Returns
    -------
    float
        In [0, 1]; 0.0 when tp = 0 (StarDist's convention, also for two empty images).
    """
    return match_instances(gt, pred, iou_threshold=iou_threshold).average_precision


# ----------------------------------------------------------------------------- size and shape


def _equivalent_diameter(size: np.ndarray, ndim: int) -> np.ndarray:
    """Diameter of the disc (2D) or ball (3D) of the same area/volume, in pixels."""
    size = np.asarray(size, dtype=np.float64)
    return np.sqrt(4.0 * size / np.pi) if ndim == 2 else np.cbrt(6.0 * size / np.pi)


def _roundness(seq: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Roundness of objects ``indices`` (1-based ids in ``seq``): size / size of the Feret ball.

    2D: r = 4·A / (π·F²); 3D: r = 6·V / (π·F³), F = maximum Feret diameter
    (``skimage.measure.regionprops``). NaN for a 3D object whose voxels lie in one plane (no
    Feret diameter in skimage).
    """
    props = {p.label: p for p in regionprops(seq)}
    out = np.full(indices.size, np.nan)
    for k, index in enumerate(indices):
        prop = props[int(index)]
        if seq.ndim == 3:
            coords = prop.coords - prop.coords.mean(axis=0)
            if np.linalg.matrix_rank(coords) < 3:
                continue
        feret = float(prop.feret_diameter_max)
        ball = np.pi * feret**2 / 4.0 if seq.ndim == 2 else np.pi * feret**3 / 6.0
        out[k] = float(prop.area) / ball
    return out


def _relative_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − min(a, b) / max(a, b), elementwise (NaN where either is NaN)."""
    return 1.0 - np.minimum(a, b) / np.maximum(a, b)


def _size_shape_terms(
    ov: _Overlap, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per matched pair: δd and δr terms, each ``(n_pairs,)`` (δr may hold NaN)."""
    if rows.size == 0:
        return np.zeros(0), np.zeros(0)
    ndim = ov.gt_seq.ndim
    gt_sizes, pred_sizes = _sizes(ov.matrix)
    d_gt = _equivalent_diameter(gt_sizes[rows], ndim)
    d_pred = _equivalent_diameter(pred_sizes[cols], ndim)
    r_gt = _roundness(ov.gt_seq, rows + 1)
    r_pred = _roundness(ov.pred_seq, cols + 1)
    return _relative_difference(d_gt, d_pred), _relative_difference(r_gt, r_pred)


def size_shape_similarity(
    gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = EVALUATION_IOU
) -> tuple[float, float]:
    """Mean relative difference in diameter and roundness over matched object pairs.

    Pairs come from :func:`match_instances` at ``iou_threshold``. For each pair,
    δd = 1 − min(d_S, d_GT) / max(d_S, d_GT) with d the equivalent diameter (of the disc/ball of
    the same area/volume), and δr likewise with the roundness r = 4·A / (π·F²) in 2D
    (6·V / (π·F³) in 3D), F the maximum Feret diameter from ``skimage.measure.regionprops``.
    Both are ratios, so the pixel size does not matter. Lower is better; 0 = identical.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.
    iou_threshold : float
        Minimum IoU of a matched pair, in (0, 1].

    Returns
    -------
    delta_d, delta_r : float
        Means over the pairs, in [0, 1); NaN when there is no pair. 3D objects whose voxels all
        lie in one plane have no Feret diameter and are left out of δr.
    """
    threshold = _check_threshold(iou_threshold)
    ov = _overlap(gt, pred)
    rows, cols = _hungarian(_iou(ov.matrix), threshold)
    dd, dr = _size_shape_terms(ov, rows, cols)
    finite = np.isfinite(dr)
    delta_d = _ratio(dd.sum(), dd.size, empty=math.nan)
    return delta_d, _ratio(dr[finite].sum(), finite.sum(), empty=math.nan)
