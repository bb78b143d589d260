"""Tests for evseg.io.writers and evseg.io.overlay: calibrated TIFFs, PNG, CSV, ImageJ ROIs, overlays."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import roifile
import tifffile
from PIL import Image as PILImage
from skimage.draw import disk, polygon2mask
from skimage.segmentation import find_boundaries

from evseg.io import (
    read_image,
    read_labels,
    render_overlay,
    write_csv,
    write_imagej_rois,
    write_labels,
    write_png,
    write_probability,
    write_tiff,
)

# ----------------------------------------------------------------------------- TIFF


def test_write_tiff_imagej_calibration_round_trip(tmp_path, rng):
    data = rng.integers(0, 65536, (6, 8)).astype(np.uint16)
    p = write_tiff(tmp_path / "a.tif", data, pixel_size_nm=1.56)
    with tifffile.TiffFile(p) as tf:  # what Fiji reads: unit=nm and resolution = pixels per nm
        assert tf.imagej_metadata["unit"] == "nm"
        assert tf.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE  # zlib
        num, den = tf.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(1.56, rel=1e-7)
        np.testing.assert_array_equal(tf.asarray(), data)
    img = read_image(p)
    assert img.pixel_size_nm == pytest.approx(1.56, rel=1e-7)
    assert img.data.dtype == np.uint16


def test_write_tiff_3d_spacing_and_non_square(tmp_path):
    vol = np.zeros((3, 4, 5), np.float32)
    p = write_tiff(tmp_path / "v.tif", vol, voxel_size_nm=(50.0, 4.6, 4.6))
    with tifffile.TiffFile(p) as tf:
        assert tf.imagej_metadata["spacing"] == pytest.approx(50.0)
        assert tf.series[0].axes == "ZYX"
    assert read_image(p).voxel_size_nm == pytest.approx((50.0, 4.6, 4.6), rel=1e-6)
    q = write_tiff(tmp_path / "ns.tif", vol[0], voxel_size_nm=(2.0, 1.0))
    with pytest.warns(UserWarning, match="non-square"):
        assert read_image(q).voxel_size_nm == pytest.approx((2.0, 1.0), rel=1e-6)


def test_write_tiff_uncalibrated_has_no_unit(tmp_path):
    p = write_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    with tifffile.TiffFile(p) as tf:
        assert "unit" not in tf.imagej_metadata
    assert read_image(p).pixel_size_nm is None


def test_write_tiff_dtype_rules(tmp_path, caplog):
    small = np.array([[0, 7], [65535, 1]], np.int32)
    p = write_tiff(tmp_path / "s.tif", small, pixel_size_nm=2.0)
    assert tifffile.imread(p).dtype == np.uint16  # lossless, ImageJ-compatible
    np.testing.assert_array_equal(tifffile.imread(p), small)
    big = np.array([[0, 70000], [1, 2]], np.int32)
    with caplog.at_level(logging.WARNING, logger="evseg.io.writers"):
        q = write_tiff(tmp_path / "b.tif", big, pixel_size_nm=2.0)
    assert "uint16" in caplog.text
    with tifffile.TiffFile(q) as tf:
        assert not tf.is_imagej
        np.testing.assert_array_equal(tf.asarray(), big)
    assert read_image(q).pixel_size_nm == pytest.approx(2.0, rel=1e-6)  # resolution in cm
    r = write_tiff(tmp_path / "d.tif", np.full((2, 2), 0.1, np.float64))
    assert tifffile.imread(r).dtype == np.float32


def test_write_tiff_errors(tmp_path):
    with pytest.raises(TypeError, match="astype"):
        write_tiff(tmp_path / "a.tif", np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="Did you mean 'ZYX'"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 3, 3), np.uint8), axes="ZXY")
    with pytest.raises(ValueError, match="disagrees"):
        write_tiff(tmp_path / "a.tif", np.zeros((3, 3), np.uint8), pixel_size_nm=1.0, voxel_size_nm=(2.0, 2.0))
    with pytest.raises(ValueError, match="3 values"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 3, 3), np.uint8), voxel_size_nm=(2.0, 2.0))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    p = write_tiff(tmp_path / "a.tif", np.ones((3, 3), np.uint8))
    before = p.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - tifffile's error type for a bad codec varies
        write_tiff(p, np.zeros((3, 3), np.uint8), compression="no-such-codec")
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["a.tif"]


def test_write_probability_checks_and_channels(tmp_path):
    prob = np.stack([np.full((4, 5), 0.25), np.full((4, 5), 0.75)])
    p = write_probability(tmp_path / "p.tif", prob, pixel_size_nm=0.62, axes="CYX")
    with tifffile.TiffFile(p) as tf:
        assert tf.series[0].axes == "CYX"
        out = tf.asarray()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, prob)
    with pytest.raises(TypeError, match="float"):
        write_probability(tmp_path / "q.tif", (prob[0] * 255).astype(np.uint8), pixel_size_nm=None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_probability(tmp_path / "q.tif", prob[1] * 2, pixel_size_nm=None)
    eps = write_probability(tmp_path / "e.tif", np.array([[1 + 1e-6, -1e-6]]), pixel_size_nm=None)
    np.testing.assert_array_equal(tifffile.imread(eps), [[1.0, 0.0]])  # rounding overshoot clipped


def test_write_labels_round_trip(tmp_path):
    lab = np.zeros((6, 6), np.int32)
    lab[1:3, 1:3], lab[4:, 4:] = 3, 40000
    p = write_labels(tmp_path / "l.tif", lab, pixel_size_nm=1.0)
    assert tifffile.imread(p).dtype == np.uint16
    np.testing.assert_array_equal(read_labels(p), lab)
    with pytest.raises(TypeError, match="integer"):
        write_labels(tmp_path / "x.tif", lab.astype(np.float32), pixel_size_nm=1.0)


# ----------------------------------------------------------------------------- PNG, CSV


def test_write_png_grey_and_rgb(tmp_path, rng):
    for arr in (rng.integers(0, 256, (5, 6), dtype=np.uint8), rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)):
        p = write_png(tmp_path / f"{arr.ndim}.png", arr)
        with PILImage.open(p) as im:
            np.testing.assert_array_equal(np.asarray(im), arr)
    with pytest.raises(TypeError, match="uint8"):
        write_png(tmp_path / "f.png", np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "f.png", np.zeros((3, 3, 2), np.uint8))


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_write_csv_columns_and_rows_give_same_file(tmp_path):
    cols = {"label": np.array([1, 2]), "area_nm2": [1234.56789, math.nan], "name": ["a,b", None]}
    a = write_csv(tmp_path / "a.csv", cols, columns=["label", "area_nm2", "name"])
    rows = [{"label": 1, "area_nm2": 1234.56789, "name": "a,b"}, {"label": 2, "area_nm2": float("nan"), "name": None}]
    b = write_csv(tmp_path / "b.csv", rows, columns=["label", "area_nm2", "name"])
    assert a.read_text() == b.read_text()
    assert _read_csv(a) == [["label", "area_nm2", "name"], ["1", "1234.57", "a,b"], ["2", "", ""]]
    c = write_csv(tmp_path / "c.csv", cols, columns=["area_nm2", "label"])  # select and order
    assert _read_csv(c)[0] == ["area_nm2", "label"]
    assert _read_csv(write_csv(tmp_path / "d.csv", {"x": [np.float32(0.1), np.inf]}))[1:] == [["0.1"], ["inf"]]


def test_write_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="equal lengths"):
        write_csv(tmp_path / "a.csv", {"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="no column"):
        write_csv(tmp_path / "a.csv", [{"a": 1}], columns=["a", "b"])
    assert not (tmp_path / "a.csv").exists()


# ----------------------------------------------------------------------------- ImageJ ROIs


def _objects() -> np.ndarray:
    lab = np.zeros((80, 90), np.int32)
    lab[disk((20, 25), 12, shape=lab.shape)] = 3
    lab[50:70, 10:40] = 7
    ring = np.zeros_like(lab, bool)
    ring[disk((55, 65), 14, shape=lab.shape)] = True
    ring[disk((55, 65), 5, shape=lab.shape)] = False  # an object with a hole
    lab[ring] = 12
    return lab


def test_imagej_rois_names_areas_and_position(tmp_path):
    lab = _objects()
    p = write_imagej_rois(tmp_path / "rois.zip", lab)
    rois = roifile.roiread(p)
    assert [r.name for r in rois] == ["0003", "0007", "0012"]
    for roi, k in zip(rois, (3, 7, 12), strict=True):
        xy = roi.coordinates()  # ImageJ (x, y), pixel corners at integers
        x, y = xy[:, 0], xy[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        outer = lab == k
        if k == 12:
            outer = outer | polygon2mask(lab.shape, np.c_[y, x] - 0.5)  # the hole is not in the ROI
        assert area == pytest.approx(outer.sum(), rel=0.1)
        # ImageJ's mask of the polygon (pixel centres inside) is the object itself
        inside = polygon2mask(lab.shape, np.c_[y, x] - 0.5)
        iou = (inside & outer).sum() / (inside | outer).sum()
        assert iou > 0.97


def test_imagej_rois_custom_names_and_empty(tmp_path):
    lab = _objects()
    rois = roifile.roiread(write_imagej_rois(tmp_path / "n.zip", lab, names={3: "ev-a", 7: "ev-b"}))
    assert [r.name for r in rois] == ["ev-a", "ev-b", "0012"]
    empty = write_imagej_rois(tmp_path / "e.zip", np.zeros((5, 5), np.uint16))
    assert empty.exists() and roifile.roiread(empty) == []
    with pytest.raises(ValueError, match="dimensions"):
        write_imagej_rois(tmp_path / "z.zip", np.zeros((2, 5, 5), np.uint16))


# ----------------------------------------------------------------------------- overlay


def test_overlay_outlines_and_normalisation():
    img = np.linspace(0, 1000, 60 * 70, dtype=np.float32).reshape(60, 70)
    lab = _objects()[:60, :70]
    out = render_overlay(img, lab, draw_ids=False, color=(10, 200, 30))
    assert out.shape == (60, 70, 3) and out.dtype == np.uint8
    edges = find_boundaries(lab, mode="inner")
    assert (out[edges] == (10, 200, 30)).all()
    lo, hi = np.percentile(img, (1, 99.5))
    expected = np.clip((img - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(out[~edges][:, 0], expected[~edges], atol=1)
    assert (out[~edges][:, 0] == out[~edges][:, 1]).all()


def test_overlay_ids_drawn_near_centroids_and_skipped_when_many():
    img = np.zeros((200, 200), np.uint8)
    lab = np.zeros((200, 200), np.int32)
    lab[disk((100, 100), 40)] = 5
    plain = render_overlay(img, lab, draw_ids=False)
    with_ids = render_overlay(img, lab)
    changed = np.argwhere((plain != with_ids).any(axis=2))
    assert len(changed) > 0
    assert np.abs(changed.mean(axis=0) - (100, 100)).max() < 10  # the text is centred on the object
    many = np.arange(1, 2602, dtype=np.int32)[:2601].reshape(51, 51).repeat(2, 0).repeat(2, 1)
    np.testing.assert_array_equal(
        render_overlay(np.zeros((102, 102)), many), render_overlay(np.zeros((102, 102)), many, draw_ids=False)
    )


def test_overlay_errors():
    with pytest.raises(ValueError, match="same shape"):
        render_overlay(np.zeros((4, 4)), np.zeros((4, 5), np.int32))
    with pytest.raises(ValueError, match="color"):
        render_overlay(np.zeros((4, 4)), np.zeros((4, 4), np.int32), color=(300, 0, 0))


def test_large_probability_is_written_in_strips_with_the_same_values(tmp_path, monkeypatch):
    import evseg.io.writers as writers

    monkeypatch.setattr(writers, "_STREAM_MIN_BYTES", 1000)  # stream even this small image
    monkeypatch.setattr(writers, "_STREAM_STRIP_BYTES", 4 * 37 * 5)  # 5 rows per strip
    rng = np.random.default_rng(0)
    half = rng.random((53, 37)).astype(np.float16)
    back = tifffile.imread(writers.write_probability(tmp_path / "h.tif", half, pixel_size_nm=1.5))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, half.astype(np.float32))
    prob = rng.random((53, 37)).astype(np.float32)
    prob[0, 0] = 1.00005  # a rounding overshoot, clipped
    back = tifffile.imread(writers.write_probability(tmp_path / "p.tif", prob, pixel_size_nm=1.5))
    np.testing.assert_array_equal(back, np.clip(prob, 0, 1))
    assert prob[0, 0] > 1  # the input is not modified
    with pytest.raises(ValueError, match="without NaN"):
        prob[3, 3] = np.nan
        writers.write_probability(tmp_path / "q.tif", prob, pixel_size_nm=1.5)
