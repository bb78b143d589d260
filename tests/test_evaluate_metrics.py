"""Tests for evseg.evaluate.metrics and evseg.evaluate.scores: hand-computed cases and py-ctcmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.measure import regionprops

from evseg.evaluate import (
    ImageScores,
    MatchResult,
    average_precision,
    det_score,
    evaluate_pair,
    image_scores,
    label_overlap,
    match_instances,
    match_thresholds,
    pixel_dice,
    pixel_jaccard,
    pool_scores,
    seg_score,
    size_shape_similarity,
)

PAIR_KEYS = ["n_gt", "n_pred", "jaccard", "dice", "seg", "det", "delta_d", "delta_r",
             "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5"]


def square(shape=(30, 30), y=0, x=0, size=10, value=1, out=None):
    """A ``size``×``size`` square of ``value`` at (y, x), painted into ``out`` (or zeros)."""
    out = np.zeros(shape, np.int32) if out is None else out
    out[y : y + size, x : x + size] = value
    return out


def disc(shape, cy, cx, r, value=1, out=None):
    out = np.zeros(shape, np.int32) if out is None else out
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
    return out


def random_pair(rng: np.random.Generator, shape=(64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """Random GT discs (non-consecutive ids) and a prediction with kept, jittered, missing, split
    and merged objects plus false positives."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gt = np.zeros(shape, np.uint16)
    pred = np.zeros(shape, np.uint16)
    gt_ids = rng.choice(np.arange(1, 1000), size=int(rng.integers(3, 9)), replace=False)
    pred_ids = iter(rng.permutation(np.arange(1, 1000)))
    last = None
    for gid in gt_ids:
        cy, cx = rng.uniform(7, shape[0] - 7), rng.uniform(7, shape[1] - 7)
        r = rng.uniform(2.5, 8)
        gt[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = gid
        fate = rng.choice(["keep", "missing", "split", "merge"], p=[0.5, 0.15, 0.2, 0.15])
        if fate == "missing":
            continue
        dy, dx = rng.normal(0, 1.2, size=2)
        blob = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= (r * rng.uniform(0.7, 1.3)) ** 2
        if fate == "split":
            a = rng.uniform(0, np.pi)
            side = (yy - cy) * np.cos(a) + (xx - cx) * np.sin(a) > rng.uniform(-0.5, 0.5) * r
            pred[blob & side] = next(pred_ids)
            pred[blob & ~side] = next(pred_ids)
        elif fate == "merge" and last is not None:
            pred[blob] = last  # the same id as the previous object's prediction
        else:
            last = next(pred_ids)
            pred[blob] = last
    for _ in range(int(rng.integers(0, 3))):  # false positives
        cy, cx, r = rng.uniform(4, shape[0] - 4), rng.uniform(4, shape[1] - 4), rng.uniform(2, 5)
        pred[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (pred == 0)] = next(pred_ids)
    return gt, pred


# ------------------------------------------------------------------ label_overlap


def test_label_overlap_non_consecutive_ids_by_hand():
    gt = np.array([[0, 7, 7, 3], [0, 7, 3, 3]])
    pred = np.array([[100, 100, 0, 2], [0, 100, 2, 2]])
    # rows: background, 3, 7; columns: background, 2, 100
    expected = np.array([[1, 0, 1], [0, 3, 0], [1, 0, 2]])
    np.testing.assert_array_equal(label_overlap(gt, pred), expected)


def test_label_overlap_matches_brute_force(rng):
    gt, pred = random_pair(rng)
    overlap = label_overlap(gt, pred)
    gt_ids = [0, *np.unique(gt[gt > 0])]
    pred_ids = [0, *np.unique(pred[pred > 0])]
    brute = np.array([[np.sum((gt == g) & (pred == p)) for p in pred_ids] for g in gt_ids])
    np.testing.assert_array_equal(overlap, brute)
    assert overlap.sum() == gt.size


def test_label_overlap_without_background_and_huge_ids():
    gt = np.array([[5, 5], [6, 6]], dtype=np.int64) * 2**35  # no background either
    pred = np.array([[0, 2**40], [2**40, 2**40]], dtype=np.int64)
    np.testing.assert_array_equal(label_overlap(gt, pred), [[0, 0], [1, 1], [0, 2]])


# ------------------------------------------------------------------ pixel metrics, SEG, DET by hand


def test_squares_shifted_by_5px():
    gt = square(x=0)
    pred = square(x=5)  # intersection 50, union 150
    assert pixel_jaccard(gt, pred) == pytest.approx(50 / 150)
    assert pixel_dice(gt, pred) == pytest.approx(100 / 200)
    m = match_instances(gt, pred)
    assert (m.tp, m.fp, m.fn) == (0, 1, 1)
    assert match_instances(gt, pred, iou_threshold=0.3).ious[0] == pytest.approx(1 / 3)
    # pred covers exactly 50 % of the GT object: not more than half -> no CTC match
    assert seg_score(gt, pred) == 0.0
    assert det_score(gt, pred) == 0.0  # AOGM-D = 10 (FN) + 1 (FP) > AOGM-D0 = 10


def test_squares_shifted_by_2px():
    gt = square(x=0)
    pred = square(x=2, value=9)  # intersection 80, union 120
    assert seg_score(gt, pred) == pytest.approx(80 / 120)
    assert det_score(gt, pred) == 1.0
    m = match_instances(gt, pred)
    assert (m.tp, m.fp, m.fn) == (1, 0, 0)
    assert (m.gt_ids.tolist(), m.pred_ids.tolist()) == ([1], [9])
    assert m.ious[0] == pytest.approx(2 / 3)
    assert m.panoptic_quality == pytest.approx(2 / 3)


def test_seg_two_objects_by_hand():
    gt = square((40, 40), 0, 0, value=1)
    square(out=gt, y=20, x=20, value=2)
    pred = square((40, 40), 0, 0, value=5)  # A exactly: IoU 1
    pred[20:26, 20:30] = 6  # 60 px of B ...
    pred[14:16, 20:30] = 6  # ... plus 20 px outside: |S| = 80, IoU = 60 / 120
    assert seg_score(gt, pred) == pytest.approx((1.0 + 0.5) / 2)


def test_det_merge_is_one_split():
    gt = square((30, 30), 0, 0, value=1)
    square(out=gt, y=0, x=11, value=2)  # 1-px gap column at x = 10
    pred = np.zeros_like(gt)
    pred[0:10, 0:21] = 4  # one object covering both and the gap: 210 px
    assert det_score(gt, pred) == pytest.approx(1 - 5 / 20)  # NS = 1, AOGM-D0 = 20
    assert seg_score(gt, pred) == pytest.approx(100 / 210)  # each GT: IoU 100 / 210
    scores = image_scores(gt, pred)
    assert (scores.det_splits, scores.det_fn, scores.det_fp) == (1, 0, 0)


def test_det_missing_and_false_positive():
    gt = square((40, 40), 0, 0, value=1)
    square(out=gt, y=0, x=20, value=2)
    square(out=gt, y=20, x=0, value=3)
    pred = np.where(np.isin(gt, [1, 2]), gt, 0)  # object 3 missing
    assert det_score(gt, pred) == pytest.approx(1 - 10 / 30)
    square(out=pred, y=25, x=25, size=5, value=8)  # plus one false positive
    assert det_score(gt, pred) == pytest.approx(1 - 11 / 30)
    assert seg_score(gt, pred) == pytest.approx(2 / 3)  # FP does not change SEG


def test_det_split_60_40_and_50_50():
    gt = square(value=1)
    pred = gt.copy()
    pred[0:10, 6:10] = 2  # 60 % stays id 1 -> matched, the 40 % part is a false positive
    assert det_score(gt, pred) == pytest.approx(0.9)
    assert seg_score(gt, pred) == pytest.approx(0.6)
    pred[0:10, 5:10] = 2  # 50 / 50: nothing covers more than half -> FN + 2 FP = 12 > 10
    assert det_score(gt, pred) == 0.0
    assert seg_score(gt, pred) == 0.0


def test_duplicate_id_in_two_regions_is_one_object():
    gt = square((30, 30), 0, 0, value=1)
    square(out=gt, y=15, x=15, value=1)  # id 1 in two disconnected squares: 200 px
    same = evaluate_pair(gt, gt)
    assert (same["n_gt"], same["seg"], same["det"], same["f1_0.5"]) == (1, 1.0, 1.0, 1.0)
    pred = gt.copy()
    pred[15:, 15:][pred[15:, 15:] == 1] = 2  # each region its own id: each covers 50 %
    row = evaluate_pair(gt, pred)
    assert (row["n_gt"], row["n_pred"], row["seg"], row["det"], row["jaccard"]) == (1, 2, 0.0, 0.0, 1.0)
    m = match_instances(gt, pred)  # IoU of each part with the GT = 100 / 200: one pair at >= 0.5
    assert (m.tp, m.fp, m.fn, row["f1_0.5"]) == (1, 1, 0, pytest.approx(2 / 3))


# ------------------------------------------------------------------ empty images


def test_empty_gt():
    empty = np.zeros((20, 20), np.int32)
    pred = square((20, 20))
    assert math.isnan(seg_score(empty, pred))
    assert math.isnan(det_score(empty, pred))
    assert pixel_jaccard(empty, pred) == 0.0
    m = match_instances(empty, pred)
    assert (m.tp, m.fp, m.fn, m.precision, m.recall, m.f1) == (0, 1, 0, 0.0, 0.0, 0.0)


def test_empty_pred():
    gt = square((20, 20))
    empty = np.zeros((20, 20), np.int32)
    row = evaluate_pair(gt, empty)
    assert (row["seg"], row["det"], row["jaccard"], row["dice"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(row["delta_d"]) and math.isnan(row["delta_r"])
    assert (row["recall_0.5"], row["ap_0.5"]) == (0.0, 0.0)


def test_both_empty_conventions():
    empty = np.zeros((20, 20), np.uint8)
    row = evaluate_pair(empty, empty)
    assert (row["jaccard"], row["dice"]) == (1.0, 1.0)
    assert math.isnan(row["seg"]) and math.isnan(row["det"])
    assert (row["precision_0.5"], row["recall_0.5"], row["f1_0.5"], row["ap_0.5"]) == (0, 0, 0, 0)
    assert label_overlap(empty, empty).tolist() == [[400]]


# ------------------------------------------------------------------ input checks


FUNCTIONS = [label_overlap, pixel_jaccard, pixel_dice, seg_score, det_score, match_instances,
             average_precision, size_shape_similarity, evaluate_pair, image_scores]


@pytest.mark.parametrize("func", FUNCTIONS)
def test_shape_mismatch_names_both_shapes(func):
    with pytest.raises(ValueError, match=r"\(20, 20\).*\(20, 21\)"):
        func(np.zeros((20, 20), int), np.zeros((20, 21), int))


@pytest.mark.parametrize("func", FUNCTIONS)
def test_float_and_bool_input_rejected(func):
    labels = square((20, 20))
    with pytest.raises(TypeError, match="pred"):
        func(labels, labels.astype(np.float32))
    with pytest.raises(TypeError, match="gt"):
        func(labels > 0, labels)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_bad_threshold(threshold):
    labels = square((20, 20))
    with pytest.raises(ValueError, match="iou_threshold"):
        match_instances(labels, labels, iou_threshold=threshold)


# ------------------------------------------------------------------ matching


def test_hungarian_beats_greedy_by_hand():
    # One row of pixels. GT: A = 10 px, B = 6 px. Pred: X = 6 px of A + 4 px of B, Y = 4 px of A.
    # IoU(A, X) = 6/14, IoU(B, X) = 4/12, IoU(A, Y) = 4/10. Greedy takes A-X (best) -> 1 pair;
    # the maximum matching at 0.3 is A-Y + B-X -> 2 pairs.
    gt = np.array([[1] * 10 + [2] * 6])
    pred = np.array([[3] * 6 + [4] * 4 + [3] * 4 + [0] * 2])
    m = match_instances(gt, pred, iou_threshold=0.3)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert dict(zip(m.gt_ids.tolist(), m.pred_ids.tolist(), strict=True)) == {1: 4, 2: 3}
    np.testing.assert_allclose(m.ious, [0.4, 4 / 12])
    assert m.mean_matched_iou == pytest.approx((0.4 + 4 / 12) / 2)
    assert m.panoptic_quality == pytest.approx((0.4 + 4 / 12) / 2)
    m5 = match_instances(gt, pred)  # no pair reaches 0.5
    assert (m5.tp, m5.fp, m5.fn, m5.precision, m5.f1) == (0, 2, 2, 0.0, 0.0)


def test_rates_and_average_precision_by_hand():
    gt = np.zeros((40, 40), np.int32)
    for k, (y, x) in enumerate([(0, 0), (0, 20), (20, 0)], start=1):
        square(out=gt, y=y, x=x, value=k)
    pred = np.zeros_like(gt)
    square(out=pred, y=0, x=1, value=10)  # matches 1 (IoU 90/110)
    square(out=pred, y=0, x=20, value=11)  # matches 2
    square(out=pred, y=25, x=25, size=4, value=12)  # false positive (3 is missed)
    m = match_instances(gt, pred)
    assert (m.n_gt, m.n_pred, m.tp, m.fp, m.fn) == (3, 3, 2, 1, 1)
    assert (m.precision, m.recall, m.f1) == pytest.approx((2 / 3, 2 / 3, 4 / 6))
    assert m.average_precision == pytest.approx(2 / 4)
    assert average_precision(gt, pred) == pytest.approx(0.5)
    assert m.mean_matched_iou == pytest.approx((90 / 110 + 1) / 2)
    assert m.panoptic_quality == pytest.approx((90 / 110 + 1) / 3)
    assert isinstance(m, MatchResult)
    with pytest.raises(ValueError):
        m.gt_ids[0] = 5  # read-only


def test_match_thresholds_equal_independent_iou_counts(rng):
    for _ in range(5):
        gt, pred = random_pair(rng)
        results = match_thresholds(gt, pred)
        assert [r.iou_threshold for r in results] == pytest.approx(np.arange(0.5, 1.0, 0.05))
        gt_ids, pred_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
        ious = np.array([[np.sum((gt == g) & (pred == p)) / np.sum((gt == g) | (pred == p))
                          for p in pred_ids] for g in gt_ids])
        for r in results:  # above 0.5 every object has at most one partner
            assert r.tp == np.count_nonzero(ious >= r.iou_threshold)
            assert r.tp + r.fn == gt_ids.size and r.tp + r.fp == pred_ids.size
            single = match_instances(gt, pred, iou_threshold=r.iou_threshold)
            assert single == r


def test_match_thresholds_rejects_a_scalar():
    labels = square((20, 20))
    with pytest.raises(TypeError, match="match_instances"):
        match_thresholds(labels, labels, 0.5)


# ------------------------------------------------------------------ size and shape


def test_size_shape_similarity_against_regionprops():
    gt = disc((60, 60), 30, 30, 10)
    pred = disc((60, 60), 30, 30, 12, value=4)  # concentric: IoU = area10 / area12 > 0.5
    g, p = regionprops(gt)[0], regionprops(pred)[0]

    def roundness(prop):
        return 4 * prop.area / (np.pi * prop.feret_diameter_max**2)

    expected_d = 1 - g.equivalent_diameter_area / p.equivalent_diameter_area
    expected_r = 1 - min(roundness(g), roundness(p)) / max(roundness(g), roundness(p))
    delta_d, delta_r = size_shape_similarity(gt, pred)
    assert delta_d == pytest.approx(expected_d)
    assert delta_r == pytest.approx(expected_r)
    assert 0.1 < delta_d < 0.25


def test_size_shape_similarity_square_vs_disc_and_no_pairs():
    gt = square((40, 40), 5, 5, size=20)
    pred = disc((40, 40), 14.5, 14.5, 11)
    r_square = 400 / (np.pi * regionprops(gt)[0].feret_diameter_max ** 2 / 4)
    r_disc = regionprops(pred)[0].area / (np.pi * regionprops(pred)[0].feret_diameter_max ** 2 / 4)
    assert size_shape_similarity(gt, pred)[1] == pytest.approx(1 - r_square / r_disc)
    assert size_shape_similarity(gt, gt) == (0.0, 0.0)
    far = square((40, 40), 25, 25, size=10)
    assert all(math.isnan(v) for v in size_shape_similarity(square((40, 40)), far))


def test_3d_including_a_flat_object():
    gt = np.zeros((8, 20, 20), np.int32)
    gt[1:6, 2:9, 2:9] = 1
    gt[3, 12:18, 12:18] = 2  # one slice thick: no 3D Feret diameter
    pred = gt.copy()
    pred[1:6, 2:9, 2:10][pred[1:6, 2:9, 2:10] == 0] = 1  # one column wider
    scores = image_scores(gt, pred)
    assert (scores.tp, scores.delta_d_count, scores.delta_r_count) == (2, 2, 1)
    row = scores.metrics()
    assert row["seg"] == pytest.approx((245 / 280 + 1) / 2)
    assert row["delta_d"] == pytest.approx((1 - (245 / 280) ** (1 / 3)) / 2)
    assert row["delta_r"] > 0


# ------------------------------------------------------------------ per-image rows and pooling


def test_evaluate_pair_keys_and_consistency(rng):
    gt, pred = random_pair(rng)
    row = evaluate_pair(gt, pred)
    assert list(row) == PAIR_KEYS
    m = match_instances(gt, pred)
    assert row["seg"] == pytest.approx(seg_score(gt, pred))
    assert row["det"] == pytest.approx(det_score(gt, pred))
    assert row["jaccard"] == pytest.approx(pixel_jaccard(gt, pred))
    assert row["dice"] == pytest.approx(pixel_dice(gt, pred))
    assert (row["n_gt"], row["n_pred"]) == (m.n_gt, m.n_pred)
    assert (row["precision_0.5"], row["recall_0.5"], row["f1_0.5"], row["ap_0.5"]) == pytest.approx(
        (m.precision, m.recall, m.f1, m.average_precision))
    assert (row["delta_d"], row["delta_r"]) == pytest.approx(size_shape_similarity(gt, pred),
                                                             nan_ok=True)


def pooled_example() -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """Two images and their pooled metrics, computed by hand."""
    gt1 = square((30, 30), value=1)
    pred1 = square((30, 30), x=2, value=1)  # I = 80, U = 120, IoU 2/3, matched
    gt2 = square((30, 30), value=1)
    square(out=gt2, y=15, x=15, value=2)
    pred2 = np.zeros_like(gt2)  # both missed: I = 0, U = 200
    pooled = {
        "n_gt": 3, "n_pred": 1,
        "jaccard": 80 / 320, "dice": 160 / 400,
        "seg": (2 / 3) / 3,
        "det": 1 - (0 + 20) / (10 + 20),
        "delta_d": 0.0, "delta_r": 0.0,
        "precision_0.5": 1.0, "recall_0.5": 1 / 3, "f1_0.5": 2 / 4, "ap_0.5": 1 / 3,
    }
    return [(gt1, pred1), (gt2, pred2)], pooled


def test_pool_scores_by_hand():
    pairs, expected = pooled_example()
    scores = [image_scores(gt, pred) for gt, pred in pairs]
    pooled = pool_scores(scores)
    assert isinstance(pooled, ImageScores)
    assert (pooled.aogm_d, pooled.aogm_d0) == (20, 30)
    row = pooled.metrics()
    assert list(row) == PAIR_KEYS
    assert row == pytest.approx(expected)
    # pooling is not the mean of the per-image values
    assert np.mean([s.metrics()["jaccard"] for s in scores]) == pytest.approx(1 / 3)


def test_pool_scores_empty():
    with pytest.raises(ValueError, match="scores"):
        pool_scores([])


# ------------------------------------------------------------------ py-ctcmetrics cross-check


def _ctc_frame(gt, pred, tmp_path, k):
    """py-ctcmetrics' own matching of one frame (it reads masks from TIFF files)."""
    import tifffile

    representations = pytest.importorskip("ctc_metrics.utils.representations")
    ref, comp = tmp_path / f"man_seg{k:03d}.tif", tmp_path / f"mask{k:03d}.tif"
    tifffile.imwrite(ref, gt)
    tifffile.imwrite(comp, pred)
    return representations.match(str(ref), str(comp))


def test_seg_det_match_py_ctcmetrics(tmp_path):
    ctc_metrics = pytest.importorskip("ctc_metrics")
    from ctc_metrics.metrics import det, seg
    from ctc_metrics.utils.representations import count_acyclic_graph_correction_operations

    rng = np.random.default_rng(2024)
    frames, scores = [], []
    for k in range(24):
        gt, pred = random_pair(rng)
        frame = _ctc_frame(gt, pred, tmp_path, k)
        frames.append(frame)
        ops = count_acyclic_graph_correction_operations(None, None, *([x] for x in frame[:4]))
        assert seg_score(gt, pred) == pytest.approx(seg([frame[0]], [frame[4]]), abs=1e-6)
        assert det_score(gt, pred) == pytest.approx(det(**ops), abs=1e-6)
        scores.append(image_scores(gt, pred))
        assert (scores[-1].det_splits, scores[-1].det_fn, scores[-1].det_fp) == (
            ops["NS"], ops["FN"], ops["FP"])
    assert sum(s.det_splits for s in scores) >= 3  # the cases exercise merges ...
    assert sum(s.det_fn for s in scores) >= 3 and sum(s.det_fp for s in scores) >= 3
    # ... and the pooled row equals CTC's sequence-level SEG and DET over the 24 frames
    lists = [[f[i] for f in frames] for i in range(5)]
    pooled = pool_scores(scores).metrics()
    assert pooled["seg"] == pytest.approx(seg(lists[0], lists[4]), abs=1e-6)
    ops = count_acyclic_graph_correction_operations(None, None, *lists[:4])
    assert pooled["det"] == pytest.approx(det(**ops), abs=1e-6)
    assert ctc_metrics is not None


def test_seg_det_match_py_ctcmetrics_on_real_labels(shared_data, tmp_path):
    pytest.importorskip("ctc_metrics")
    import tifffile
    from ctc_metrics.metrics import det, seg
    from ctc_metrics.utils.representations import count_acyclic_graph_correction_operations
    from scipy import ndimage

    path = sorted((shared_data / "ctc" / "Fluo-N2DH-GOWT1" / "labels").glob("*.tif"))[0]
    gt = tifffile.imread(path)[::2, ::2]
    pred = ndimage.grey_erosion(gt, size=5)  # shrunk objects; small ones vanish
    pred[200:230, 200:230] = int(gt.max()) + 1  # and a false positive
    frame = _ctc_frame(gt, pred, tmp_path, 0)
    ops = count_acyclic_graph_correction_operations(None, None, *([x] for x in frame[:4]))
    assert seg_score(gt, pred) == pytest.approx(seg([frame[0]], [frame[4]]), abs=1e-6)
    assert det_score(gt, pred) == pytest.approx(det(**ops), abs=1e-6)
    assert 0 < seg_score(gt, pred) < 1
