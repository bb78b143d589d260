"""Write results atomically: calibrated ImageJ TIFFs, PNGs, CSV tables and ImageJ ROI sets."""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evseg._registry import look_up_option
from evseg._validate import check_labels, check_pixel_size
from evseg.io.atomic import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "write_csv",
    "write_imagej_rois",
    "write_labels",
    "write_png",
    "write_probability",
    "write_tiff",
]

_TIFF_AXES = {"YX": 2, "ZYX": 3, "CYX": 3}  # axes -> ndim
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_PROB_TOLERANCE = 1e-4  # rounding overshoot of blending/interpolation, clipped away
_STREAM_MIN_BYTES = 64 * 2**20  # convert larger uncompressed 2D images strip by strip ...
_STREAM_STRIP_BYTES = 8 * 2**20  # ... in strips of about this size


def _converted_strips(arr: np.ndarray, dtype: np.dtype, rows: int,
                      clip_range: tuple[float, float] | None) -> Iterator[np.ndarray]:
    """Yield ``arr`` in strips of ``rows`` rows, clipped to ``clip_range`` and cast to ``dtype``."""
    for top in range(0, arr.shape[0], rows):
        strip = arr[top:top + rows]
        if clip_range is not None:
            strip = np.clip(strip, *clip_range)
        yield np.ascontiguousarray(strip, dtype=dtype)


def _finite_range(arr: np.ndarray, rows: int = 1024) -> tuple[bool, float, float]:
    """(all finite, min, max) of a non-empty array, computed over row strips (small temporaries)."""
    flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr.reshape(1, -1)
    finite, low, high = True, np.inf, -np.inf
    for top in range(0, flat.shape[0], rows):
        strip = flat[top:top + rows]
        finite = finite and bool(np.isfinite(strip).all())
        low, high = min(low, float(strip.min())), max(high, float(strip.max()))
    return finite, low, high


def write_tiff(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    pixel_size_nm: float | None = None,
    voxel_size_nm: Sequence[float] | None = None,
    axes: str | None = None,
    compression: str | None = "zlib",
    clip_range: tuple[float, float] | None = None,
) -> Path:
    """Write an array as a calibrated, ImageJ/Fiji-compatible TIFF (atomically).

    Parameters
    ----------
    path : path-like
        Output file (its folder must exist).
    array : ndarray
        ``(Y, X)``, ``(Z, Y, X)`` or ``(C, Y, X)`` (see ``axes``).
    pixel_size_nm : float, optional
        In-plane pixel size in nanometres (square pixels).
    voxel_size_nm : sequence of float, optional
        Size per spatial axis in nanometres, ``(Y, X)`` or ``(Z, Y, X)``; gives non-square
        pixels and the Z spacing. If both are given they must agree in-plane.
    axes : {"YX", "ZYX", "CYX"}, optional
        Meaning of the axes; default ``"YX"`` for 2D and ``"ZYX"`` for 3D arrays.
    compression : str or None
        tifffile compression; ``"zlib"`` (lossless, read by Fiji) or ``None``.
    clip_range : (float, float), optional
        Clip the written values to this range (the array itself is not changed).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        For boolean, complex or non-numeric arrays (convert masks with ``astype(np.uint8)``).
    ValueError
        For a wrong number of dimensions, unknown ``axes`` or inconsistent pixel sizes.

    Notes
    -----
    The calibration is written the way Fiji reads it: resolution tags = pixels per nm
    (``1 / pixel size``) and ImageJ metadata ``unit=nm`` (``spacing`` = Z step in nm).
    ImageJ stores only uint8, uint16 and float32:

    - float16/float64 are written as float32 (precision only; values unchanged);
    - other integer arrays (e.g. int32 labels) are written as uint16 when all values lie in
      0..65535 (lossless); otherwise they keep their dtype in a plain (non-ImageJ) TIFF with
      the resolution in pixels per centimetre, which Fiji opens through Bio-Formats (Z
      spacing is then not stored), and a note is logged.

    Large uncompressed 2D images that need a conversion (dtype or ``clip_range``) are converted
    and written strip by strip, so no converted copy of the whole image is held in memory.
    """
    arr = np.asarray(array)
    if arr.dtype == bool or np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(
            f"`array` must be a real numeric array, got dtype {arr.dtype}; "
            "convert masks with mask.astype(np.uint8) (0/1) or (mask * 255).astype(np.uint8)."
        )
    if axes is None:
        axes = {2: "YX", 3: "ZYX"}.get(arr.ndim, "")
    axes = look_up_option(axes, _TIFF_AXES, what="TIFF axes")
    if arr.ndim != _TIFF_AXES[axes]:
        raise ValueError(f"`array` with axes {axes!r} must have {len(axes)} dimensions, got shape {arr.shape}.")
    n_spatial = 3 if axes == "ZYX" else 2
    z, y, x = _resolve_calibration(pixel_size_nm, voxel_size_nm, n_spatial)

    imagej = True
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype not in _IMAGEJ_DTYPES:
        if arr.size == 0 or (arr.min() >= 0 and arr.max() <= np.iinfo(np.uint16).max):
            arr = arr.astype(np.uint16)
        else:
            imagej = False
            logger.warning(
                "%s: %s values %s..%s do not fit ImageJ's uint16; writing a plain TIFF "
                "(Fiji opens it via Bio-Formats; Z spacing is not stored).",
                path, arr.dtype, arr.min(), arr.max(),
            )
    kwargs: dict[str, Any] = {"compression": compression}
    target = np.dtype(np.float32 if arr.dtype in (np.float16, np.float64) else arr.dtype)
    data: Any
    if arr.ndim == 2 and compression is None and arr.nbytes >= _STREAM_MIN_BYTES and (
            clip_range is not None or target != arr.dtype):
        rows = max(1, _STREAM_STRIP_BYTES // max(1, arr.shape[1] * target.itemsize))
        data = _converted_strips(arr, target, rows, clip_range)
        kwargs.update(shape=arr.shape, dtype=target, rowsperstrip=rows)
    else:
        data = arr if clip_range is None else np.clip(arr, *clip_range)
        data = data.astype(target, copy=False)
    with atomic_path(path) as tmp:
        import tifffile

        if imagej:
            metadata: dict[str, Any] = {"axes": axes}
            if x is not None:
                kwargs["resolution"] = (1.0 / x, 1.0 / y)
                metadata["unit"] = "nm"
            if z is not None:
                metadata["spacing"] = z
            tifffile.imwrite(tmp, data, imagej=True, metadata=metadata, **kwargs)
        else:
            if x is not None:
                kwargs["resolution"] = (1e7 / x, 1e7 / y)
                kwargs["resolutionunit"] = "CENTIMETER"
            tifffile.imwrite(tmp, data, photometric="minisblack", metadata={"axes": axes}, **kwargs)
    return Path(path)


def write_probability(
    path: str | os.PathLike,
    prob: np.ndarray,
    *,
    pixel_size_nm: float | None,
    voxel_size_nm: Sequence[float] | None = None,
    axes: str | None = None,
    compression: str | None = None,
) -> Path:
    """Write a probability map in [0, 1] as a float32 ImageJ TIFF (uncompressed by default).

    Float probability maps shrink only ~13 % with zlib, which costs 20x the writing time (0.2 s vs
    0.01 s for 2048²), so they are written uncompressed unless ``compression`` says otherwise.

    Parameters
    ----------
    path : path-like
        Output file.
    prob : ndarray of float
        Probabilities, ``(Y, X)``, ``(Z, Y, X)`` or ``(C, Y, X)`` with ``axes="CYX"``.
    pixel_size_nm : float or None
        In-plane pixel size in nanometres (``None`` = unknown; must be given explicitly).
    voxel_size_nm, axes, compression
        As in :func:`write_tiff`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If ``prob`` is not a float array (e.g. uint8 scaled to 0..255).
    ValueError
        If ``prob`` has NaN or values outside [0, 1] by more than 1e-4 (smaller rounding
        overshoots, e.g. from tile blending, are clipped to [0, 1]).
    """
    arr = np.asarray(prob)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"`prob` must be a float array of probabilities in [0, 1], got dtype {arr.dtype}."
        )
    tol = _PROB_TOLERANCE
    if arr.size:
        finite, low, high = _finite_range(arr)
        if not finite or low < -tol or high > 1 + tol:
            raise ValueError(
                f"`prob` must hold probabilities in [0, 1] without NaN, got range "
                f"{np.nanmin(arr)}..{np.nanmax(arr)}; apply a sigmoid/softmax to logits first."
            )
    return write_tiff(
        path, arr,
        pixel_size_nm=pixel_size_nm, voxel_size_nm=voxel_size_nm, axes=axes, compression=compression,
        clip_range=(0.0, 1.0),
    )


def write_labels(
    path: str | os.PathLike,
    labels: np.ndarray,
    *,
    pixel_size_nm: float | None,
    voxel_size_nm: Sequence[float] | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write an integer label image as a uint16 ImageJ TIFF (or int32 beyond 65535 labels).

    Parameters
    ----------
    path : path-like
        Output file.
    labels : ndarray of int
        ``(Y, X)`` or ``(Z, Y, X)``; 0 = background, k > 0 = object k.
    pixel_size_nm : float or None
        In-plane pixel size in nanometres (``None`` = unknown; must be given explicitly).
    voxel_size_nm, compression
        As in :func:`write_tiff`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError, ValueError
        If ``labels`` is not a non-negative integer image (see ``evseg._validate.check_labels``).
    """
    arr = check_labels(labels, name="labels", ndim=(2, 3))
    if arr.size and np.iinfo(np.uint16).max < arr.max() <= np.iinfo(np.int32).max:
        arr = arr.astype(np.int32, copy=False)
    return write_tiff(
        path, arr, pixel_size_nm=pixel_size_nm, voxel_size_nm=voxel_size_nm, compression=compression
    )


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 grey ``(Y, X)`` or RGB ``(Y, X, 3)`` image as PNG (atomically).

    Raises
    ------
    TypeError
        If ``array`` is not uint8 (scale it yourself, e.g. with ``render_overlay``).
    ValueError
        If ``array`` is not ``(Y, X)`` or ``(Y, X, 3)``.
    """
    from PIL import Image as PILImage

    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"`array` must be uint8 for PNG, got {arr.dtype}; scale it explicitly "
            "(e.g. evseg.io.render_overlay, or np.clip(a, 0, 255).astype(np.uint8))."
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"`array` must be (Y, X) grey or (Y, X, 3) RGB, got shape {arr.shape}.")
    with atomic_path(path) as tmp:
        # compress_level 1: ~4x faster than PIL's default 6 for ~10 % larger files (overlays are written per image)
        PILImage.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG", compress_level=1)
    return Path(path)


def write_csv(
    path: str | os.PathLike,
    table: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    float_format: str = ".6g",
) -> Path:
    """Write a table as CSV (atomically; the caller builds the whole table, no appending).

    Parameters
    ----------
    path : path-like
        Output file (UTF-8, comma-separated, header row first).
    table : dict of columns or list of row dicts
        Either ``{"label": [...], "area_nm2": [...]}`` with equal-length columns, or
        ``[{"label": 1, "area_nm2": 2.0}, ...]``.
    columns : sequence of str, optional
        Which columns to write, in order. Default: the dict's keys, or the first row's keys.
    float_format : str
        Format spec for floats (default ``".6g"``, 6 significant digits). NaN and ``None``
        are written as an empty field; ±inf as ``inf``/``-inf``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If columns differ in length or a requested column is missing.
    """
    rows = _table_rows(table, columns)
    names = list(columns) if columns is not None else _default_columns(table)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_format_cell(v, float_format) for v in row])
    return Path(path)


def write_imagej_rois(
    path: str | os.PathLike,
    labels: np.ndarray,
    *,
    names: Mapping[int, str] | None = None,
) -> Path:
    """Write one polygon ROI per object to an ImageJ ROI set (``.zip``), atomically.

    Open the zip in Fiji (drag and drop, or ROI Manager > More > Open) to show and measure the
    objects on the image.

    Parameters
    ----------
    path : path-like
        Output ``.zip`` file.
    labels : ndarray of int
        ``(Y, X)`` label image, 0 = background.
    names : mapping of int to str, optional
        ROI name per label id. Default: the id zero-padded to at least 4 digits (``"0007"``),
        so that the ROI Manager's alphabetical order is the numeric order.

    Returns
    -------
    Path
        ``path``. With no object the zip is written but empty.

    Notes
    -----
    Each ROI is the outer contour (``skimage.measure.find_contours`` at level 0.5 on the
    object's padded mask) in ImageJ's (x, y) pixel-corner coordinates with sub-pixel
    precision; the contour runs half-way between object and background pixel centres, so
    ImageJ's mask of the ROI is the object's pixels. Holes are not represented; an object made
    of several pieces is represented by its largest piece.
    """
    import roifile
    from scipy import ndimage as ndi
    from skimage.measure import find_contours

    lab = check_labels(labels, name="labels", ndim=(2,))
    ids = np.unique(lab)
    ids = ids[ids > 0]
    width = max(4, len(str(int(ids.max())))) if ids.size else 4
    rois = []
    slices = ndi.find_objects(lab)
    for k in ids:
        sl = slices[int(k) - 1]
        mask = np.pad(lab[sl] == k, 1).astype(np.float32)
        contours = find_contours(mask, 0.5)
        contour = max(contours, key=_polygon_area)
        # (row, col) in the padded crop -> ImageJ (x, y): pixel centre (r, c) is at (c + .5, r + .5)
        xy = contour[:, ::-1] + np.array([sl[1].start - 1 + 0.5, sl[0].start - 1 + 0.5])
        if np.allclose(xy[0], xy[-1]):
            xy = xy[:-1]
        name = names[int(k)] if names is not None and int(k) in names else f"{int(k):0{width}d}"
        roi = roifile.ImagejRoi.frompoints(xy.astype(np.float32), name=name)
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    with atomic_path(path) as tmp:
        roifile.roiwrite(tmp, rois, mode="w")
    return Path(path)


# --------------------------------------------------------------------------------------------
# helpers


def _resolve_calibration(
    pixel_size_nm: float | None, voxel_size_nm: Sequence[float] | None, n_spatial: int
) -> tuple[float | None, float | None, float | None]:
    """(z, y, x) in nm from the two ways of giving it; None where unknown."""
    px = check_pixel_size(pixel_size_nm)
    if voxel_size_nm is None:
        return None, px, px
    voxel = [check_pixel_size(v, name="voxel_size_nm") for v in voxel_size_nm]
    if len(voxel) != n_spatial:
        raise ValueError(
            f"`voxel_size_nm` must have {n_spatial} values (one per spatial axis), got {voxel_size_nm!r}."
        )
    z = voxel[0] if n_spatial == 3 else None
    y, x = voxel[-2], voxel[-1]
    if px is not None and not (math.isclose(px, y, rel_tol=1e-6) and math.isclose(px, x, rel_tol=1e-6)):
        raise ValueError(
            f"`pixel_size_nm` ({px}) disagrees with `voxel_size_nm` ({voxel_size_nm!r}); give only one."
        )
    return z, y, x


def _default_columns(table: Any) -> list[str]:
    if isinstance(table, Mapping):
        return list(table.keys())
    return list(table[0].keys()) if len(table) else []


def _table_rows(table: Any, columns: Sequence[str] | None) -> list[list[Any]]:
    names = list(columns) if columns is not None else _default_columns(table)
    if isinstance(table, Mapping):
        missing = [c for c in names if c not in table]
        if missing:
            raise ValueError(f"`table` has no column(s) {missing}; it has {list(table.keys())}.")
        cols = [list(np.asarray(table[c]).tolist()) if isinstance(table[c], np.ndarray) else list(table[c])
                for c in names]
        lengths = {c: len(v) for c, v in zip(names, cols, strict=True)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"`table` columns must have equal lengths, got {lengths}.")
        return [list(r) for r in zip(*cols, strict=True)]
    rows = []
    for i, row in enumerate(table):
        missing = [c for c in names if c not in row]
        if missing:
            raise ValueError(f"`table` row {i} has no column(s) {missing}.")
        rows.append([row[c] for c in names])
    return rows


def _format_cell(value: Any, float_format: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return format(v, float_format)
    return str(value)


def _polygon_area(points: np.ndarray) -> float:
    """Absolute shoelace area of a closed (N, 2) contour."""
    y, x = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
