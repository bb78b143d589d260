"""Tests of running a predict job on a dask.distributed cluster (evseg.predict.distributed)."""

import socket
import sys

import numpy as np
import pytest
import tifffile
import torch
from skimage.draw import disk

import evseg.predict.distributed as dist
from evseg.cli import main
from evseg.io import write_tiff
from evseg.models.store import create_model, save_model
from evseg.predict.batch import predict_files
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
    write_tiff(folder / "b.tif", _disc_image(12, [(16, 40), (46, 20), (46, 50)]), pixel_size_nm=2.0)
    return folder


@pytest.fixture
def closed_address():
    """A local tcp address where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, image_dir, closed_address, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "out"
    with pytest.raises(ConnectionError, match="Cannot reach the dask scheduler.*Nothing was written"):
        predict_files([image_dir], out, "classical", scheduler=closed_address)
    assert not out.exists()


def test_cli_unreachable_scheduler(tmp_path, image_dir, closed_address, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "out"
    assert main(["predict", str(image_dir), "--out", str(out), "--model", "classical",
                 "--dask-scheduler", closed_address, "-q"]) == 1
    assert closed_address in capsys.readouterr().err
    assert not out.exists()


def test_missing_dask_names_the_extra(tmp_path, image_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    out = tmp_path / "out"
    with pytest.raises(ImportError, match=r"evseg\[dask\]"):
        predict_files([image_dir], out, "classical", scheduler="tcp://127.0.0.1:8786")
    assert main(["predict", str(image_dir), "--out", str(out), "--model", "classical",
                 "--dask-scheduler", "tcp://127.0.0.1:8786", "-q"]) == 1
    assert "evseg[dask]" in capsys.readouterr().err
    assert not out.exists()


def test_local_cluster_matches_single_machine(tmp_path, image_dir):
    distributed = pytest.importorskip("distributed")
    torch.manual_seed(0)
    model_dir = save_model(create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=2.0),
                           tmp_path / "tiny")
    (image_dir / "c_broken.tif").write_bytes(b"not a TIFF")
    options = PredictOptions(precision="fp32", tile_size=32, overlap=8)
    local = predict_files([image_dir], tmp_path / "local", model_dir, options=options, workers=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = predict_files([image_dir], tmp_path / "dask", model_dir, options=options, progress=False,
                               scheduler=cluster.scheduler_address)
    assert [o.path.name for o in remote] == ["a.tif", "b.tif", "c_broken.tif"]
    assert remote[2].summary is None and "c_broken.tif" in remote[2].error and "after 3 attempts" in remote[2].error
    for name in ("measurements.csv", "summary.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    for stem in ("a", "b"):  # written by the workers
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "dask" / f"{stem}_labels.tif"),
                                      tifffile.imread(tmp_path / "local" / f"{stem}_labels.tif"))
    report = (tmp_path / "dask" / "report.html").read_text()
    assert "dask cluster at tcp://" in report and "c_broken.tif" in report
    assert [o.summary["count"] for o in remote[:2]] == [o.summary["count"] for o in local[:2]]
