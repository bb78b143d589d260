"""U-Net and Fully Residual U-Net (FRU-Net) for 2D and 3D images; ``forward`` returns logits."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from evseg._registry import look_up_option
from evseg.models.blocks import (
    ACTIVATIONS,
    POOLS,
    UPSAMPLES,
    ConvBlock,
    Down,
    ResidualBlock,
    Up,
    look_up_norm,
    make_conv,
)

__all__ = ["FRUNet", "UNet"]


def _positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _pool_factors(
    anisotropic_pool: Sequence[int | Sequence[int]] | None, *, depth: int, spatial_dims: int
) -> list[tuple[int, ...]]:
    """Per-level pooling factors, one tuple of ``spatial_dims`` ints per encoder level."""
    if anisotropic_pool is None:
        return [(2,) * spatial_dims for _ in range(depth)]
    levels = list(anisotropic_pool)
    if len(levels) != depth:
        raise ValueError(
            f"`anisotropic_pool` needs one pooling factor per level ({depth} = depth), "
            f"got {len(levels)}: {anisotropic_pool!r}."
        )
    factors = []
    for level in levels:
        f = (level,) * spatial_dims if isinstance(level, int) else tuple(level)
        if len(f) != spatial_dims or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in f
        ):
            raise ValueError(
                f"Each `anisotropic_pool` entry must be a positive int or {spatial_dims} positive "
                f"ints (e.g. (1, 2, 2) to keep z), got {level!r}."
            )
        factors.append(tuple(int(v) for v in f))
    return factors


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) for 2D or 3D images, optionally with residual blocks.

    The encoder has ``depth`` levels, each a block followed by down-sampling; then a bottleneck
    block; the decoder up-samples, concatenates the skip connection and applies a block per level;
    a 1×1 convolution gives the logits. Level ``i`` (``i = 0 .. depth``, the bottleneck being
    ``depth``) has ``min(base_filters * 2**i, max_filters)`` channels.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial axes (2: ``(B, C, Y, X)``, 3: ``(B, C, Z, Y, X)``).
    in_channels, out_channels : int
        Channels of the input image and of the output logits.
    depth : int
        Number of down-sampling steps (encoder levels); a bottleneck comes on top.
    base_filters, max_filters : int
        Channels of the first level, and the cap on channels.
    residual : bool
        If True every encoder, bottleneck and decoder block is a :class:`ResidualBlock`
        ``y = shortcut(x) + F(x)``; else a plain :class:`ConvBlock`.
    norm : {None, "batch", "instance", "group"}
        Normalisation after each convolution.
    activation : {"elu", "relu", "leaky_relu"}
        Activation after each convolution.
    dropout : float
        Dropout probability inside every block (between its two convolutions), in ``[0, 1)``.
    pool : {"max", "avg"}
        Down-sampling by max or average pooling.
    upsample : {"nearest", "transpose", "bilinear"}
        ``"transpose"``: transposed convolution to the skip's channel count (classic U-Net);
        ``"nearest"``/``"bilinear"`` (trilinear in 3D): interpolation then a 3×3 convolution that
        keeps the channel count (as in FRU-Net).
    anisotropic_pool : sequence or None
        Pooling factor per level (``depth`` entries, each an int or ``spatial_dims`` ints), e.g.
        ``[(1, 2, 2), (1, 2, 2), (2, 2, 2)]`` for 3D stacks with coarse z. ``None``: 2 everywhere.

    Notes
    -----
    ``forward(x)``: ``x`` is ``(B, in_channels, *spatial)`` of any spatial size; sizes that are not
    multiples of :attr:`required_divisor` are padded inside ``forward`` (reflect, or replicate
    where an axis is too short to reflect) and the output is cropped back, so the output is always
    ``(B, out_channels, *spatial)`` logits (apply ``sigmoid``/``softmax`` outside). Callers that
    want to avoid the pad (speed, tiling exactness) feed sizes divisible by ``required_divisor``.

    The network is translation-equivariant only for shifts that are multiples of
    ``required_divisor``; :attr:`halo` bounds how far the boundary of an input crop influences the
    output.

    Examples
    --------
    >>> net = UNet(depth=2, base_filters=4)
    >>> net(torch.zeros(1, 1, 33, 63)).shape
    torch.Size([1, 1, 33, 63])
    >>> net.required_divisor
    (4, 4)
    """

    arch = "unet"

    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        base_filters: int = 32,
        max_filters: int = 512,
        residual: bool = False,
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        pool: str = "max",
        upsample: str = "transpose",
        anisotropic_pool: Sequence[int | Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
        _positive_int(in_channels, "in_channels")
        _positive_int(out_channels, "out_channels")
        _positive_int(depth, "depth")
        _positive_int(base_filters, "base_filters")
        _positive_int(max_filters, "max_filters", minimum=base_filters)
        if not isinstance(residual, bool):
            raise TypeError(f"`residual` must be a bool, got {residual!r}.")
        look_up_norm(norm)
        look_up_option(activation, ACTIVATIONS, what="activation")
        look_up_option(pool, POOLS, what="pooling")
        look_up_option(upsample, UPSAMPLES, what="upsample mode")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"`dropout` must be a probability in [0, 1), got {dropout!r}.")
        factors = _pool_factors(anisotropic_pool, depth=depth, spatial_dims=spatial_dims)

        self._config: dict[str, Any] = {
            "spatial_dims": int(spatial_dims),
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "depth": int(depth),
            "base_filters": int(base_filters),
            "max_filters": int(max_filters),
            "residual": residual,
            "norm": norm,
            "activation": activation,
            "dropout": float(dropout),
            "pool": pool,
            "upsample": upsample,
            "anisotropic_pool": None if anisotropic_pool is None else [list(f) for f in factors],
        }
        self._factors = factors
        channels = [min(base_filters * 2**i, max_filters) for i in range(depth + 1)]
        self._channels = channels
        block_cls = ResidualBlock if residual else ConvBlock
        kw = dict(spatial_dims=spatial_dims, norm=norm, activation=activation)

        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        c_in = in_channels
        for i in range(depth):
            self.encoders.append(block_cls(c_in, channels[i], dropout=dropout, **kw))
            self.downs.append(Down(factors[i], spatial_dims=spatial_dims, pool=pool))
            c_in = channels[i]
        self.bottleneck = block_cls(c_in, channels[depth], dropout=dropout, **kw)

        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c_below = channels[depth]
        for i in reversed(range(depth)):
            c_up = channels[i] if upsample == "transpose" else c_below
            self.ups.append(Up(c_below, c_up, factors[i], mode=upsample, **kw))
            self.decoders.append(block_cls(c_up + channels[i], channels[i], dropout=dropout, **kw))
            c_below = channels[i]
        self.head = make_conv(channels[0], out_channels, spatial_dims=spatial_dims, kernel_size=1)
        nn.init.xavier_uniform_(self.head.weight)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor keyword arguments (a fresh JSON-serialisable dict, tuples as lists)."""
        return copy.deepcopy(self._config)

    @property
    def required_divisor(self) -> tuple[int, ...]:
        """Per spatial axis, the total down-sampling factor (``2**depth`` when isotropic).

        Inputs whose sizes are multiples of it run without the internal pad.
        """
        return tuple(math.prod(f[a] for f in self._factors) for a in range(self.spatial_dims))

    @property
    def halo(self) -> tuple[int, ...]:
        """Per spatial axis, an upper bound (pixels) on the one-sided receptive-field extent.

        An output pixel depends only on inputs at most ``halo`` pixels away along each axis, so in
        tiled inference outputs farther than ``halo`` from a tile border equal the untiled output
        (for tiles whose start is a multiple of :attr:`required_divisor`). It counts 1 scale-step
        per 3×3 convolution, ``factor - 1`` per pooling, and 1 coarse pixel per linear up-sampling.
        """
        halos = []
        for a in range(self.spatial_dims):
            step, extent = 1, 0
            n_up_convs = 0 if self._config["upsample"] == "transpose" else 1
            linear = self._config["upsample"] == "bilinear"
            for f in self._factors:
                level_step = step
                extent += 2 * level_step  # encoder block
                extent += (2 + n_up_convs) * level_step  # decoder block (+ conv after interp.)
                extent += (f[a] - 1) * level_step  # pooling window
                step *= f[a]
                extent += step if linear else 0  # linear interpolation reads a coarse neighbour
            extent += 2 * step  # bottleneck block
            halos.append(extent)
        return tuple(halos)

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return self._config["spatial_dims"]

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...] | None]:
        sizes = x.shape[2:]
        extra = [(-s) % d for s, d in zip(sizes, self.required_divisor, strict=True)]
        if not any(extra):
            return x, None
        pads: list[int] = []
        for e in reversed(extra):  # F.pad wants the last axis first
            pads += [e // 2, e - e // 2]
        reflectable = all(e - e // 2 < s for e, s in zip(extra, sizes, strict=True))
        x = F.pad(x, pads, mode="reflect" if reflectable else "replicate")
        crop = tuple(slice(e // 2, e // 2 + s) for e, s in zip(extra, sizes, strict=True))
        return x, (slice(None), slice(None), *crop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, out_channels, *spatial)`` for ``x`` ``(B, in_channels, *spatial)``.

        Raises
        ------
        ValueError
            If ``x`` has the wrong number of dimensions or channels.
        """
        nd = self.spatial_dims
        if x.ndim != nd + 2 or x.shape[1] != self._config["in_channels"]:
            raise ValueError(
                f"{type(self).__name__} expects input (B, {self._config['in_channels']}, "
                f"{', '.join('ZYX'[3 - nd:])}), got shape {tuple(x.shape)}."
            )
        x, crop = self._pad(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, decoder in zip(self.ups, self.decoders, strict=True):
            x = decoder(torch.cat([skips.pop(), up(x)], dim=1))
        x = self.head(x)
        return x if crop is None else x[crop]


class FRUNet(UNet):
    """Fully Residual U-Net (FRU-Net; Gómez-de-Mariscal et al., Sci Rep 2019).

    A :class:`UNet` whose encoder, bottleneck and decoder blocks are all residual
    (``y = shortcut(x) + F(x)``, 1×1-convolution shortcut where the channels change). The defaults
    give the published configuration: 4 levels + bottleneck with 32-64-128-256-256 filters, 3×3
    convolutions, ELU, average pooling, nearest-neighbour up-sampling (each followed by a 3×3
    convolution + ELU that keeps the channel count), concatenated skips, dropout 0.1, no batch
    normalisation: 6,500,705 parameters in 2D (the paper's ≈ 6.5 M). ``forward`` gives logits;
    the paper's sigmoid is applied outside.

    Parameters
    ----------
    spatial_dims, in_channels, out_channels, depth, base_filters, max_filters, norm, activation, \
dropout, pool, upsample, anisotropic_pool
        As for :class:`UNet` (there is no ``residual`` argument: FRU-Net is always residual).

    Notes
    -----
    The paper describes blocks, filters, pooling and up-sampling but not the layer after the
    nearest-neighbour up-sampling; the channel-keeping 3×3 up-convolution is the reading whose
    parameter count (6.50 M) matches the published ≈ 6.5 M (without it: 5.14 M).

    Examples
    --------
    >>> sum(p.numel() for p in FRUNet().parameters())
    6500705
    """

    arch = "frunet"

    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        base_filters: int = 32,
        max_filters: int = 256,
        norm: str | None = None,
        activation: str = "elu",
        dropout: float = 0.1,
        pool: str = "avg",
        upsample: str = "nearest",
        anisotropic_pool: Sequence[int | Sequence[int]] | None = None,
    ) -> None:
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            depth=depth,
            base_filters=base_filters,
            max_filters=max_filters,
            residual=True,
            norm=norm,
            activation=activation,
            dropout=dropout,
            pool=pool,
            upsample=upsample,
            anisotropic_pool=anisotropic_pool,
        )
        del self._config["residual"]
