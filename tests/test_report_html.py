"""Tests of the self-contained HTML report of a predict run (evseg.report.html)."""

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

from evseg.data.synthetic import synthetic_tem_image
from evseg.predict.batch import ImageOutcome
from evseg.report import REPORT_NAME, THUMBNAIL_WIDTH, make_thumbnail, thumbnail_width_for, write_report


def _outcome(name, diameters_nm, roundness, *, pixel_size_nm=2.0, thumbnail=None, warnings=()):
    d = np.asarray(diameters_nm, float)
    px = d / pixel_size_nm if pixel_size_nm else d
    nm = d if pixel_size_nm else np.full(d.shape, np.nan)
    table = {"image": np.full(d.size, name, dtype=object), "label": np.arange(1, d.size + 1),
             "equivalent_diameter_nm": nm, "equivalent_diameter_px": px, "roundness": np.asarray(roundness, float)}
    known = d.size > 0 and bool(pixel_size_nm)
    summary = {"image": name, "count": int(d.size),
               "mean_diameter_nm": float(np.mean(d)) if known else float("nan"),
               "median_diameter_nm": float(np.median(d)) if known else float("nan"),
               "sd_diameter_nm": float(np.std(d, ddof=1)) if known and d.size > 1 else float("nan"),
               "mean_diameter_px": float(np.mean(px)) if d.size else float("nan"),
               "median_diameter_px": float(np.median(px)) if d.size else float("nan"),
               "sd_diameter_px": float(np.std(px, ddof=1)) if d.size > 1 else float("nan")}
    return ImageOutcome(Path(name), summary, table, None, 0.5, warnings=tuple(warnings), thumbnail=thumbnail,
                        pixel_size_nm=pixel_size_nm)


def _embedded(html_text, kind):
    return [base64.b64decode(b) for b in re.findall(rf"data:image/{kind};base64,([A-Za-z0-9+/=]+)", html_text)]


@pytest.fixture
def run(tmp_path):
    labels = np.zeros((300, 400), np.int32)
    rr, cc = disk((150, 200), 60, shape=labels.shape)
    labels[rr, cc] = 1
    thumb = make_thumbnail(np.where(labels > 0, 50, 200).astype(np.uint8), labels)
    outcomes = [
        _outcome("a.tif", [20.0, 40.0], [0.9, 0.7], thumbnail=thumb, warnings=["a.tif: something odd"]),
        ImageOutcome(Path("/data/broken <1>.tif"), None, None, "/data/broken <1>.tif could not be read", 0.1),
        _outcome("b.tif", [60.0], [0.5]),
    ]
    (tmp_path / "a_overlay.png").write_bytes(b"")  # a link target for a.tif's thumbnail
    path = write_report(tmp_path, outcomes, model_description={"name": "tiny", "model pixel size (nm)": 1.56},
                        parameters={"threshold": 0.5, "split method": "radon",
                                    "command line": "evseg predict a.tif --out x"})
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_and_complete(run):
    path, text = run
    assert path.name == REPORT_NAME
    # no external resources: every src/href is embedded data, an anchor or a file of the run folder
    for target in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert target.startswith(("data:", "#")) or "/" not in target, target
    assert "http://" not in text and "https://" not in text and "<script" not in text
    # counts and the diameter statistics over all objects (20, 40, 60 nm): mean 40, sd 20, median 40
    assert "<b>2</b>" in text and "of 3, 1 failed" in text and "<b>3</b>" in text
    assert "mean diameter (nm)" in text and "40.0 &plusmn; 20.0" in text
    assert "30.0 &plusmn; 14.1 nm" in text  # a.tif: mean 30, sd 14.14
    # failed image listed with its error, escaped
    assert 'id="failed"' in text and "/data/broken &lt;1&gt;.tif could not be read" in text
    assert "<1>" not in text
    # model, parameters, version, warnings, link to the overlay
    for snippet in ("tiny", "1.56", "radon", "evseg predict a.tif --out x", "evseg version", "a.tif: something odd",
                    'href="a_overlay.png"'):
        assert snippet in text, snippet


def test_report_plots_and_thumbnails_are_valid_images(run):
    pytest.importorskip("matplotlib")
    _, text = run
    plots = _embedded(text, "png")
    assert len(plots) == 3  # diameters, roundness, objects per image
    for blob in plots:
        assert Image.open(io.BytesIO(blob)).size[0] > 200
    thumbs = _embedded(text, "jpeg")
    assert len(thumbs) == 1 and Image.open(io.BytesIO(thumbs[0])).format == "JPEG"


def test_report_without_matplotlib_keeps_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    text = write_report(tmp_path, [_outcome("a.tif", [30.0], [0.8])], model_description={"name": "m"},
                        parameters={}).read_text()
    assert not _embedded(text, "png")
    assert 'pip install "evseg[plot]"' in text.replace("&quot;", '"')
    assert "a.tif" in text and "30.0 nm" in text


def test_diameters_in_pixels_when_no_pixel_size(tmp_path):
    text = write_report(tmp_path, [_outcome("p.png", [8.0, 12.0], [0.9, 0.9], pixel_size_nm=None)],
                        model_description={}, parameters={}).read_text()
    assert "mean diameter (px)" in text and "10.0 &plusmn; 2.8 px" in text
    assert "mean diameter (nm)" not in text


def test_report_needs_existing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        write_report(tmp_path / "missing", [], model_description={}, parameters={})


def test_thumbnail_is_bounded_and_shows_outlines():
    labels = np.zeros((512, 1024), np.int32)
    rr, cc = disk((256, 300), 100, shape=labels.shape)
    labels[rr, cc] = 1
    image = np.where(labels > 0, 40, 210).astype(np.uint8)
    thumb = Image.open(io.BytesIO(make_thumbnail(image, labels)))
    assert thumb.format == "JPEG" and thumb.size == (THUMBNAIL_WIDTH, THUMBNAIL_WIDTH // 2)
    rgb = np.asarray(thumb.convert("RGB")).astype(int)
    reddish = (rgb[..., 0] - rgb[..., 2]) > 100
    # the outline (a circle of radius 25 px at the thumbnail scale, centre (64, 75)) and nothing else
    yy, xx = np.nonzero(reddish)
    assert reddish.sum() > 50
    assert np.allclose(np.hypot(yy - 64, xx - 75), 25, atol=3)
    # a portrait image is bounded by its height; small images are not enlarged
    assert Image.open(io.BytesIO(make_thumbnail(image.T, labels.T))).size == (THUMBNAIL_WIDTH // 2, THUMBNAIL_WIDTH)
    assert Image.open(io.BytesIO(make_thumbnail(image[:64, :80], labels[:64, :80]))).size == (80, 64)
    with pytest.raises(ValueError, match="width"):
        make_thumbnail(image, labels, width=8)


def test_thumbnails_keep_a_500_image_report_to_a_few_megabytes():
    sample = synthetic_tem_image((1024, 1024), pixel_size_nm=1.56, rng=0)
    assert thumbnail_width_for(50) == THUMBNAIL_WIDTH and thumbnail_width_for(500) < THUMBNAIL_WIDTH
    blob = make_thumbnail(sample.image, sample.labels, width=thumbnail_width_for(500))
    # 500 base64 thumbnails (4/3 of the bytes) of these noisy 1024 x 1024 micrographs stay under 6 MB
    assert 500 * len(blob) * 4 / 3 < 6e6, len(blob)
