"""napari reader for electron-microscopy files (DM3/DM4, MRC) that keeps the pixel size in nm."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: File endings this reader claims; TIFF/PNG stay with napari's built-in reader.
READER_SUFFIXES: tuple[str, ...] = (".dm3", ".dm4", ".mrc", ".mrcs")

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Callable[..., list[LayerData]] | None:
    """Return :func:`read_tem_image` when every path is a DM3/DM4/MRC file, else ``None``.

    Parameters
    ----------
    path : path-like or sequence of path-like
        What napari asks about (one file or several).

    Returns
    -------
    callable or None
        ``None`` tells napari to try another reader.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or any(Path(p).suffix.lower() not in READER_SUFFIXES for p in paths):
        return None
    return read_tem_image


def read_tem_image(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[LayerData]:
    """Read EM files into napari image layers whose ``scale`` is the pixel size in nm.

    Parameters
    ----------
    path : path-like or sequence of path-like
        DM3/DM4/MRC files (read with :func:`evseg.io.read_image`).

    Returns
    -------
    list of (data, kwargs, "image")
        One layer per file: ``data`` is ``(Y, X)`` or ``(Z, Y, X)`` in the file's dtype;
        ``kwargs`` has ``name`` (the file stem), ``scale`` (nm per pixel on calibrated axes, 1 on
        uncalibrated ones), ``units`` (``"nm"`` or ``"pixel"`` per axis) and ``metadata["evseg"]``
        (``pixel_size_nm``, may be ``None``, and the reader's ``calibration`` source).

    Raises
    ------
    FileNotFoundError, evseg.io.ImageReadError
        As :func:`evseg.io.read_image`, naming the file.
    """
    from evseg.io import read_image

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        image = read_image(p)
        ndim = image.data.ndim
        if image.voxel_size_nm is not None:
            scale = tuple(float(s) for s in image.voxel_size_nm)
            units = ("nm",) * ndim
        elif image.pixel_size_nm is not None:
            scale = (1.0,) * (ndim - 2) + (image.pixel_size_nm,) * 2
            units = ("pixel",) * (ndim - 2) + ("nm",) * 2
        else:
            scale = (1.0,) * ndim
            units = ("pixel",) * ndim
        metadata = {
            "evseg": {
                "pixel_size_nm": image.pixel_size_nm,
                "calibration": image.metadata.get("calibration"),
                "path": str(p),
            }
        }
        kwargs = {"name": Path(p).stem, "scale": scale, "units": units, "metadata": metadata}
        layers.append((image.data, kwargs, "image"))
    return layers
