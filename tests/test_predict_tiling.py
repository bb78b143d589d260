"""Tests for evseg.predict.tiling: tiled_predict, torch_predictor and bf16_supported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evseg.models import FRUNet, UNet
from evseg.predict import bf16_supported, tiled_predict, torch_predictor
from evseg.predict import tiling as tiling_mod

BLENDS = ["gaussian", "linear", "constant"]


def affine(batch: np.ndarray) -> np.ndarray:
    """Pixel-wise predictor with a known answer: x * 2 + 1."""
    return batch * 2 + 1


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "batch_size"),
    [
        ((2, 511, 237), (128, 96), 32, 3),
        ((2, 511, 237), 100, 0.3, 1),
        ((1, 33, 63, 47), (16, 32, 24), (4, 8, 6), 4),
    ],
)
def test_pixelwise_predictor_is_reproduced_exactly(rng, blend, shape, tile, overlap, batch_size):
    image = rng.normal(size=shape).astype(np.float32)
    out = tiled_predict(
        image, affine, tile_shape=tile, overlap=overlap, blend=blend, batch_size=batch_size
    )
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out, image * 2 + 1, rtol=1e-5, atol=1e-5)


def test_tiles_form_a_regular_grid_with_last_tile_at_the_end():
    # the image stores its own coordinates, so each tile tells where it came from
    yy, xx = np.mgrid[:100, :70].astype(np.float32)
    image = np.stack([yy, xx])
    starts = []

    def record(batch):
        starts.extend((int(t[0, 0, 0]), int(t[1, 0, 0])) for t in batch)
        return batch[:, :1]

    tiled_predict(image, record, tile_shape=(40, 32), overlap=(10, 8), batch_size=2)
    ys = sorted({s[0] for s in starts})
    xs = sorted({s[1] for s in starts})
    assert ys == [0, 30, 60]  # step 40 - 10 = 30; last start 100 - 40 = 60
    assert xs == [0, 24, 38]  # step 32 - 8 = 24; last start 70 - 32 = 38
    assert len(starts) == 9


@pytest.mark.parametrize("blend", BLENDS)
def test_matches_untiled_unet_with_halo(rng, blend):
    """Exact only with halo >= the receptive-field radius and tile starts on the pooling grid.

    Here the divisor is 4 and tile starts are multiples of 16; pixels within ``halo`` of an inner
    tile border (where zero padding of the tile differs from the real neighbourhood) get no weight.
    """
    torch.manual_seed(0)
    net = UNet(depth=2, base_filters=4).eval()
    assert net.halo == (23, 23)
    image = rng.normal(size=(1, 128, 96)).astype(np.float32)
    predictor = torch_predictor(net, activation=None, channels_last=False)
    full = predictor(image[None])[0]
    tiled = tiled_predict(
        image, predictor, tile_shape=64, overlap=48, halo=net.halo, blend=blend, batch_size=2
    )
    np.testing.assert_allclose(tiled, full, atol=1e-4, rtol=0)


def test_without_halo_tile_borders_leak_into_the_result(rng):
    # documents why `halo` exists: blending alone does not hide invalid tile borders
    torch.manual_seed(0)
    net = UNet(depth=2, base_filters=4).eval()
    image = rng.normal(size=(1, 128, 96)).astype(np.float32)
    predictor = torch_predictor(net, activation=None, channels_last=False)
    full = predictor(image[None])[0]
    tiled = tiled_predict(image, predictor, tile_shape=64, overlap=48)
    assert np.abs(tiled - full).max() > 1e-2


def test_tile_larger_than_image_is_shrunk(rng):
    image = rng.normal(size=(1, 20, 30)).astype(np.float32)
    shapes = []

    def record(batch):
        shapes.append(batch.shape)
        return affine(batch)

    out = tiled_predict(image, record, tile_shape=64, overlap=16)
    assert shapes == [(1, 1, 20, 30)]
    np.testing.assert_allclose(out, image * 2 + 1, rtol=1e-6)


def test_fixed_tile_pads_small_images_and_crops_back(rng):
    image = rng.normal(size=(1, 20, 100)).astype(np.float32)
    shapes = set()

    def fixed(batch):
        shapes.add(batch.shape[2:])
        assert batch.shape[2:] == (32, 32)
        return affine(batch)

    out = tiled_predict(image, fixed, tile_shape=32, overlap=8, fixed_tile=True)
    assert shapes == {(32, 32)}
    assert out.shape == image.shape
    np.testing.assert_allclose(out, image * 2 + 1, rtol=1e-6)


def test_out_channels_from_predictor(rng):
    image = rng.normal(size=(1, 40, 40)).astype(np.float32)
    out = tiled_predict(image, lambda b: np.concatenate([b, -b, b * b], axis=1), tile_shape=16,
                        overlap=4, out_channels=3)
    np.testing.assert_allclose(out, np.concatenate([image, -image, image**2]), atol=1e-5)


@pytest.mark.parametrize("overlap", [32, 40, -1, 1.0, 1.5, "8", True])
def test_bad_overlap_raises(overlap):
    with pytest.raises(ValueError, match="overlap must be >= 0 and < tile size, got"):
        tiled_predict(np.zeros((1, 64, 64), np.float32), affine, tile_shape=32, overlap=overlap)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"halo": 9}, ValueError, "2 \\* halo <= overlap"),
        ({"tile_shape": 0}, ValueError, "tile_shape"),
        ({"tile_shape": (16, 16, 16)}, ValueError, "one per spatial axis"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"blend": "gauss"}, ValueError, "Did you mean 'gaussian'"),
        ({"out_channels": 2}, ValueError, "out_channels=2"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    args = {"tile_shape": 16, "overlap": 16 // 2 + 1, **kwargs}
    with pytest.raises(error, match=match):
        tiled_predict(np.zeros((1, 40, 40), np.float32), affine, **args)


def test_bad_image_and_predictor_output_raise():
    with pytest.raises(ValueError, match=r"image\[None\]"):
        tiled_predict(np.zeros((40, 40)), affine, tile_shape=16, overlap=4)
    with pytest.raises(ValueError, match="NaN"):
        tiled_predict(np.full((1, 40, 40), np.nan), affine, tile_shape=16, overlap=4)
    with pytest.raises(ValueError, match="predictor` returned shape"):
        tiled_predict(np.zeros((1, 40, 40)), lambda b: b[:, :, :8], tile_shape=16, overlap=4)


def test_gaussian_window_sigma_and_floor():
    w = tiling_mod._window_1d("gaussian", 65, 16, 0, True, True)
    assert w[32] == 1.0
    assert w[32 + 8] == pytest.approx(np.exp(-0.5 * (8 / (65 / 8)) ** 2))
    assert w.min() == pytest.approx(1e-3)  # exp(-8) at the border, clipped up
    lin = tiling_mod._window_1d("linear", 20, 4, 0, True, True)
    np.testing.assert_allclose(lin[:5], [0.2, 0.4, 0.6, 0.8, 1.0])
    halo = tiling_mod._window_1d("constant", 20, 8, 3, True, False)
    assert (halo[:3] == 1).all() and (halo[-3:] == 0).all()


def test_progress_bar_runs(rng, capsys):
    image = rng.normal(size=(1, 40, 40)).astype(np.float32)
    out = tiled_predict(image, affine, tile_shape=16, overlap=4, progress=True)
    np.testing.assert_allclose(out, image * 2 + 1, rtol=1e-6)
    assert "tile" in capsys.readouterr().err


def test_torch_predictor_sigmoid_bf16_and_3d(rng):
    torch.manual_seed(0)
    net = FRUNet(depth=2, base_filters=4)
    x = rng.normal(size=(2, 1, 32, 32)).astype(np.float32)
    fp32 = torch_predictor(net)(x)
    assert not net.training  # switched to eval mode
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(fp32, expected, atol=1e-5)
    assert fp32.dtype == np.float32 and fp32.flags.c_contiguous
    bf16 = torch_predictor(net, precision="bf16")(x)
    assert np.abs(bf16 - fp32).max() < 0.02
    logits = torch_predictor(net, activation=None, channels_last=False)(x)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), fp32, atol=1e-5)

    net3 = UNet(spatial_dims=3, out_channels=3, depth=1, base_filters=4)
    probs = torch_predictor(net3, activation="softmax")(np.zeros((1, 1, 4, 8, 8), np.float32))
    assert probs.shape == (1, 3, 4, 8, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="Did you mean 'bf16'"):
        torch_predictor(net, precision="bf61")


def test_bf16_supported_paths(monkeypatch):
    assert isinstance(bf16_supported(), bool)
    monkeypatch.setattr(tiling_mod, "_mkldnn_bf16", lambda: None)  # torch cannot tell: use flags
    for flags, expected in [
        ({"avx2", "fma"}, False),
        ({"avx512f"}, False),
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_bf16", "amx_tile"}, True),
        (set(), False),
    ]:
        monkeypatch.setattr(tiling_mod, "_cpu_flags", lambda flags=flags: flags)
        assert bf16_supported() is expected
    monkeypatch.setattr(tiling_mod, "_mkldnn_bf16", lambda: True)  # oneDNN's answer wins
    assert bf16_supported() is True
