"""ONNX export: dynamic batch/size graph equal to PyTorch, metadata, logits, missing-extra errors."""

import json
import sys

import numpy as np
import pytest
import torch

from evseg.export import MissingExtraError, export_model
from evseg.models.store import create_model, save_model

pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from evseg.export.onnx import INPUT_NAME, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)


@pytest.fixture(scope="module")
def onnx_file(tiny_model, tmp_path_factory):
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def _torch(network, x, *, sigmoid):
    with torch.no_grad():
        y = network.eval()(torch.from_numpy(x))
    return (torch.sigmoid(y) if sigmoid else y).numpy()


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (3, 1, 8, 44), (2, 1, 60, 4)])
def test_onnx_probabilities_match_torch_for_any_batch_and_divisible_size(tiny_model, onnx_file, shape):
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = session.run(None, {INPUT_NAME: x})[0]
    want = _torch(tiny_model.network, x, sigmoid=True)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_onnx_graph_declares_divisible_dynamic_sizes_and_metadata(tiny_model, onnx_file):
    proto = onnx.load(str(onnx_file))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "4*y_blocks", "4*x_blocks"]  # depth 2 -> divisor 4
    assert [o.name for o in proto.graph.output] == ["probability"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["required_divisor"]) == [4, 4]
    assert json.loads(meta["pixel_size_nm"]) == 1.56
    assert json.loads(meta["output_channels"]) == ["foreground"]
    assert meta["output"] == "sigmoid probabilities"
    assert json.loads(meta["arch_kwargs"]) == tiny_model.config["arch_kwargs"]


def test_export_model_onnx_logits_from_a_model_folder(tiny_model, tmp_path):
    folder = save_model(tiny_model, tmp_path / "model")
    path = export_model(folder, tmp_path / "logits.onnx", format="onnx", activation=None)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits"]
    x = np.random.default_rng(1).normal(size=(2, 1, 12, 20)).astype(np.float32)
    got = session.run(None, {INPUT_NAME: x})[0]
    np.testing.assert_allclose(got, _torch(tiny_model.network, x, sigmoid=False), atol=1e-4, rtol=0)
    assert got.min() < 0.0 or got.max() > 1.0  # really logits, not probabilities


@pytest.mark.parametrize("missing", ["onnxscript", "onnx", "onnxruntime"])
def test_missing_onnx_extra_names_the_pip_extra(tiny_model, tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(MissingExtraError, match=r'pip install "evseg\[onnx\]"') as info:
        export_onnx(tiny_model, tmp_path / "x.onnx")
    assert missing in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, RuntimeError)
    assert not (tmp_path / "x.onnx").exists()


def test_bad_activation_is_rejected_before_exporting(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'sigmoid'"):
        export_onnx(tiny_model, tmp_path / "x.onnx", activation="sigmoud")
