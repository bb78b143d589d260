"""TorchScript export (traced): equal to eager PyTorch for any batch and divisible size; CLI export."""

import sys

import numpy as np
import pytest
import torch

from evseg.cli import main
from evseg.export import EXPORT_FORMATS, export_model
from evseg.export.torchscript import export_torchscript, load_torchscript
from evseg.models.store import create_model, save_model


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("unet", {"base_filters": 4, "depth": 2, "norm": "batch"}, pixel_size_nm=None)


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_torchscript_matches_eager_torch(tiny_model, tmp_path, activation):
    path = export_torchscript(tiny_model, tmp_path / "net.pt", activation=activation)
    module = load_torchscript(path)
    network = tiny_model.network.eval()
    for shape in [(1, 1, 16, 16), (3, 1, 8, 28)]:  # the trace example was (1, 1, 8, 8)
        x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype(np.float32))
        with torch.no_grad():
            want = network(x)
            want = torch.sigmoid(want) if activation == "sigmoid" else want
            got = module(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_cli_export_torchscript_from_a_model_folder(tiny_model, tmp_path, capsys):
    folder = save_model(tiny_model, tmp_path / "model")
    out = tmp_path / "exported.pt"
    assert main(["export", str(folder), "--format", "torchscript", "--out", str(out), "-q"]) == 0
    module = load_torchscript(out)
    x = torch.rand(1, 1, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(module(x), torch.sigmoid(tiny_model.network.eval()(x)), atol=1e-5, rtol=0)
    assert str(out) in capsys.readouterr().out


def test_cli_export_reports_a_missing_extra_as_an_error(tiny_model, tmp_path, capsys, monkeypatch):
    folder = save_model(tiny_model, tmp_path / "model")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert main(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "-q"]) == 1
    assert 'pip install "evseg[onnx]"' in capsys.readouterr().err


def test_export_model_rejects_unknown_formats(tiny_model, tmp_path):
    assert EXPORT_FORMATS == ("bioimageio", "onnx", "torchscript")
    with pytest.raises(ValueError, match="Did you mean 'torchscript'"):
        export_model(tiny_model, tmp_path / "x", format="torchscrip")
