"""Read microscopy images and label images, with their physical pixel size in nanometres."""

from __future__ import annotations

import logging
import math
import os
import unicodedata
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evseg._validate import check_pixel_size

logger = logging.getLogger(__name__)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Image",
    "ImageReadError",
    "list_images",
    "read_image",
    "read_labels",
]

#: File name endings that :func:`read_image` and :func:`list_images` accept (case-insensitive).
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".mrc", ".mrcs", ".dm3", ".dm4"
)

EM_INSTALL_HINT = 'pip install "evseg[em]"'

# Length units -> nanometres. Keys are NFKC-normalised and lower-cased (so "Å" -> "å", "µ" -> "μ").
_NM_PER_UNIT: dict[str, float] = {
    "pm": 1e-3, "picometer": 1e-3, "picometre": 1e-3,
    "å": 0.1, "a": 0.1, "angstrom": 0.1, "ångström": 0.1,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "μm": 1e3, "um": 1e3, "micron": 1e3, "micrometer": 1e3, "micrometre": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
}
# Units that mean "not calibrated": no warning, the pixel size is simply unknown.
_NO_UNIT = {"", "pixel", "pixels", "px", "none", "<undefined>", "undefined"}
# TIFF ResolutionUnit tag values.
_RESUNIT_INCH, _RESUNIT_CM = 2, 3


class ImageReadError(ValueError):
    """A file could not be read as an image or label image; the message names the file."""


@dataclass(frozen=True, eq=False)
class Image:
    """A grey image with its calibration, as returned by :func:`read_image`.

    Attributes
    ----------
    data : ndarray
        Grey image, ``(Y, X)`` or ``(Z, Y, X)``, in the file's dtype (never rescaled; colour
        files are the exception: they become float luminance, see :func:`read_image`).
    pixel_size_nm : float or None
        In-plane pixel size in nanometres; ``None`` when unknown. For non-square pixels, the
        mean of the Y and X sizes.
    voxel_size_nm : tuple of float or None
        Size of a pixel along each axis of ``data``, in nanometres (``(Y, X)`` or
        ``(Z, Y, X)``); ``None`` when any axis is uncalibrated.
    path : Path or None
        The file read.
    metadata : dict
        Reader details: ``format``, ``calibration`` (where the pixel size came from: ``"ome"``,
        ``"imagej"``, ``"fei"``, ``"tiff-resolution"``, ``"mrc"``, ``"dm"``, ``"argument"`` or
        ``None``), ``units`` (the file's raw unit strings) and ``colour`` when converted.

    Notes
    -----
    Equality is identity (``eq=False``), since comparing arrays element-wise is ambiguous.
    """

    data: np.ndarray
    pixel_size_nm: float | None = None
    voxel_size_nm: tuple[float, ...] | None = None
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Raw:
    """What a format loader found: the array, per-axis (scale, unit) pairs and notes."""

    data: np.ndarray
    calibration: list[tuple[float, str] | None] | None  # one per spatial axis, or None
    metadata: dict[str, Any]
    colour: str | None = None  # "RGB"/"RGBA" when the last axis holds colour samples


# --------------------------------------------------------------------------------------------
# public functions


def read_image(path: str | os.PathLike, *, pixel_size_nm: float | None = None) -> Image:
    """Read a grey 2D or 3D image and its pixel size in nanometres.

    Supported: TIFF (8/16/32-bit integer and float; ImageJ ``unit``/``spacing`` and resolution
    tags, OME-TIFF ``PhysicalSizeX/Y/Z`` with units, FEI/Thermo ``PixelWidth``, plain TIFF
    resolution in centimetres), PNG and JPEG (via Pillow; never calibrated), MRC/MRCS (via
    ``mrcfile``; voxel size in Å) and Gatan DM3/DM4 (via ``rosettasciio``, else ``ncempy``).

    Parameters
    ----------
    path : path-like
        The image file. The reader is chosen by the suffix (see ``SUPPORTED_SUFFIXES``).
    pixel_size_nm : float, optional
        In-plane pixel size in nanometres. When given it always replaces the file's calibration
        (the file's Z spacing, if any, is kept).

    Returns
    -------
    Image
        ``data`` is ``(Y, X)`` or ``(Z, Y, X)`` in the file's dtype. Leading axes of length 1
        are dropped. Colour (RGB/RGBA) files become float luminance
        (``skimage.color.rgb2gray`` of the RGB part, in the input's value scale) with a
        warning, unless R = G = B exactly, in which case one channel is returned as it is.
        Alpha is ignored.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImageReadError
        If the file is corrupt, has an unsupported suffix or layout (several channels, more
        than 3 dimensions, a 1-D spectrum, complex values); the message names the file.
    ImportError
        For MRC or DM files when the optional readers are missing (``pip install "evseg[em]"``).

    Warns
    -----
    UserWarning
        On colour-to-grey conversion, unknown calibration units, and non-square pixels whose
        sizes differ by more than 1 % (``pixel_size_nm`` is then their mean).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from evseg.io import write_tiff
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
    >>> _ = write_tiff(p, np.zeros((4, 5), np.uint16), pixel_size_nm=1.56)
    >>> img = read_image(p)
    >>> img.data.shape, img.data.dtype.name, round(img.pixel_size_nm, 6)
    ((4, 5), 'uint16', 1.56)
    """
    path = _check_file(path)
    override = check_pixel_size(pixel_size_nm)
    raw = _load(path)
    data, calibration = _squeeze_leading(raw.data, raw.calibration, path, colour=raw.colour)
    metadata = dict(raw.metadata)
    if raw.colour is not None:
        data, converted = _colour_to_grey(data, path)
        if converted:
            metadata["colour"] = raw.colour
    _check_image_layout(data, path)

    with warnings.catch_warnings():
        if override is not None:  # the file's units do not matter when the size is given
            warnings.simplefilter("ignore", UserWarning)
        voxel = _to_nm(calibration, path) if calibration is not None else None
    if override is not None:
        in_file = _in_plane(voxel, path, warn=False) if voxel is not None else None
        if in_file is not None and not math.isclose(in_file, override, rel_tol=1e-6):
            logger.info("%s: pixel_size_nm=%g replaces the file's %g nm", path, override, in_file)
        z = voxel[0] if (voxel is not None and data.ndim == 3) else None
        if data.ndim == 2:
            voxel = (override, override)
        else:
            voxel = (z, override, override) if z is not None else None
        metadata["calibration"] = "argument"
        return Image(data, override, _all_known(voxel), path, metadata)
    pixel = _in_plane(voxel, path, warn=True) if voxel is not None else None
    if pixel is None:
        metadata["calibration"] = None
    return Image(data, pixel, _all_known(voxel), path, metadata)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an integer label image (0 = background, k > 0 = object k).

    Parameters
    ----------
    path : path-like
        TIFF, PNG or MRC file (any suffix in ``SUPPORTED_SUFFIXES``).

    Returns
    -------
    ndarray of int
        ``(Y, X)`` or ``(Z, Y, X)`` in the file's integer dtype (e.g. uint16). Binary masks such
        as {0, 255} are returned as they are: whether they are one class or objects to label is
        the caller's decision. 1-bit images become uint8 {0, 1}. RGB files whose channels are
        equal are read as one channel. Float files holding only whole numbers are converted to
        int32 with a warning.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImageReadError
        If the file cannot be read, holds colour (RGB) labels, non-integer floats or negative
        values; the message names the file.
    """
    path = _check_file(path)
    raw = _load(path)
    data, _ = _squeeze_leading(raw.data, raw.calibration, path, colour=raw.colour)
    if raw.colour is not None:
        rgb = data[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ImageReadError(
                f"{path}: labels must be integer single-channel images (0 = background), got a "
                f"colour ({raw.colour}) image; export the label image itself, not a coloured rendering."
            )
        data = rgb[..., 0]
    _check_image_layout(data, path)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise ImageReadError(
                f"{path}: labels must be integer (0 = background, k > 0 = object k), got "
                f"{data.dtype} values that are not whole numbers."
            )
        if data.size and (data.min() < 0 or data.max() > np.iinfo(np.int32).max):
            raise ImageReadError(f"{path}: float labels out of range for int32 ({data.min()}..{data.max()}).")
        warnings.warn(
            f"{path}: labels stored as {data.dtype}; converted to int32 (values are whole numbers).",
            stacklevel=2,
        )
        return data.astype(np.int32)
    if not np.issubdtype(data.dtype, np.integer):
        raise ImageReadError(f"{path}: labels must be integer, got dtype {data.dtype}.")
    if data.size and np.issubdtype(data.dtype, np.signedinteger) and data.min() < 0:
        raise ImageReadError(f"{path}: labels must be non-negative (0 = background), min is {data.min()}.")
    return data


def list_images(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Expand files and folders into a list of image files.

    Parameters
    ----------
    paths : sequence of path-like (or one path)
        Image files and/or folders. Folders are not searched recursively; their files with a
        suffix in ``SUPPORTED_SUFFIXES`` are taken in sorted order, hidden files (name starting
        with ".") are skipped.

    Returns
    -------
    list of Path
        In the order given (each folder's files sorted), without duplicates.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If a folder holds no image, or a file given explicitly has an unsupported suffix.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files = sorted(
                f for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and _is_supported(f)
            )
            if not files:
                raise ValueError(
                    f"Folder {p} holds no image file; supported suffixes: {', '.join(SUPPORTED_SUFFIXES)}."
                )
            found.extend(files)
        elif p.is_file():
            if not _is_supported(p):
                raise ValueError(
                    f"{p} is not a supported image file; supported suffixes: {', '.join(SUPPORTED_SUFFIXES)}."
                )
            found.append(p)
        else:
            raise FileNotFoundError(f"No such file or folder: {p}")
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------------------------
# shared steps


def _is_supported(p: Path) -> bool:
    return p.suffix.lower() in SUPPORTED_SUFFIXES


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such image file: {p}")
    if p.is_dir():
        raise ImageReadError(f"{p} is a folder, not an image file; use evseg.io.list_images for folders.")
    return p


def _load(path: Path) -> _Raw:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _load_tiff(path)
    if suffix in (".png", ".jpg", ".jpeg"):
        return _load_pil(path)
    if suffix in (".mrc", ".mrcs"):
        return _load_mrc(path)
    if suffix in (".dm3", ".dm4"):
        return _load_dm(path)
    raise ImageReadError(
        f"{path}: unsupported file type {path.suffix!r}; supported suffixes: {', '.join(SUPPORTED_SUFFIXES)}."
    )


def _squeeze_leading(
    data: np.ndarray, calibration: list | None, path: Path, *, colour: str | None
) -> tuple[np.ndarray, list | None]:
    """Drop leading axes of length 1 (keeping at least two spatial axes) and their calibration."""
    if data.dtype.names:  # structured RGB(A) (DM, MRC mode 16)
        raise ImageReadError(f"{path}: structured (packed colour) data is not supported.")
    n_spatial = data.ndim - (1 if colour else 0)
    while n_spatial > 2 and data.shape[0] == 1:
        data = data[0]
        calibration = calibration[1:] if calibration is not None else None
        n_spatial -= 1
    if n_spatial == 2 and min(data.shape[:2]) == 1:
        raise ImageReadError(
            f"{path} holds a 1-D signal of {max(data.shape[:2])} values (a spectrum?), not an image."
        )
    return data, calibration


def _colour_to_grey(data: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    rgb = data[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0]), False
    from skimage.color import rgb2gray

    ftype = np.float64 if rgb.dtype == np.float64 else np.float32
    warnings.warn(
        f"{path} is a colour image; converted to grey luminance ({np.dtype(ftype).name}, "
        "0.2125 R + 0.7154 G + 0.0721 B, same value scale). Save a grey image to avoid this.",
        stacklevel=3,
    )
    return rgb2gray(rgb.astype(ftype), channel_axis=-1).astype(ftype, copy=False), True


def _check_image_layout(data: np.ndarray, path: Path) -> None:
    if data.ndim not in (2, 3):
        raise ImageReadError(
            f"{path}: expected a 2D (Y, X) or 3D (Z, Y, X) grey image, got shape {data.shape}."
        )
    if np.iscomplexobj(data) or not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ImageReadError(f"{path}: unsupported pixel type {data.dtype} (complex or non-numeric).")


def _nm_per_unit(unit: Any, path: Path) -> float | None:
    """Nanometres per ``unit``; ``None`` (silently) for 'pixel'/empty, ``None`` + warning if unknown."""
    if unit is None or not isinstance(unit, str):
        return None
    key = unicodedata.normalize("NFKC", unit.replace("\\u00B5", "µ").replace("\\u00b5", "µ"))
    key = key.strip().lower()
    if key in _NO_UNIT:
        return None
    if key in _NM_PER_UNIT:
        return _NM_PER_UNIT[key]
    if key.endswith("s") and key[:-1] in _NM_PER_UNIT:  # "microns", "nanometers"
        return _NM_PER_UNIT[key[:-1]]
    if key in ("inch", "inches", "in"):
        warnings.warn(
            f"{path}: calibration in inches (a screen/print dpi default, e.g. from a JPEG opened in "
            "ImageJ) is ignored; pixel size left unknown (pass pixel_size_nm= to set it).",
            stacklevel=4,
        )
        return None
    warnings.warn(
        f"{path}: unknown or non-length calibration unit {unit!r}; pixel size left unknown "
        "(pass pixel_size_nm= to set it).",
        stacklevel=4,
    )
    return None


def _to_nm(calibration: list[tuple[float, str] | None], path: Path) -> tuple[float | None, ...]:
    out: list[float | None] = []
    for cal in calibration:
        if cal is None:
            out.append(None)
            continue
        scale, unit = cal
        factor = _nm_per_unit(unit, path)
        ok = factor is not None and scale is not None and np.isfinite(scale) and scale > 0
        out.append(float(scale) * factor if ok else None)
    return tuple(out)


def _in_plane(voxel: tuple[float | None, ...], path: Path, *, warn: bool) -> float | None:
    y, x = voxel[-2], voxel[-1]
    if y is None or x is None:
        return None
    mean = (y + x) / 2
    if warn and abs(y - x) > 0.01 * mean:
        warnings.warn(
            f"{path} has non-square pixels (Y {y:g} nm, X {x:g} nm); pixel_size_nm is their mean "
            f"{mean:g} nm and voxel_size_nm keeps both.",
            stacklevel=3,
        )
    return mean


def _all_known(voxel: tuple[float | None, ...] | None) -> tuple[float, ...] | None:
    if voxel is None or any(v is None for v in voxel):
        return None
    return tuple(float(v) for v in voxel)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# format loaders


def _load_tiff(path: Path) -> _Raw:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            data = series.asarray()
            axes = series.axes
            page = tf.pages[0]
            ome = tf.ome_metadata if tf.is_ome else None
            imagej = tf.imagej_metadata
            fei = tf.fei_metadata if tf.is_fei else None
            xres, yres = _tag(page, "XResolution"), _tag(page, "YResolution")
            resunit = _tag(page, "ResolutionUnit")
    except MemoryError:
        raise
    except Exception as exc:  # tifffile, codec and struct errors differ by version
        raise ImageReadError(f"{path} could not be read as TIFF: {exc}") from exc

    data, axes, colour = _tiff_axes(data, axes, path)
    spatial = axes.replace("S", "")
    meta: dict[str, Any] = {"format": "tiff", "axes": axes}
    yx: list[tuple[float, str] | None] = [None, None]
    z: tuple[float, str] | None = None
    source = None
    sizes = _ome_sizes(ome) if ome else {}
    if sizes:
        yx = [sizes.get("Y"), sizes.get("X")]
        z, source, meta["format"] = sizes.get("Z"), "ome", "ome-tiff"
    elif imagej is not None and imagej.get("unit") is not None:
        unit = imagej["unit"]
        yx = [_res(yres, imagej.get("yunit", unit)), _res(xres, unit)]
        if imagej.get("spacing") is not None:
            z = (float(imagej["spacing"]), imagej.get("zunit", unit))
        source, meta["format"] = "imagej", "imagej-tiff"
    elif fei is not None:
        scan = fei.get("Scan", {})
        yx = [(scan.get("PixelHeight"), "m"), (scan.get("PixelWidth"), "m")]
        source = "fei"
    elif resunit == _RESUNIT_CM:
        yx, source = [_res(yres, "cm"), _res(xres, "cm")], "tiff-resolution"
    elif resunit == _RESUNIT_INCH and xres is not None:
        meta["resolution_dpi"] = _ratio(xres)  # 72/96/300 dpi defaults are not calibrations
    calibration: list[tuple[float, str] | None] = list(yx)
    if len(spatial) == 3:
        calibration.insert(0, z if spatial[0] == "Z" else None)
    meta["calibration"] = source
    meta["units"] = [c[1] if c else None for c in calibration]
    return _Raw(data, calibration, meta, colour)


def _tag(page: Any, name: str) -> Any:
    tag = page.tags.get(name)
    return None if tag is None else tag.value


def _ratio(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        num, den = value
        return num / den if den else None
    return float(value)


def _res(res: Any, unit: str) -> tuple[float, str] | None:
    """(pixel size, unit) from a TIFF resolution (pixels per unit)."""
    per_unit = _ratio(res)
    if not per_unit or per_unit <= 0:
        return None
    return (1.0 / per_unit, unit)


def _tiff_axes(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str, str | None]:
    """Reduce tifffile axes to 'YX', 'ZYX' (any single stack axis) and an optional last 'S'."""
    keep = [i for i, a in enumerate(axes) if a in "YXS" or data.shape[i] > 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes and not axes.endswith("S"):
        i = axes.index("S")
        data = np.moveaxis(data, i, -1)
        axes = axes[:i] + axes[i + 1 :] + "S"
    colour = None
    if axes.endswith("S"):
        n = data.shape[-1]
        if n in (3, 4):
            colour = "RGB" if n == 3 else "RGBA"
        elif n == 1:
            data, axes = data[..., 0], axes[:-1]
        else:
            raise ImageReadError(f"{path}: {n} samples per pixel (axes {axes}) is not a grey or RGB image.")
    spatial = axes.replace("S", "")
    if "C" in spatial:
        raise ImageReadError(
            f"{path} has {data.shape[axes.index('C')]} channels (axes {axes}, shape {data.shape}); "
            "evseg needs one grey channel: save a single channel (Fiji: Image > Color > Split Channels)."
        )
    if len(spatial) > 3 or not spatial.endswith("YX"):
        raise ImageReadError(
            f"{path}: expected a 2D (Y, X) or 3D (Z, Y, X) image, got axes {axes} with shape {data.shape}."
        )
    return data, axes, colour


def _ome_sizes(xml: str) -> dict[str, tuple[float, str]]:
    """PhysicalSizeX/Y/Z and their units from OME-XML (the unit defaults to µm)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    sizes: dict[str, tuple[float, str]] = {}
    if pixels is None:
        return sizes
    for ax in "XYZ":
        value = pixels.get(f"PhysicalSize{ax}")
        if value is not None:
            sizes[ax] = (float(value), pixels.get(f"PhysicalSize{ax}Unit", "µm"))
    return sizes


def _load_pil(path: Path) -> _Raw:
    from PIL import Image as PILImage

    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    try:
        with PILImage.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode == "PA":
                im = im.convert("RGBA")
            elif im.mode not in ("1", "L", "LA", "I", "F", "RGB", "RGBA") and not im.mode.startswith("I;16"):
                im = im.convert("RGB")
            mode = im.mode
            data = np.array(im)
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError
        raise ImageReadError(f"{path} could not be read as {fmt}: {exc}") from exc
    colour = None
    if mode == "LA":
        data = data[..., 0]
    elif mode in ("RGB", "RGBA"):
        colour = mode
    return _Raw(data, None, {"format": fmt.lower(), "calibration": None}, colour)


def _load_mrc(path: Path) -> _Raw:
    try:
        import mrcfile
    except ImportError as exc:
        raise ImportError(f"Reading {path} (MRC) needs the optional package mrcfile: {EM_INSTALL_HINT}") from exc
    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.array(mrc.data)
            vs = mrc.voxel_size
            angstrom = (float(vs.z), float(vs.y), float(vs.x))
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path} could not be read as MRC: {exc}") from exc
    cal: list[tuple[float, str] | None] = [(a, "Å") if a > 0 else None for a in angstrom]
    calibration = cal[-data.ndim :] if data.ndim <= 3 else None
    source = "mrc" if any(c is not None for c in cal) else None
    return _Raw(data, calibration, {"format": "mrc", "calibration": source})


def _load_dm(path: Path) -> _Raw:
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError:
        return _load_dm_ncempy(path)
    try:
        signals = file_reader(str(path), lazy=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path} could not be read as a Gatan DM file: {exc}") from exc
    if not signals:
        raise ImageReadError(f"{path} holds no image.")
    # the first dataset with at least two axes longer than 1, else the first one
    sig = next((s for s in signals if sum(n > 1 for n in np.shape(s["data"])) >= 2), signals[0])
    data = np.asarray(sig["data"])
    axes = sorted(sig["axes"], key=lambda a: a.get("index_in_array", 0))
    calibration = [(float(a.get("scale", 1.0)), a.get("units")) for a in axes]
    if len(calibration) != data.ndim:
        calibration = None
    return _Raw(data, calibration, {"format": "dm", "calibration": "dm", "reader": "rosettasciio"})


def _load_dm_ncempy(path: Path) -> _Raw:
    try:
        from ncempy.io import dm
    except ImportError as exc:
        raise ImportError(
            f"Reading {path} (Gatan DM3/DM4) needs rosettasciio (or ncempy): {EM_INSTALL_HINT}"
        ) from exc
    try:
        with dm.fileDM(str(path)) as f:
            ds = f.getDataset(0)
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path} could not be read as a Gatan DM file: {exc}") from exc
    data = np.asarray(ds["data"])
    sizes, units = list(ds.get("pixelSize", [])), list(ds.get("pixelUnit", []))
    calibration = [(float(s), u) for s, u in zip(sizes, units, strict=False)] if len(sizes) == data.ndim else None
    return _Raw(data, calibration, {"format": "dm", "calibration": "dm", "reader": "ncempy"})
