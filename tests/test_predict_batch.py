"""Tests of batch prediction over files: process pool vs single process, failures, warnings, report."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from skimage.draw import disk

import evseg.predict.batch as batch
from evseg.cli import main
from evseg.io import write_tiff
from evseg.models.store import create_model, save_model
from evseg.predict.batch import pack_model, predict_files, resolve_workers, worker_model
from evseg.predict.pipeline import PredictOptions


def _disc_image(radius_px, centres, shape=(64, 64)):
    labels = np.zeros(shape, np.int32)
    for k, centre in enumerate(centres, start=1):
        rr, cc = disk(centre, radius_px, shape=shape)
        labels[rr, cc] = k
    return np.where(labels > 0, 60, 200).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_tiff(folder / "a.tif", _disc_image(10, [(20, 20), (44, 44)]), pixel_size_nm=2.0)
    write_tiff(folder / "b.tif", _disc_image(8, [(32, 32)]), pixel_size_nm=2.0)
    (folder / "c_broken.tif").write_bytes(b"this is not a TIFF file")
    write_tiff(folder / "d.tif", _disc_image(12, [(16, 40), (46, 20), (46, 50)]), pixel_size_nm=2.0)
    return folder


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=2.0)
    save_model(model, tmp_path / "tiny")
    return tmp_path / "tiny"


def test_pool_gives_the_single_process_results_in_input_order(tmp_path, image_dir, tiny_model):
    options = PredictOptions(precision="fp32", tile_size=32, overlap=8)
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        runs[workers] = predict_files([image_dir], out, tiny_model, options=options, workers=workers, progress=False)
    for outcomes in runs.values():
        assert [o.path.name for o in outcomes] == ["a.tif", "b.tif", "c_broken.tif", "d.tif"]
        broken = outcomes[2]
        assert broken.summary is None and "c_broken.tif" in broken.error
        assert all(o.error is None for k, o in enumerate(outcomes) if k != 2)
    one, two = tmp_path / "out1", tmp_path / "out2"
    for name in ("measurements.csv", "summary.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    summary = (two / "summary.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in summary[1:]] == ["a.tif", "b.tif", "d.tif"]
    for stem in ("a", "b", "d"):
        np.testing.assert_array_equal(tifffile.imread(one / f"{stem}_labels.tif"),
                                      tifffile.imread(two / f"{stem}_labels.tif"))
        np.testing.assert_allclose(tifffile.imread(one / f"{stem}_prob.tif"),
                                   tifffile.imread(two / f"{stem}_prob.tif"), atol=1e-6)
    report = (two / "report.html").read_text()
    assert "c_broken.tif" in report and 'id="failed"' in report and "tiny" in report
    assert [o.thumbnail[:2] for o in runs[2] if o.error is None] == [b"\xff\xd8"] * 3  # JPEGs from the workers


@pytest.mark.parametrize(("cores", "n_images", "workers", "expected"), [
    (1, 10, None, 1),   # single core: in-process
    (4, 10, None, 4),   # one per core
    (4, 2, None, 2),    # never more than images
    (4, 1, None, 1),
    (4, 10, 1, 1),      # explicit in-process
    (2, 10, 3, 3),      # an explicit count is honoured
    (8, 2, 6, 2),
])
def test_resolve_workers(monkeypatch, cores, n_images, workers, expected):
    monkeypatch.setattr(batch, "available_cores", lambda: cores)
    assert resolve_workers(workers, n_images) == expected


@pytest.mark.parametrize("workers", [0, -2, 1.5, True])
def test_bad_worker_counts_are_rejected(tmp_path, image_dir, workers):
    with pytest.raises(ValueError, match="workers"):
        predict_files([image_dir], tmp_path / "out", "classical", workers=workers)
    assert not (tmp_path / "out").exists()


def test_workers_and_scheduler_are_exclusive(tmp_path, image_dir):
    with pytest.raises(ValueError, match="not both"):
        predict_files([image_dir], tmp_path / "out", "classical", workers=2, scheduler="tcp://127.0.0.1:1")


def test_packed_model_rebuilds_the_same_network(tiny_model):
    model = batch.load_segmenter(tiny_model)
    packed = pack_model(model)
    batch._WORKER_MODELS.clear()
    rebuilt = worker_model(packed)
    assert rebuilt is not model and rebuilt.config == model.config and rebuilt.path == model.path
    for (name, a), (_, b) in zip(model.network.state_dict().items(), rebuilt.network.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert worker_model(packed) is rebuilt  # built once per process
    assert worker_model(pack_model("classical")) == "classical"
    batch._WORKER_MODELS.clear()


def test_warnings_are_reported_per_image_and_reissued(tmp_path):
    Image.fromarray(_disc_image(20, [(32, 32)], shape=(96, 96))).save(tmp_path / "nocal.png")
    with pytest.warns(UserWarning, match="no pixel size"):
        outcomes = predict_files([tmp_path / "nocal.png"], tmp_path / "out", "classical", workers=1, progress=False)
    (outcome,) = outcomes
    assert outcome.error is None and outcome.pixel_size_nm is None
    assert len(outcome.warnings) == 1 and "nocal.png" in outcome.warnings[0]
    report = (tmp_path / "out" / "report.html").read_text()
    assert "no pixel size in the file" in report and "mean diameter (px)" in report


def test_cli_writes_report_unless_told_not_to(tmp_path, image_dir, capsys):
    (image_dir / "c_broken.tif").unlink()
    out = tmp_path / "out"
    assert main(["predict", str(image_dir), "--out", str(out), "--model", "classical", "--workers", "1", "-q"]) == 0
    report = (out / "report.html").read_text()
    assert "evseg predict" in report and "--workers 1" in report and "classical" in report
    assert "report.html" in capsys.readouterr().out
    out2 = tmp_path / "out2"
    assert main(["predict", str(image_dir), "--out", str(out2), "--model", "classical", "--workers", "1",
                 "--no-report", "-q"]) == 0
    assert (out2 / "summary.csv").is_file() and not (out2 / "report.html").exists()
