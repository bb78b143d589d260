"""Backend selection and the ONNX Runtime predictor: same probabilities as PyTorch fp32, cached export."""

import sys

import numpy as np
import pytest
import torch

from evseg.export import MissingExtraError
from evseg.models.store import create_model
from evseg.predict.backends import (
    BACKENDS,
    available_backends,
    make_predictor,
    onnx_cache_path,
    resolve_backend,
    weights_sha256,
)
from evseg.predict.pipeline import PredictOptions, segment_image
from evseg.predict.tiling import bf16_supported, tiled_predict, torch_predictor

HAS_ONNX = "onnx" in available_backends()
HAS_OPENVINO = "openvino" in available_backends()
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason='needs pip install "evseg[onnx]"')
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "evseg[openvino]"')


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_cache")


def _torch_fp32(model, batch):
    with torch.no_grad():
        return torch.sigmoid(model.network.eval()(torch.from_numpy(batch))).numpy()


def test_backend_names_and_auto_resolution(monkeypatch):
    monkeypatch.delenv("EVSEG_BACKEND")
    assert BACKENDS == ("auto", "torch", "onnx", "openvino")
    assert available_backends()[0] == "torch"
    assert resolve_backend("torch", precision="bf16") == "torch"
    fast = "openvino" if HAS_OPENVINO else None
    # OpenVINO when installed; else bf16 exists in PyTorch only, and fp32 goes to ONNX Runtime if installed
    assert resolve_backend("auto", precision="bf16") == (fast or "torch")
    assert resolve_backend("auto", precision="fp32") == (fast or ("onnx" if HAS_ONNX else "torch"))
    assert resolve_backend("auto", precision="auto") == (
        fast or ("onnx" if HAS_ONNX and not bf16_supported() else "torch")
    )
    monkeypatch.setenv("EVSEG_BACKEND", "torch")
    assert resolve_backend("auto", precision="fp32") == "torch"
    assert resolve_backend("onnx" if HAS_ONNX else "torch", precision="fp32") == ("onnx" if HAS_ONNX else "torch")
    monkeypatch.setenv("EVSEG_BACKEND", "tourch")
    with pytest.raises(ValueError, match="Did you mean 'torch'"):
        resolve_backend("auto")
    with pytest.raises(ValueError, match="Did you mean 'onnx'"):
        resolve_backend("onx")
    with pytest.raises(ValueError, match="Did you mean 'onnx'"):
        PredictOptions(backend="onx")
    assert PredictOptions().backend == "auto"


@needs_onnx
def test_onnx_backend_refuses_bf16():
    with pytest.raises(ValueError, match="precision='bf16' is not available with backend='onnx'"):
        resolve_backend("onnx", precision="bf16")


def test_missing_runtimes_give_the_extra_or_fall_back(monkeypatch):
    monkeypatch.delenv("EVSEG_BACKEND")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert available_backends() == ("torch",)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(MissingExtraError, match=r'pip install "evseg\[onnx\]"'):
        resolve_backend("onnx")
    with pytest.raises(MissingExtraError, match=r'pip install "evseg\[openvino\]"'):
        resolve_backend("openvino")


@needs_onnx
@pytest.mark.parametrize("shape", [(2, 1, 32, 48), (1, 1, 30, 50), (1, 1, 5, 1)])
def test_onnx_predictor_equals_torch_fp32_for_any_size(tiny_model, cache_dir, shape):
    # (30, 50) is not a multiple of the divisor 4: padded with reflection like the network does;
    # (5, 1) cannot be reflected (1 pixel wide): edge padding, as the network's 'replicate'.
    predictor = make_predictor(tiny_model, backend="onnx", precision="auto", cache_dir=cache_dir)
    batch = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    got = predictor(batch)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, _torch_fp32(tiny_model, batch), atol=1e-4, rtol=0)


@needs_onnx
def test_tiled_onnx_equals_tiled_torch_fp32(tiny_model, cache_dir):
    image = np.random.default_rng(4).normal(size=(1, 70, 90)).astype(np.float32)
    kw = dict(tile_shape=32, overlap=12, halo=4, blend="gaussian", batch_size=3)
    onnx_out = tiled_predict(image, make_predictor(tiny_model, backend="onnx", cache_dir=cache_dir), **kw)
    torch_out = tiled_predict(image, torch_predictor(tiny_model.network, precision="fp32"), **kw)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4, rtol=0)


@needs_onnx
def test_segment_image_backends_agree(tiny_model, cache_dir, monkeypatch):
    from evseg.data.synthetic import synthetic_tem_image

    image = synthetic_tem_image((96, 80), pixel_size_nm=1.56, rng=2).image
    monkeypatch.setattr("evseg.predict.backends._default_cache_dir", lambda: cache_dir)
    results = {
        backend: segment_image(tiny_model, image, pixel_size_nm=1.56,
                               options=PredictOptions(backend=backend, precision="fp32", tile_size=64, overlap=16))
        for backend in ("torch", "onnx")
    }
    np.testing.assert_allclose(results["onnx"].probability, results["torch"].probability, atol=1e-4, rtol=0)


@needs_onnx
def test_onnx_export_is_cached_by_weights(tiny_model, cache_dir, monkeypatch):
    first = onnx_cache_path(tiny_model, cache_dir=cache_dir)

    def fail(*args, **kwargs):
        raise AssertionError("exported again although the cached file fits")

    monkeypatch.setattr("evseg.export.onnx.export_onnx", fail)
    assert onnx_cache_path(tiny_model, cache_dir=cache_dir) == first

    other = create_model("frunet", {"base_filters": 4, "depth": 2}, pixel_size_nm=1.56)
    other.network.load_state_dict(tiny_model.network.state_dict())
    assert weights_sha256(other) == weights_sha256(tiny_model)
    with torch.no_grad():
        other.network.head.bias.add_(1.0)
    assert weights_sha256(other) != weights_sha256(tiny_model)
    with pytest.raises(AssertionError, match="exported again"):
        onnx_cache_path(other, cache_dir=cache_dir)  # new weights need a new export


@needs_openvino
@pytest.mark.parametrize("shape", [(2, 1, 32, 48), (1, 1, 30, 50)])
def test_openvino_fp32_equals_torch_fp32_for_any_size(tiny_model, cache_dir, shape):
    predictor = make_predictor(tiny_model, backend="openvino", precision="fp32", cache_dir=cache_dir)
    batch = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    got = predictor(batch)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, _torch_fp32(tiny_model, batch), atol=1e-4, rtol=0)


@needs_openvino
@pytest.mark.skipif(not bf16_supported(), reason="the CPU has no native bf16")
def test_openvino_bf16_is_close_to_fp32(tiny_model, cache_dir):
    batch = np.random.default_rng(6).normal(size=(1, 1, 64, 64)).astype(np.float32)
    got = make_predictor(tiny_model, backend="openvino", precision="bf16", cache_dir=cache_dir)(batch)
    reference = _torch_fp32(tiny_model, batch)
    assert 0 < np.abs(got - reference).max() < 0.05  # really bf16 (not equal), and close
