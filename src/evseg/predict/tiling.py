"""Tiled (sliding-window) inference with blending over any numpy predictor callable."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from evseg._registry import look_up_option
from evseg._validate import check_image

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BLEND_MODES", "bf16_supported", "tiled_predict", "torch_predictor"]

BLEND_MODES = ("gaussian", "linear", "constant")
MIN_WEIGHT = 1e-3  # blending windows never go below this inside a tile's valid region

Predictor = Callable[[np.ndarray], np.ndarray]


def _per_axis(value: int | float | Sequence, nd: int, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return (value,) * nd
    value = tuple(value.tolist() if isinstance(value, np.ndarray) else value)
    if len(value) != nd:
        raise ValueError(f"`{name}` needs 1 or {nd} values (one per spatial axis), got {value!r}.")
    return value


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _resolve_overlap(overlap: object, tile: tuple[int, ...]) -> tuple[int, ...]:
    """Overlap in pixels per axis; floats are fractions of the tile in ``[0, 1)``."""
    values = _per_axis(overlap, len(tile), "overlap")
    pixels = []
    for v, t in zip(values, tile, strict=True):
        if _is_int(v):
            o = int(v)
        elif isinstance(v, (float, np.floating)) and 0.0 <= v < 1.0:
            o = int(math.floor(v * t))
        else:
            o = -1
        if not 0 <= o < t:
            raise ValueError(
                f"overlap must be >= 0 and < tile size, got overlap={overlap!r} for "
                f"tile_shape={tile} (give pixels as ints or a fraction in [0, 1) as a float)."
            )
        pixels.append(o)
    return tuple(pixels)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts on a regular grid with step ``tile - overlap``, the last aligned to the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return [*starts, size - tile]


@lru_cache(maxsize=64)
def _window_1d(
    blend: str, tile: int, overlap: int, halo: int, keep_left: bool, keep_right: bool
) -> np.ndarray:
    """1-D blending window of length ``tile`` (float64); the halo is zero unless kept."""
    i = np.arange(tile, dtype=np.float64)
    if blend == "gaussian":
        sigma = tile / 8.0
        w = np.exp(-0.5 * ((i - (tile - 1) / 2.0) / sigma) ** 2)
    elif blend == "linear":
        ramp = max(overlap - 2 * halo, 0) + 1
        w = np.minimum(np.minimum(i + 1 - halo, tile - halo - i) / ramp, 1.0)
    else:
        w = np.ones(tile)
    w = np.clip(w / w.max(), MIN_WEIGHT, 1.0)
    if halo:
        if not keep_left:
            w[:halo] = 0.0
        if not keep_right:
            w[tile - halo :] = 0.0
    return w


def _window(
    blend: str,
    tile: tuple[int, ...],
    overlap: tuple[int, ...],
    halo: tuple[int, ...],
    keep: tuple[tuple[bool, bool], ...],
) -> np.ndarray:
    """N-D float32 window: outer product of the 1-D windows, >= MIN_WEIGHT outside dropped halos."""
    w = np.ones((), dtype=np.float32)
    for a in range(len(tile)):
        w1 = _window_1d(blend, tile[a], overlap[a], halo[a], *keep[a]).astype(np.float32)
        w = np.multiply.outer(w, w1)
    if blend != "constant":
        w[(w > 0) & (w < MIN_WEIGHT)] = MIN_WEIGHT
    return w


def tiled_predict(
    image: np.ndarray,
    predictor: Predictor,
    *,
    tile_shape: int | Sequence[int],
    overlap: int | float | Sequence[int | float],
    blend: str = "gaussian",
    halo: int | Sequence[int] = 0,
    batch_size: int = 1,
    out_channels: int | None = None,
    fixed_tile: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Predict a large image tile by tile and blend the overlapping tile outputs.

    Tiles lie on a regular grid with the requested overlap, the last tile of each axis aligned to
    the image end. Each output pixel is the weighted average of the tile outputs covering it,
    weighted by a blending window; weights are normalised beforehand, so a single ``(K, *spatial)``
    accumulator is filled in place.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
        Channel-first image; converted to float32.
    predictor : callable
        Maps a float32 batch ``(B, C, *tile)`` to ``(B, K, *tile)`` (any array-like, converted to
        float32). Works with torch (see :func:`torch_predictor`), ONNX Runtime, anything.
    tile_shape : int or sequence of int
        Tile size per spatial axis (pixels). Where the image is smaller, the tile shrinks to the
        image (unless ``fixed_tile``); making a tile fit a network's divisor is the network's job.
    overlap : int, float or sequence
        Overlap of neighbouring tiles per axis: ints are pixels, floats a fraction of the tile in
        ``[0, 1)``. Must be ``>= 0`` and ``< tile``.
    blend : {"gaussian", "linear", "constant"}
        Blending window: Gaussian with ``sigma = tile / 8`` (as MONAI / nnU-Net), linear ramp over
        the overlap, or flat. Clipped below at 1e-3 so every pixel is defined.
    halo : int or sequence of int
        Pixels at each tile border whose output is discarded (weight 0) unless that border is the
        image border, e.g. the network's receptive-field radius (``UNet.halo``). Needs
        ``2 * halo <= overlap``. With ``halo >=`` the receptive-field radius and tile starts that
        are multiples of the network's down-sampling factor, the result equals untiled inference.
    batch_size : int
        Tiles per predictor call.
    out_channels : int or None
        Expected ``K``; ``None`` takes it from the first predictor output.
    fixed_tile : bool
        If True the predictor needs exactly ``tile_shape`` (e.g. a fixed-size exported model):
        axes shorter than the tile are padded (reflect) and the output is cropped back.
    progress : bool
        Show a tqdm progress bar over tiles.

    Returns
    -------
    ndarray of float32, shape (K, *spatial)
        The blended predictor output, same spatial shape as ``image``.

    Raises
    ------
    ValueError
        For a bad ``image`` (wrong dimensions, NaN/inf), ``tile_shape``, ``overlap``, ``halo``,
        ``batch_size``, or a predictor output of the wrong shape.
    TypeError
        If ``image`` is not a real numeric array.

    Examples
    --------
    >>> img = np.arange(2 * 50 * 70, dtype=np.float32).reshape(2, 50, 70)
    >>> out = tiled_predict(img, lambda b: b[:, :1] * 2, tile_shape=32, overlap=8)
    >>> out.shape, bool(np.allclose(out, img[:1] * 2))
    ((1, 50, 70), True)
    """
    arr = np.asarray(image)
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"`image` must be channel-first (C, Y, X) or (C, Z, Y, X), got shape {arr.shape}; "
            "add a channel axis with image[None] for a single-channel image."
        )
    arr = check_image(arr, name="image", ndim=(3, 4)).astype(np.float32, copy=False)
    nd = arr.ndim - 1
    blend = look_up_option(blend, BLEND_MODES, what="blend mode")
    req_tile = _per_axis(tile_shape, nd, "tile_shape")
    if not all(_is_int(t) and t >= 1 for t in req_tile):
        raise ValueError(f"`tile_shape` must be positive integers, got {tile_shape!r}.")
    req_tile = tuple(int(t) for t in req_tile)
    ov = _resolve_overlap(overlap, req_tile)
    halos = _per_axis(halo, nd, "halo")
    if not all(_is_int(h) and 0 <= 2 * h <= o for h, o in zip(halos, ov, strict=True)):
        raise ValueError(
            f"`halo` must be integers >= 0 with 2 * halo <= overlap (here {ov} pixels), "
            f"got {halo!r}; increase the overlap or lower the halo."
        )
    halos = tuple(int(h) for h in halos)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")

    spatial = arr.shape[1:]
    crop = None
    if fixed_tile and any(s < t for s, t in zip(spatial, req_tile, strict=True)):
        pads = [(0, 0)] + [((t - s) // 2, t - s - (t - s) // 2) if s < t else (0, 0)
                           for s, t in zip(spatial, req_tile, strict=True)]
        crop = tuple(slice(p[0], p[0] + s) for p, s in zip(pads[1:], spatial, strict=True))
        arr = np.pad(arr, pads, mode="reflect")
    size = arr.shape[1:]
    tile = tuple(min(t, s) for t, s in zip(req_tile, size, strict=True))

    axis_starts = [_starts(s, t, o) for s, t, o in zip(size, tile, ov, strict=True)]
    positions = list(itertools.product(*axis_starts))

    def keep(pos: tuple[int, ...]) -> tuple[tuple[bool, bool], ...]:
        return tuple((p == 0, p + t == s) for p, t, s in zip(pos, tile, size, strict=True))

    def region(pos: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(p, p + t) for p, t in zip(pos, tile, strict=True))

    # Normalise the windows once, so that each tile adds its final share to one accumulator.
    total = np.zeros(size, dtype=np.float32)
    for pos in positions:
        total[region(pos)] += _window(blend, tile, ov, halos, keep(pos))
    inv_total = np.reciprocal(total, out=total)  # total > 0 everywhere by construction

    out: np.ndarray | None = None
    with tqdm(total=len(positions), desc="tiles", unit="tile", disable=not progress) as bar:
        for b0 in range(0, len(positions), batch_size):
            batch_pos = positions[b0 : b0 + batch_size]
            batch = np.stack([arr[(slice(None), *region(p))] for p in batch_pos])
            pred = np.asarray(predictor(batch), dtype=np.float32)
            if pred.ndim != nd + 2 or pred.shape[0] != len(batch_pos) or pred.shape[2:] != tile:
                raise ValueError(
                    f"`predictor` returned shape {pred.shape} for a batch of shape {batch.shape}; "
                    f"expected (B, K, *tile) = ({len(batch_pos)}, K, {', '.join(map(str, tile))})."
                )
            if out is None:
                k = pred.shape[1]
                if out_channels is not None and k != out_channels:
                    raise ValueError(
                        f"`predictor` returned {k} channels but out_channels={out_channels}."
                    )
                out = np.zeros((k, *size), dtype=np.float32)
            for p, y in zip(batch_pos, pred, strict=True):
                reg = region(p)
                w = _window(blend, tile, ov, halos, keep(p))
                w *= inv_total[reg]
                target = out[(slice(None), *reg)]
                target += y * w
            bar.update(len(batch_pos))
    if out is None:  # unreachable: there is always at least one tile
        raise RuntimeError("no tile was predicted")
    return out if crop is None else np.ascontiguousarray(out[(slice(None), *crop)])


def _cpu_flags() -> set[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty where it is unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _mkldnn_bf16() -> bool | None:
    """oneDNN's own answer whether the CPU has native bf16, or None where torch cannot tell."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        return bool(check())
    except RuntimeError:
        return None


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 natively (fast bf16 autocast).

    On CPU: oneDNN's check where torch offers it, else the CPU flags (AVX-512 with ``avx512_bf16``,
    or AMX ``amx_bf16``). On CUDA: ``torch.cuda.is_bf16_supported()``.

    Parameters
    ----------
    device : str
        ``"cpu"`` or a CUDA device such as ``"cuda"``.

    Returns
    -------
    bool
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    native = _mkldnn_bf16()
    if native is not None:
        return native
    flags = _cpu_flags()
    return "amx_bf16" in flags or ("avx512_bf16" in flags and "avx512f" in flags)


def torch_predictor(
    model: nn.Module,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    channels_last: bool = True,
    activation: str | None = "sigmoid",
) -> Predictor:
    """Wrap a torch network into a numpy predictor callable for :func:`tiled_predict`.

    The model is put in eval mode and moved to ``device`` (this changes ``model``). Each call runs
    under ``torch.inference_mode``, with bf16 autocast when asked, in channels-last memory format
    for 2D inputs when asked, and applies ``activation`` in float32.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, C, *spatial)`` to logits ``(B, K, *spatial)``.
    device : str
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    precision : {"fp32", "bf16"}
        ``"bf16"`` runs under ``torch.autocast(dtype=torch.bfloat16)`` (2–3× faster on CPUs with
        native bf16, see :func:`bf16_supported`; outputs differ from fp32 by < 1 %).
    channels_last : bool
        Use ``torch.channels_last`` for 2D inputs (faster convolutions on CPU).
    activation : {"sigmoid", "softmax", None}
        Applied to the logits (softmax over channels); ``None`` returns logits.

    Returns
    -------
    callable
        ``predictor(batch: ndarray (B, C, *spatial)) -> ndarray float32 (B, K, *spatial)``.
    """
    import torch

    precision = look_up_option(precision, ("fp32", "bf16"), what="precision")
    if activation is not None:
        activation = look_up_option(activation, ("sigmoid", "softmax"), what="activation (or None)")
    dev = torch.device(device)
    model.eval().to(dev)
    state = {"channels_last_done": False}

    def predict(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(dev)
        if channels_last and x.ndim == 4:
            if not state["channels_last_done"]:
                model.to(memory_format=torch.channels_last)
                state["channels_last_done"] = True
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(
            dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"
        ):
            y = model(x)
        y = y.float()
        if activation == "sigmoid":
            y = torch.sigmoid(y)
        elif activation == "softmax":
            y = torch.softmax(y, dim=1)
        return y.contiguous().cpu().numpy()

    return predict
