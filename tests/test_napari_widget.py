"""Tests of the napari plugin: manifest, EM reader, sample data, and the segmentation dock widget.

The widget tests need napari, pytest-qt and a display; pytest-xvfb starts a virtual X server
when ``Xvfb`` is installed (see README). Without them these tests are skipped.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

import evseg.napari
from evseg.data.synthetic import synthetic_tem_image
from evseg.measure import MEASUREMENT_COLUMNS

MANIFEST = Path(evseg.napari.__file__).with_name("napari.yaml")
PIXEL_NM = 1.56


def _display_available() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False  # napari.Viewer needs OpenGL, which these platforms do not give
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


needs_viewer = pytest.mark.skipif(
    not _display_available(),
    reason="no display for napari (install Xvfb so that pytest-xvfb can start one)",
)


@pytest.fixture
def gui(request):
    """``(viewer, qtbot)``: napari's ``make_napari_viewer`` and pytest-qt's ``qtbot`` (skips without them)."""
    pytest.importorskip("napari")
    pytest.importorskip("pytestqt")
    try:
        qtbot = request.getfixturevalue("qtbot")
        make_viewer = request.getfixturevalue("make_napari_viewer")
    except pytest.FixtureLookupError as exc:  # the plugins are installed but not loaded
        pytest.skip(f"pytest-qt/napari pytest plugins not active: {exc.argname}")
    return make_viewer(), qtbot


@pytest.fixture
def sample():
    """128² synthetic micrograph at 1.56 nm/px with five vesicles."""
    return synthetic_tem_image((128, 128), pixel_size_nm=PIXEL_NM, n_vesicles=5, diameter_range_nm=(40, 80), rng=3)


# --------------------------------------------------------------------------- manifest


def test_manifest_is_valid_and_imports():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)  # validates against the npe2 schema
    assert manifest.name == "evseg"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["evseg.segment_widget"] == "evseg.napari._widget:SegmentWidget"
    used = [w.command for w in manifest.contributions.widgets]
    used += [r.command for r in manifest.contributions.readers]
    used += [s.command for s in manifest.contributions.sample_data]
    assert set(used) <= set(commands)
    try:
        import napari  # noqa: F401  (the widget module needs it)
    except ImportError:
        return
    manifest.validate_imports()  # every python_name resolves


def test_manifest_entry_point_when_installed():
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="napari.manifest") if ep.name == "evseg"]
    if not found:
        pytest.skip("evseg is installed without its napari.manifest entry point")
    assert found[0].value == "evseg.napari:napari.yaml"
    assert MANIFEST.is_file()


# ----------------------------------------------------------------- reader and sample


def test_reader_claims_em_files_only(tmp_path):
    from evseg.napari import get_reader, read_tem_image

    assert get_reader(str(tmp_path / "a.tif")) is None
    assert get_reader([str(tmp_path / "a.mrc"), str(tmp_path / "b.png")]) is None
    assert get_reader(str(tmp_path / "a.MRC")) is read_tem_image
    assert get_reader([tmp_path / "a.dm4", tmp_path / "b.dm3"]) is read_tem_image


def test_reader_gives_scale_in_nm(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    from evseg.napari import read_tem_image

    data = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    path = tmp_path / "grid.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 15.6  # Å
    [(array, kwargs, kind)] = read_tem_image(str(path))
    assert kind == "image"
    np.testing.assert_array_equal(array, data)
    assert kwargs["scale"] == pytest.approx((1.56, 1.56))
    assert kwargs["units"] == ("nm", "nm")
    assert kwargs["name"] == "grid"
    assert kwargs["metadata"]["evseg"]["pixel_size_nm"] == pytest.approx(1.56)


def test_sample_data_matches_generator():
    from evseg.napari import make_sample_data

    (image, image_kw, image_kind), (labels, labels_kw, labels_kind) = make_sample_data(shape=(64, 80), rng=7)
    expected = synthetic_tem_image((64, 80), pixel_size_nm=PIXEL_NM, rng=7)
    assert (image_kind, labels_kind) == ("image", "labels")
    np.testing.assert_array_equal(image, expected.image)
    np.testing.assert_array_equal(labels, expected.labels)
    assert image_kw["scale"] == labels_kw["scale"] == (PIXEL_NM, PIXEL_NM)


# ------------------------------------------------------------------------- widget


@pytest.mark.parametrize(
    ("scale", "units", "expected"),
    [
        ((1.0, 1.0), None, None),  # napari's default: uncalibrated
        ((1.56, 1.56), None, 1.56),  # pixel units, scale taken as nm
        ((0.002, 0.002), "um", 2.0),
        ((15.6, 15.6), "angstrom", 1.56),
        ((1.0, 2.0), "nm", 1.5),  # non-square: the mean
    ],
)
def test_layer_pixel_size_nm(scale, units, expected):
    pytest.importorskip("napari")
    from napari.layers import Image

    from evseg.napari._widget import layer_pixel_size_nm

    layer = Image(np.zeros((4, 4)), scale=scale, units=units)
    result = layer_pixel_size_nm(layer)
    assert result == (None if expected is None else pytest.approx(expected))


def _tiny_model_folder(folder: Path) -> Path:
    import torch

    from evseg.models.store import create_model, save_model

    torch.manual_seed(0)
    return save_model(create_model("unet", {"base_filters": 4, "depth": 2}, pixel_size_nm=PIXEL_NM), folder)


@needs_viewer
@pytest.mark.parametrize("model", ["classical", "tiny"])
def test_widget_segments_measures_and_saves(gui, tmp_path, monkeypatch, sample, model):
    from qtpy.QtWidgets import QFileDialog

    from evseg.napari._widget import MODEL_FOLDER, SegmentWidget
    from evseg.predict.batch import load_segmenter
    from evseg.predict.pipeline import PredictOptions, segment_image

    viewer, qtbot = gui
    layer = viewer.add_image(sample.image, name="em", scale=(PIXEL_NM, PIXEL_NM), translate=(10.0, -5.0))
    widget = SegmentWidget(viewer)
    assert widget._image.value is layer
    assert widget._pixel_size.value == pytest.approx(PIXEL_NM)  # prefilled from the layer's scale
    if model == "classical":
        widget._model.value = "classical"
        options = PredictOptions()
        segmenter = "classical"
    else:
        folder = _tiny_model_folder(tmp_path / "tiny")
        widget._model.value = MODEL_FOLDER
        widget._model_folder.value = folder
        widget._threshold.value = 0.5
        widget._min_diameter.value = 5.0
        widget._split.value = "none"
        options = PredictOptions(threshold=0.5, min_diameter_nm=5.0, split_method="none")
        segmenter = load_segmenter(folder)
    assert widget.predict_options() == options

    widget._run_button.native.click()
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)

    expected = segment_image(segmenter, sample.image, pixel_size_nm=PIXEL_NM, options=options)
    prob, labels, points = (viewer.layers[f"em {kind}"] for kind in ("probability", "labels", "objects"))
    for out in (prob, labels, points):
        np.testing.assert_allclose(out.scale, layer.scale)
        np.testing.assert_allclose(out.translate, layer.translate)
    assert prob.data.shape == labels.data.shape == sample.image.shape
    np.testing.assert_array_equal(labels.data, expected.labels)
    np.testing.assert_allclose(prob.data, expected.probability)

    ids = np.unique(labels.data[labels.data > 0])
    assert ids.size > 0
    assert widget.status.startswith(f"{ids.size} objects, median diameter"), widget.status
    features = points.features
    assert list(features.columns) == list(MEASUREMENT_COLUMNS)
    assert len(features) == len(points.data) == ids.size
    np.testing.assert_array_equal(features["label"], ids)
    centroids = np.array(ndi.center_of_mass(np.ones_like(labels.data), labels.data, ids)).reshape(-1, 2)
    np.testing.assert_allclose(points.data, centroids, atol=1e-9)
    areas = ndi.sum_labels(np.ones_like(labels.data), labels.data, ids)
    np.testing.assert_allclose(features["area_nm2"], areas * PIXEL_NM**2)

    # "Save CSV..." writes the same rows, columns in MEASUREMENT_COLUMNS order.
    out_csv = tmp_path / "measurements.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out_csv), ""))
    assert widget._save_button.enabled
    widget._save_button.native.click()
    with open(out_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(MEASUREMENT_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == ids.tolist()
    area_column = MEASUREMENT_COLUMNS.index("area_nm2")
    np.testing.assert_allclose([float(r[area_column]) for r in rows[1:]], areas * PIXEL_NM**2, rtol=1e-5)


@needs_viewer
def test_widget_rerun_cache_unknown_pixel_size_and_errors(gui, tmp_path, monkeypatch, sample):
    import napari

    import evseg.predict.batch
    from evseg.napari._widget import MODEL_FOLDER, SegmentWidget

    def run_and_wait(widget):
        widget.run()
        qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
        return widget.measurements

    viewer, qtbot = gui
    viewer.add_image(sample.image, name="em", scale=(PIXEL_NM, PIXEL_NM))
    widget = SegmentWidget(viewer)
    widget._model.value = "classical"
    widget.run()
    with pytest.raises(RuntimeError, match="already running"):
        widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    first = widget.measurements
    assert first["label"].size > 1

    # Re-running replaces the layers' data instead of adding layers.
    widget._min_diameter.value = 44.0  # drops the smaller vesicles
    kept = run_and_wait(widget)
    assert len(viewer.layers) == 4
    assert 0 < kept["label"].size < first["label"].size
    assert np.all(kept["equivalent_diameter_nm"] >= 44.0)
    assert len(viewer.layers["em objects"].features) == kept["label"].size

    # Models are loaded once per folder, again when the folder's files change.
    calls = []
    real = evseg.predict.batch.load_segmenter
    monkeypatch.setattr(evseg.predict.batch, "load_segmenter", lambda name: calls.append(name) or real(name))
    folder = _tiny_model_folder(tmp_path / "tiny")
    widget._model.value = MODEL_FOLDER
    widget._model_folder.value = folder
    widget._threshold.value = 0.5
    widget._min_diameter.value = 5.0
    in_nm = run_and_wait(widget)
    # Unknown pixel size (0): the same objects (the image is taken to be on the model's grid),
    # measured in pixels only.
    widget._pixel_size.value = 0.0
    unknown = run_and_wait(widget)
    assert len(calls) == 1
    assert unknown["label"].size > 0 and np.isnan(unknown["area_nm2"]).all()
    np.testing.assert_array_equal(unknown["area_px"], in_nm["area_px"])
    assert widget.status.endswith(" px.")
    later = (folder / "weights.pt").stat().st_mtime_ns + 10**9
    os.utime(folder / "weights.pt", ns=(later, later))
    run_and_wait(widget)
    assert len(calls) == 2

    # A folder that is not a model: the worker fails and the status says why.
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    widget._model_folder.value = empty
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert widget.status.startswith("Error") and "config.json" in widget.status
    # A missing folder is refused before any thread starts.
    widget._model_folder.value = tmp_path / "missing"
    with pytest.raises(ValueError, match="model folder"):
        widget.run()

    # The image menu follows the layer list.
    other = viewer.add_image(np.zeros((8, 8), np.float32), name="other")
    assert other in widget._image.choices
    viewer.layers.remove(other)
    assert other not in widget._image.choices
    assert all(isinstance(layer, napari.layers.Image) for layer in widget._image.choices)


@needs_viewer
def test_widget_rejects_rgb_layer(gui):
    from evseg.napari._widget import SegmentWidget

    viewer, _ = gui
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    widget = SegmentWidget(viewer)
    with pytest.raises(ValueError, match="2D grey"):
        widget.run()


@needs_viewer
def test_manifest_contributions_work_in_napari(gui, tmp_path, request):
    """Register the manifest (as the entry point would) and use the widget, sample and reader from napari."""
    mrcfile = pytest.importorskip("mrcfile")
    from npe2 import PluginManifest

    from evseg.napari._widget import SegmentWidget

    viewer, qtbot = gui
    plugins = request.getfixturevalue("npe2pm")  # napari's test plugin manager, reset after the test
    plugins.register(PluginManifest.from_file(MANIFEST))

    # napari builds the widget itself and passes it the viewer (behind its public-only proxy).
    _, widget = viewer.window.add_plugin_dock_widget("evseg", "Segment vesicles (evseg)")
    assert isinstance(widget, SegmentWidget)

    viewer.open_sample("evseg", "synthetic_sevs")
    image, truth = viewer.layers["synthetic sEVs"], viewer.layers["synthetic sEVs true labels"]
    np.testing.assert_allclose(image.scale, (PIXEL_NM, PIXEL_NM))
    assert truth.data.max() > 0
    assert widget._image.value.name == image.name
    assert widget._pixel_size.value == pytest.approx(PIXEL_NM)
    widget._model.value = "classical"
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert viewer.layers["synthetic sEVs labels"].data.max() == len(widget.measurements["label"]) > 0

    path = tmp_path / "grid.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((6, 8), np.float32))
        mrc.voxel_size = 20.0  # Å
    [layer] = viewer.open(path, plugin="evseg")
    np.testing.assert_allclose(layer.scale, (2.0, 2.0))
    assert str(layer.units[-1]) == "nanometer"
