"""Tests for evseg.models: UNet / FRUNet shapes, padding, residual blocks, config and training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evseg.models import FRUNet, UNet, build_model, list_models, model_config
from evseg.models.blocks import ConvBlock, Down, ResidualBlock, Up


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cls", [UNet, FRUNet])
@pytest.mark.parametrize(
    ("spatial_dims", "shape"),
    [(2, (33, 63)), (2, (32, 48)), (3, (5, 17, 20)), (3, (8, 16, 16))],
)
def test_output_shape_any_size(cls, spatial_dims, shape):
    net = cls(spatial_dims=spatial_dims, in_channels=2, out_channels=3, depth=2, base_filters=4)
    net.eval()
    with torch.no_grad():
        y = net(torch.randn(2, 2, *shape))
    assert y.shape == (2, 3, *shape)
    assert torch.isfinite(y).all()


def test_odd_size_pads_inside_forward_and_crops_back():
    torch.manual_seed(0)
    net = UNet(depth=2, base_filters=4).eval()
    x = torch.randn(1, 1, 33, 63)
    # divisor 4: 33 -> 36 (pad 1 before, 2 after), 63 -> 64 (pad 0 before, 1 after), reflect
    padded = F.pad(x, [0, 1, 1, 2], mode="reflect")
    with torch.no_grad():
        expected = net(padded)[:, :, 1:34, 0:63]
        got = net(x)
    torch.testing.assert_close(got, expected)


def test_tiny_axis_uses_replicate_padding():
    net = UNet(depth=3, base_filters=4).eval()  # divisor 8; an axis of 3 cannot reflect-pad 3
    with torch.no_grad():
        y = net(torch.randn(1, 1, 3, 16))
    assert y.shape == (1, 1, 3, 16)


def test_required_divisor_and_channels():
    net = UNet(depth=4, base_filters=32, max_filters=128)
    assert net.required_divisor == (16, 16)
    widths = [enc.body[0].out_channels if isinstance(enc, ResidualBlock) else enc[0].out_channels
              for enc in net.encoders]
    assert widths == [32, 64, 128, 128]
    assert net.bottleneck[0].out_channels == 128


def test_frunet_parameter_count_matches_paper():
    net = FRUNet()
    count = _n_params(net)

    # independent hand count: conv k×k = cin*cout*k*k + cout; residual block = 2 convs (+1×1)
    def conv(ci, co, k=3):
        return ci * co * k * k + co

    def res(ci, co):
        return conv(ci, co) + conv(co, co) + (conv(ci, co, 1) if ci != co else 0)

    f = [32, 64, 128, 256, 256]
    enc = res(1, 32) + res(32, 64) + res(64, 128) + res(128, 256) + res(256, 256)
    # decoder: nearest up-sampling + channel-keeping 3×3 conv, concat skip, residual block
    dec = sum(conv(f[i + 1], f[i + 1]) + res(f[i + 1] + f[i], f[i]) for i in range(4))
    assert count == enc + dec + conv(32, 1, 1) == 6_500_705
    assert 6.0e6 <= count <= 7.0e6


def test_frunet_defaults_are_the_published_configuration():
    cfg = FRUNet().config
    assert cfg == {
        "spatial_dims": 2, "in_channels": 1, "out_channels": 1, "depth": 4,
        "base_filters": 32, "max_filters": 256, "norm": None, "activation": "elu",
        "dropout": 0.1, "pool": "avg", "upsample": "nearest", "anisotropic_pool": None,
    }
    net = FRUNet()
    assert all(isinstance(b, ResidualBlock) for b in [*net.encoders, net.bottleneck, *net.decoders])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert isinstance(net.downs[0].pool, nn.AvgPool2d)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_residual_block_with_zero_body_is_its_shortcut(spatial_dims):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *(6,) * spatial_dims)
    for c_out in (5, 3):  # 1×1-conv shortcut, identity shortcut
        block = ResidualBlock(3, c_out, spatial_dims=spatial_dims, activation="elu").eval()
        with torch.no_grad():
            body = block.body(x)
            full = block(x)
            sc = block.shortcut
            shortcut = x if c_out == 3 else (F.conv2d if spatial_dims == 2 else F.conv3d)(
                x, sc.weight, sc.bias)
            torch.testing.assert_close(full, shortcut + body)
            for m in block.body.modules():
                if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                    m.weight.zero_()
                    m.bias.zero_()
            torch.testing.assert_close(block(x), shortcut)
        assert isinstance(block.shortcut, nn.Identity) == (c_out == 3)


def test_blocks_shapes_3d_anisotropic():
    x = torch.randn(1, 4, 3, 8, 8)
    assert ConvBlock(4, 6, spatial_dims=3)(x).shape == (1, 6, 3, 8, 8)
    down = Down((1, 2, 2), spatial_dims=3, pool="avg")(x)
    assert down.shape == (1, 4, 3, 4, 4)
    for mode in ("nearest", "transpose", "bilinear"):
        assert Up(4, 2, (1, 2, 2), spatial_dims=3, mode=mode)(down).shape == (1, 2, 3, 8, 8)


def test_anisotropic_pool_keeps_z():
    net = UNet(spatial_dims=3, depth=2, base_filters=4, anisotropic_pool=[(1, 2, 2), (1, 2, 2)])
    assert net.required_divisor == (1, 4, 4)
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = inputs[0].shape

    net.bottleneck.register_forward_hook(record)
    with torch.no_grad():
        y = net(torch.randn(1, 1, 3, 16, 12))
    assert seen["shape"][2:] == (3, 4, 3)  # z untouched, y and x divided by 4
    assert y.shape == (1, 1, 3, 16, 12)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("unet", {"depth": 2, "base_filters": 4, "norm": "batch", "upsample": "bilinear"}),
        ("frunet", {"spatial_dims": 3, "depth": 2, "base_filters": 4,
                    "anisotropic_pool": ((1, 2, 2), 2), "norm": "group"}),
    ],
)
def test_config_round_trip_through_json(arch, kwargs):
    torch.manual_seed(0)
    net = build_model(arch, **kwargs).eval()
    cfg = json.loads(json.dumps(model_config(net)))
    assert cfg["arch"] == arch
    clone = build_model(cfg["arch"], **cfg["kwargs"]).eval()
    assert type(clone) is type(net) and clone.config == net.config
    clone.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, *((4, 8, 8) if net.spatial_dims == 3 else (16, 16)))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), net(x))


def test_unknown_arch_lists_options():
    assert list_models() == ["frunet", "unet"]
    with pytest.raises(ValueError, match="Did you mean 'unet'") as err:
        build_model("unett")
    assert "'frunet'" in str(err.value)


def test_model_config_rejects_foreign_modules():
    with pytest.raises(TypeError, match="model"):
        model_config(nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "gelu"}, "Unknown activation"),
        ({"norm": "bach"}, "Did you mean 'batch'"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"spatial_dims": 3, "anisotropic_pool": [(1, 2, 2)]}, "one pooling factor per level"),
        ({"spatial_dims": 3, "depth": 1, "anisotropic_pool": [(2, 2)]}, "anisotropic_pool"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_wrong_input_shape_names_expected_layout():
    net = UNet(depth=2, base_filters=4, in_channels=2)
    with pytest.raises(ValueError, match=r"expects input \(B, 2, Y, X\)"):
        net(torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize("cls", [UNet, FRUNet])
def test_channels_last_bf16_autocast_path(cls):
    torch.manual_seed(0)
    net = cls(depth=2, base_filters=8).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = net(x)
        net = net.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        fp32_cl = net(xc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = net(xc)
    # no op in the network falls back to NCHW, and the results agree
    assert fp32_cl.is_contiguous(memory_format=torch.channels_last)
    assert bf16.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fp32_cl, ref, rtol=1e-4, atol=1e-4)
    assert (bf16.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-2


@pytest.mark.parametrize(("cls", "base"), [(UNet, 8), (FRUNet, 4)])
def test_tiny_model_overfits_one_image(cls, base):
    torch.manual_seed(0)
    yy, xx = np.mgrid[:32, :32]
    mask = (((yy - 12) ** 2 + (xx - 18) ** 2) < 36) | (((yy - 24) ** 2 + (xx - 8) ** 2) < 16)
    img = 1.0 - 0.6 * mask + 0.1 * np.random.default_rng(0).normal(size=mask.shape)
    x = torch.from_numpy(img.astype(np.float32))[None, None]
    y = torch.from_numpy(mask.astype(np.float32))[None, None]
    net = cls(depth=2, base_filters=base, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5
