"""Building blocks of the U-Nets (convolution, residual, down and up blocks) for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from evseg._registry import look_up_option

NORMS = ("batch", "instance", "group")  # or None
ACTIVATIONS = ("elu", "relu", "leaky_relu")
POOLS = ("max", "avg")
UPSAMPLES = ("nearest", "transpose", "bilinear")

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "POOLS",
    "UPSAMPLES",
    "ConvBlock",
    "Down",
    "ResidualBlock",
    "Up",
    "make_activation",
    "make_conv",
    "look_up_norm",
    "make_norm",
]


def look_up_norm(norm: str | None) -> str | None:
    """Return ``norm`` if it is ``None`` or one of :data:`NORMS`, else raise a did-you-mean error."""
    return None if norm is None else look_up_option(norm, NORMS, what="normalisation (or None)")


def _check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    return int(spatial_dims)


def make_conv(
    in_channels: int, out_channels: int, *, spatial_dims: int, kernel_size: int = 3
) -> nn.Module:
    """Return a ``'same'``-padded convolution (``nn.Conv2d`` or ``nn.Conv3d``) with a bias.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    spatial_dims : {2, 3}
        Number of spatial axes.
    kernel_size : int
        Odd kernel size, the same along every axis (1 or 3 in the U-Nets).

    Returns
    -------
    nn.Module
        The convolution; its weights use He (Kaiming) normal initialisation, biases start at 0.
    """
    cls = nn.Conv2d if _check_spatial_dims(spatial_dims) == 2 else nn.Conv3d
    conv = cls(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def make_norm(norm: str | None, channels: int, *, spatial_dims: int) -> nn.Module:
    """Return the normalisation layer named ``norm`` (``nn.Identity`` for ``None``).

    Parameters
    ----------
    norm : {None, "batch", "instance", "group"}
        ``"group"`` uses up to 8 groups (the largest divisor of ``channels`` that is <= 8).
    channels : int
        Number of channels normalised.
    spatial_dims : {2, 3}
        Number of spatial axes.

    Returns
    -------
    nn.Module
    """
    norm = look_up_norm(norm)
    spatial_dims = _check_spatial_dims(spatial_dims)
    if norm is None:
        return nn.Identity()
    if norm == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if norm == "instance":
        cls = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return cls(channels, affine=True)
    groups = max(g for g in range(1, 9) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def make_activation(activation: str) -> nn.Module:
    """Return the in-place activation ``"elu"``, ``"relu"`` or ``"leaky_relu"`` (slope 0.01).

    All three map 0 to 0, which the residual-block identity relies on (zero residual branch ->
    output equals the shortcut).
    """
    activation = look_up_option(activation, ACTIVATIONS, what="activation")
    if activation == "elu":
        return nn.ELU(inplace=True)
    if activation == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(0.01, inplace=True)


def _conv_norm_act(
    in_channels: int, out_channels: int, *, spatial_dims: int, norm: str | None, activation: str
) -> list[nn.Module]:
    return [
        make_conv(in_channels, out_channels, spatial_dims=spatial_dims),
        make_norm(norm, out_channels, spatial_dims=spatial_dims),
        make_activation(activation),
    ]


class ConvBlock(nn.Sequential):
    """Two 3×3 (×3) convolutions, each followed by normalisation and activation.

    ``conv -> norm -> act -> dropout -> conv -> norm -> act``; the spatial size is unchanged.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    spatial_dims : {2, 3}
        Number of spatial axes.
    norm : {None, "batch", "instance", "group"}
        Normalisation after each convolution.
    activation : {"elu", "relu", "leaky_relu"}
        Activation after each normalisation.
    dropout : float
        Element-wise dropout probability between the two convolutions (0 disables it).

    Notes
    -----
    Input ``(B, in_channels, *spatial)`` -> output ``(B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        spatial_dims: int = 2,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        kw = dict(spatial_dims=spatial_dims, norm=norm, activation=activation)
        layers = _conv_norm_act(in_channels, out_channels, **kw)
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += _conv_norm_act(out_channels, out_channels, **kw)
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Residual block ``y = shortcut(x) + F(x)`` with ``F`` a :class:`ConvBlock`.

    The shortcut is the identity when ``in_channels == out_channels`` and a 1×1 (×1) convolution
    otherwise. There is no activation after the sum, so with ``F`` zeroed the block is exactly its
    shortcut. At initialisation the 1×1 shortcut has unit (linear) gain and the last convolution
    of ``F`` is scaled by 0.5, so that activations do not grow along the chain of blocks.

    Parameters
    ----------
    in_channels, out_channels, spatial_dims, norm, activation, dropout
        As for :class:`ConvBlock` (they configure ``F``).

    Notes
    -----
    Input ``(B, in_channels, *spatial)`` -> output ``(B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        spatial_dims: int = 2,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.body = ConvBlock(
            in_channels,
            out_channels,
            spatial_dims=spatial_dims,
            norm=norm,
            activation=activation,
            dropout=dropout,
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = make_conv(
                in_channels, out_channels, spatial_dims=spatial_dims, kernel_size=1
            )
            nn.init.kaiming_normal_(self.shortcut.weight, nonlinearity="linear")
        # Keep activations from growing block after block (shortcut + body): halve the last
        # convolution of the body at initialisation (logit std ~1.7 instead of ~12 for FRU-Net).
        last_conv = [m for m in self.body if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1]
        with torch.no_grad():
            last_conv.weight.mul_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``shortcut(x) + F(x)``, shape ``(B, out_channels, *spatial)``."""
        return self.shortcut(x) + self.body(x)


def _as_factor(factor: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    if isinstance(factor, int):
        return (factor,) * spatial_dims
    return tuple(int(f) for f in factor)


class Down(nn.Module):
    """Down-sampling by pooling with kernel = stride = ``factor`` (no learned weights).

    Parameters
    ----------
    factor : int or tuple of int
        Pooling factor per spatial axis, e.g. ``2`` or ``(1, 2, 2)`` (keep z, halve y and x).
    spatial_dims : {2, 3}
        Number of spatial axes.
    pool : {"max", "avg"}
        Max or average pooling.

    Notes
    -----
    ``(B, C, *spatial)`` -> ``(B, C, *(s // f))``; sizes must be divisible by the factors (the
    U-Nets pad their input so that they are).
    """

    def __init__(
        self, factor: int | Sequence[int] = 2, *, spatial_dims: int = 2, pool: str = "max"
    ) -> None:
        super().__init__()
        spatial_dims = _check_spatial_dims(spatial_dims)
        pool = look_up_option(pool, POOLS, what="pooling")
        self.factor = _as_factor(factor, spatial_dims)
        if pool == "max":
            cls = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        else:
            cls = nn.AvgPool2d if spatial_dims == 2 else nn.AvgPool3d
        self.pool = cls(kernel_size=self.factor, stride=self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x``."""
        return self.pool(x)


class Up(nn.Module):
    """Learned up-sampling by ``factor``.

    ``"transpose"``: a transposed convolution with kernel = stride = ``factor`` (Ronneberger's
    "up-convolution"). ``"nearest"`` / ``"bilinear"``: interpolation (``"bilinear"`` means
    trilinear in 3D) followed by a 3×3 (×3) convolution, normalisation and activation.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    factor : int or tuple of int
        Up-sampling factor per spatial axis (the matching :class:`Down` factor).
    spatial_dims : {2, 3}
        Number of spatial axes.
    mode : {"nearest", "transpose", "bilinear"}
        How to up-sample.
    norm, activation
        Used after the convolution of the interpolating modes.

    Notes
    -----
    ``(B, in_channels, *spatial)`` -> ``(B, out_channels, *(s * f))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        factor: int | Sequence[int] = 2,
        *,
        spatial_dims: int = 2,
        mode: str = "nearest",
        norm: str | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        spatial_dims = _check_spatial_dims(spatial_dims)
        mode = look_up_option(mode, UPSAMPLES, what="upsample mode")
        self.factor = _as_factor(factor, spatial_dims)
        if mode == "transpose":
            cls = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
            conv = cls(in_channels, out_channels, kernel_size=self.factor, stride=self.factor)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.up: nn.Module = conv
        else:
            interp = "nearest"
            if mode == "bilinear":
                interp = "bilinear" if spatial_dims == 2 else "trilinear"
            resample = nn.Upsample(
                scale_factor=tuple(float(f) for f in self.factor),
                mode=interp,
                align_corners=None if interp == "nearest" else False,
            )
            self.up = nn.Sequential(
                resample,
                *_conv_norm_act(
                    in_channels,
                    out_channels,
                    spatial_dims=spatial_dims,
                    norm=norm,
                    activation=activation,
                ),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Up-sample ``x``."""
        return self.up(x)
