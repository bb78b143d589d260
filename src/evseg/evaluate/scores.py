"""All evaluation metrics of an image pair as pooled-able sufficient statistics (``ImageScores``).

:func:`image_scores` computes every statistic of one image from a single overlap matrix;
:meth:`ImageScores.metrics` turns them into the evaluation metrics, and :func:`pool_scores` sums
the statistics of several images so that a pooled row comes from the very same formulas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from evseg.evaluate.metrics import (
    EVALUATION_IOU,
    W_FN,
    W_FP,
    W_SPLIT,
    _ctc_match,
    _det,
    _det_counts,
    _detection_rates,
    _hungarian,
    _iou,
    _overlap,
    _ratio,
    _size_shape_terms,
)


@dataclass(frozen=True)
class ImageScores:
    """Sufficient statistics of one image (or, summed, of many) for :meth:`metrics`.

    All fields are sums, so pooling images is a field-wise sum (:func:`pool_scores`) and the
    pooled metrics weight every pixel and every object equally.

    Attributes
    ----------
    n_gt, n_pred : int
        Numbers of objects.
    pixel_intersection, pixel_union : int
        |G ∩ P| and |G ∪ P| of the foregrounds, in pixels.
    seg_iou_sum : float
        Σ over GT objects of the Jaccard with their CTC match (0 when unmatched).
    det_splits, det_fn, det_fp : int
        AOGM-D operations: splits, false negatives, false positives (CTC matching).
    tp, fp, fn : int
        One-to-one matching at IoU >= 0.5 (Hungarian).
    delta_d_sum, delta_r_sum : float
        Σ over matched pairs of the δd and δr terms of
        :func:`evseg.evaluate.metrics.size_shape_similarity`.
    delta_d_count, delta_r_count : int
        Numbers of terms in those sums (δr skips flat 3D objects).
    """

    n_gt: int
    n_pred: int
    pixel_intersection: int
    pixel_union: int
    seg_iou_sum: float
    det_splits: int
    det_fn: int
    det_fp: int
    tp: int
    fp: int
    fn: int
    delta_d_sum: float
    delta_d_count: int
    delta_r_sum: float
    delta_r_count: int

    @property
    def aogm_d(self) -> int:
        """AOGM-D = 5·splits + 10·FN + 1·FP."""
        return W_SPLIT * self.det_splits + W_FN * self.det_fn + W_FP * self.det_fp

    @property
    def aogm_d0(self) -> int:
        """AOGM-D0 = 10·n_gt, the cost of building the GT from nothing."""
        return W_FN * self.n_gt

    def metrics(self) -> dict[str, float | int]:
        """The evaluation metrics, with the empty-image conventions of the single functions.

        Returns
        -------
        dict
            Keys, in order: ``n_gt, n_pred, jaccard, dice, seg, det, delta_d, delta_r,
            precision_0.5, recall_0.5, f1_0.5, ap_0.5``.
        """
        inter, union = self.pixel_intersection, self.pixel_union
        precision, recall, f1, ap = _detection_rates(self.tp, self.fp, self.fn)
        return {
            "n_gt": self.n_gt,
            "n_pred": self.n_pred,
            "jaccard": _ratio(inter, union, empty=1.0),
            "dice": _ratio(2 * inter, inter + union, empty=1.0),
            "seg": _ratio(self.seg_iou_sum, self.n_gt, empty=math.nan),
            "det": _det(self.aogm_d, self.aogm_d0),
            "delta_d": _ratio(self.delta_d_sum, self.delta_d_count, empty=math.nan),
            "delta_r": _ratio(self.delta_r_sum, self.delta_r_count, empty=math.nan),
            "precision_0.5": precision,
            "recall_0.5": recall,
            "f1_0.5": f1,
            "ap_0.5": ap,
        }


def image_scores(gt: np.ndarray, pred: np.ndarray) -> ImageScores:
    """Compute all sufficient statistics of one image pair from one overlap matrix.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.

    Returns
    -------
    ImageScores
        Call ``.metrics()`` for the metrics, or pool several with :func:`pool_scores`.

    Raises
    ------
    TypeError, ValueError
        As :func:`evseg.evaluate.metrics.label_overlap`.
    """
    ov = _overlap(gt, pred)
    matrix = ov.matrix
    iou = _iou(matrix)
    ctc = _ctc_match(matrix)
    splits, det_fn, det_fp = _det_counts(ctc)
    rows, cols = _hungarian(iou, EVALUATION_IOU)
    dd, dr = _size_shape_terms(ov, rows, cols)
    finite = np.isfinite(dr)
    n_gt, n_pred = iou.shape
    return ImageScores(
        n_gt=n_gt, n_pred=n_pred,
        pixel_intersection=int(matrix[1:, 1:].sum()),
        pixel_union=int(matrix.sum() - matrix[0, 0]),
        seg_iou_sum=float(iou[ctc].sum()),
        det_splits=splits, det_fn=det_fn, det_fp=det_fp,
        tp=int(rows.size), fp=n_pred - int(rows.size), fn=n_gt - int(rows.size),
        delta_d_sum=float(dd.sum()), delta_d_count=int(dd.size),
        delta_r_sum=float(dr[finite].sum()), delta_r_count=int(finite.sum()),
    )


def pool_scores(scores: Iterable[ImageScores]) -> ImageScores:
    """Pool several images into one :class:`ImageScores` by summing every statistic.

    The pooled metrics then count all objects of all images together: Jaccard/Dice from the
    summed pixel intersections and unions, SEG as the mean over all GT objects, DET from the summed
    AOGM-D and AOGM-D0 (as CTC does over the frames of a sequence), δd/δr over all pairs, and
    precision/recall/F1/AP from the summed tp/fp/fn.

    Parameters
    ----------
    scores : iterable of ImageScores
        At least one.

    Returns
    -------
    ImageScores

    Raises
    ------
    ValueError
        If ``scores`` is empty.
    """
    items = list(scores)
    if not items:
        raise ValueError("`scores` is empty; pass the ImageScores of at least one image.")
    totals = {f.name: sum(getattr(s, f.name) for s in items) for f in fields(ImageScores)}
    return ImageScores(**totals)


def evaluate_pair(gt: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """All evaluation metrics of one image pair: ``image_scores(gt, pred).metrics()``.

    Parameters
    ----------
    gt, pred : ndarray of int, shape (Y, X) or (Z, Y, X)
        Label images, 0 = background.

    Returns
    -------
    dict
        Keys ``n_gt, n_pred, jaccard, dice, seg, det, delta_d, delta_r, precision_0.5,
        recall_0.5, f1_0.5, ap_0.5``; see the single functions of ``evseg.evaluate.metrics`` for
        each definition and its value on empty images.

    Examples
    --------
    >>> gt = np.zeros((30, 30), int); gt[0:10, 0:10] = 1
    >>> pred = np.roll(gt, 2, axis=1)  # intersection 80 px, union 120 px
    >>> row = evaluate_pair(gt, pred)
    >>> round(row["jaccard"], 3), round(row["seg"], 3), row["det"], row["f1_0.5"]
    (0.667, 0.667, 1.0, 1.0)
    """
    return image_scores(gt, pred).metrics()
