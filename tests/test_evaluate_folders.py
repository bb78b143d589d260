"""Tests for evseg.evaluate.folders: pairing, reading, the pooled ALL row, table and CSV output."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import tifffile
from PIL import Image

from evseg.evaluate import (
    EVALUATION_COLUMNS,
    evaluate_folders,
    format_table,
    pair_label_files,
    read_label_file,
    write_evaluation_csv,
)


def touch(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def square(shape=(30, 30), y=0, x=0, size=10, value=1, out=None):
    out = np.zeros(shape, np.uint16) if out is None else out
    out[y : y + size, x : x + size] = value
    return out


# ------------------------------------------------------------------ pairing


def test_pair_with_labels_suffix_and_mixed_formats(tmp_path, caplog):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    touch(gt, "img1.tif", "img2.png", "b.tiff", "notes.txt")
    touch(pred, "img1_labels.tif", "img1_prob.tif", "img2.TIF", "b_labels.png", "b.tif", "extra.tif")
    with caplog.at_level(logging.DEBUG, logger="evseg.evaluate.folders"):
        pairs = pair_label_files(pred, gt)
    assert [(s, p.name, g.name) for s, p, g in pairs] == [
        ("b", "b_labels.png", "b.tiff"),  # the _labels file wins over b.tif
        ("img1", "img1_labels.tif", "img1.tif"),
        ("img2", "img2.TIF", "img2.png"),
    ]
    assert "extra" in caplog.text and "img1_prob" in caplog.text  # no GT: skipped, logged


def test_gt_without_prediction_is_listed(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    touch(gt, "a.tif", "b.tif", "c.png")
    touch(pred, "a_labels.tif")
    with pytest.raises(ValueError, match=r"ground-truth.*no prediction.*: b, c"):
        pair_label_files(pred, gt)


def test_no_pairs_names_both_folders(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    touch(gt, "a.tif")
    touch(pred, "z.tif")
    with pytest.raises(ValueError, match="No prediction") as err:
        pair_label_files(pred, gt)
    assert str(gt) in str(err.value) and str(pred) in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No label files") as err:
        pair_label_files(pred, empty)
    assert str(empty) in str(err.value) and str(pred) in str(err.value)


def test_pairing_errors(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    touch(gt, "a.tif", "a.png")
    touch(pred, "a.tif")
    with pytest.raises(ValueError, match="share the stem 'a'"):
        pair_label_files(pred, gt)
    with pytest.raises(NotADirectoryError, match="missing"):
        pair_label_files(pred, tmp_path / "missing")


# ------------------------------------------------------------------ reading


def test_binary_png_becomes_components_with_warning(tmp_path, caplog):
    mask = square(value=255).astype(np.uint8)
    square(out=mask, y=15, x=15, value=255)
    Image.fromarray(mask).save(tmp_path / "m.png")
    with caplog.at_level(logging.WARNING, logger="evseg.evaluate.folders"):
        labels = read_label_file(tmp_path / "m.png")
    assert "binary mask" in caplog.text and "2 objects" in caplog.text
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(labels > 0, mask > 0)


def test_instance_tif_kept_as_is(tmp_path, caplog):
    labels = square(value=7)
    square(out=labels, y=15, x=15, value=300)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    with caplog.at_level(logging.WARNING):
        out = read_label_file(tmp_path / "l.tif")
    np.testing.assert_array_equal(out, labels)
    assert caplog.text == ""


def test_read_errors_name_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((5, 5), np.float32))
    with pytest.raises(TypeError, match="f.tif"):
        read_label_file(tmp_path / "f.tif")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*one channel"):
        read_label_file(tmp_path / "rgb.png")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="bad.tif"):
        read_label_file(tmp_path / "bad.tif")


# ------------------------------------------------------------------ evaluate_folders


def write_example(tmp_path):
    """Two images whose pooled metrics are known by hand (see the ALL row test)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    tifffile.imwrite(gt / "one.tif", square(value=1))
    tifffile.imwrite(pred / "one_labels.tif", square(x=2, value=5))  # I 80, U 120: matched
    two = square(value=255).astype(np.uint8)
    square(out=two, y=15, x=15, value=255)  # binary GT: two objects
    Image.fromarray(two).save(gt / "two.png")
    tifffile.imwrite(pred / "two_labels.tif", np.zeros((30, 30), np.uint16))  # both missed
    return pred, gt


def test_evaluate_folders_rows_and_pooled_all_row(tmp_path):
    pred, gt = write_example(tmp_path)
    rows = evaluate_folders(pred, gt)
    assert [list(row) for row in rows] == [list(EVALUATION_COLUMNS)] * 3
    assert [row["image"] for row in rows] == ["one", "two", "ALL"]
    one, two, pooled = rows
    assert (one["n_gt"], one["jaccard"], one["seg"], one["det"]) == (1, pytest.approx(2 / 3),
                                                                     pytest.approx(2 / 3), 1.0)
    assert (two["n_gt"], two["n_pred"], two["det"], two["recall_0.5"]) == (2, 0, 0.0, 0.0)
    expected = {
        "image": "ALL", "n_gt": 3, "n_pred": 1,
        "jaccard": 80 / 320, "dice": 160 / 400,  # summed intersections / unions
        "seg": (2 / 3) / 3,  # mean over all 3 GT objects
        "det": 1 - 20 / 30,  # summed AOGM-D / AOGM-D0
        "delta_d": 0.0, "delta_r": 0.0,
        "precision_0.5": 1.0, "recall_0.5": 1 / 3, "f1_0.5": 2 / 4, "ap_0.5": 1 / 3,
    }
    assert pooled == pytest.approx(expected)


def test_evaluate_folders_shape_mismatch_names_files(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    tifffile.imwrite(gt / "a.tif", square())
    tifffile.imwrite(pred / "a.tif", np.zeros((30, 31), np.uint16))
    with pytest.raises(ValueError, match=r"gt.a\.tif.*\(30, 30\).*pred.a\.tif.*\(30, 31\)"):
        evaluate_folders(pred, gt)


def test_evaluate_folders_on_real_labels(shared_data, tmp_path):
    labels = shared_data / "ctc" / "Fluo-N2DH-GOWT1" / "labels"
    rows = evaluate_folders(labels, labels)  # every file is its own prediction
    assert len(rows) == len(list(labels.glob("*.tif"))) + 1
    pooled = rows[-1]
    assert pooled["n_gt"] == pooled["n_pred"] > 10
    for key in ("jaccard", "dice", "seg", "det", "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5"):
        assert pooled[key] == 1.0
    assert (pooled["delta_d"], pooled["delta_r"]) == (0.0, 0.0)


# ------------------------------------------------------------------ output


def test_format_table_fixed_width(tmp_path):
    pred, gt = write_example(tmp_path)
    rows = evaluate_folders(pred, gt)
    rows[1]["delta_d"] = math.nan
    table = format_table(rows)
    lines = table.split("\n")
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert lines[0].split() == list(EVALUATION_COLUMNS)
    assert lines[3].split()[:6] == ["ALL", "3", "1", "0.250", "0.400", "0.222"]
    assert lines[2].split()[7] == "nan"
    assert format_table([]) == ""


def test_write_evaluation_csv_round_trip(tmp_path):
    pred, gt = write_example(tmp_path)
    rows = evaluate_folders(pred, gt)
    out = tmp_path / "out"
    out.mkdir()
    path = write_evaluation_csv(rows, out / "evaluation.csv")
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.csv"]  # no temporary left
    with open(path, newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == list(EVALUATION_COLUMNS)
    assert [r["image"] for r in read] == ["one", "two", "ALL"]
    for row, back in zip(rows, read, strict=True):
        for key in EVALUATION_COLUMNS[1:]:
            assert float(back[key]) == pytest.approx(row[key], nan_ok=True)
    with pytest.raises(ValueError, match="Row 0"):
        write_evaluation_csv([{"image": "x"}], out / "bad.csv")
    with pytest.raises(ValueError, match="does not exist"):
        write_evaluation_csv(rows, tmp_path / "nowhere" / "e.csv")
