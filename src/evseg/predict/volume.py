"""Segment 3D volumes (Z, Y, X) with a 3D model: in-plane rescale, 3D tiled network, 3D instances, measures."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg._validate import check_image
from evseg.data.normalize import normalize_image
from evseg.data.rescale import rescale_image, resize_probability
from evseg.models.store import SegmentationModel
from evseg.predict.pipeline import (
    PredictOptions,
    Segmentation,
    postprocessing_parameters,
    probability_to_instances,
    resolve_precision,
    working_grid,
)

if TYPE_CHECKING:
    from evseg.io.readers import Image

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TILE_SHAPE_3D",
    "MEASUREMENTS_3D_NAME",
    "model_spatial_dims",
    "predict_volume_file",
    "segment_volume",
    "volume_probability",
    "volume_tile_shape",
    "write_measurement_tables",
]

#: Tile ``(Z, Y, X)`` of 3D inference when neither the options nor the model config give one.
DEFAULT_TILE_SHAPE_3D = (32, 128, 128)
#: Measurement table of volumes (its columns differ from the 2D ``measurements.csv``).
MEASUREMENTS_3D_NAME = "measurements_3d.csv"
#: A volume whose z/xy spacing ratio differs from the training grid's by more than this factor warns.
_ANISOTROPY_TOLERANCE = 1.5


def model_spatial_dims(model: SegmentationModel | str) -> int:
    """2 or 3: the spatial dimensions a model works on (``"classical"`` and older models: 2).

    Read from the model config (``arch_kwargs["spatial_dims"]``), so it works without the network.
    """
    if not isinstance(model, SegmentationModel):
        return 2
    return int(model.config.get("arch_kwargs", {}).get("spatial_dims", 2))


def _check_3d_model(model: SegmentationModel | str) -> SegmentationModel:
    if not isinstance(model, SegmentationModel):
        raise ValueError(f"model {model!r} works on 2D images only; segment volumes with a 3D model.")
    if model_spatial_dims(model) != 3:
        raise ValueError(
            f"model {model.name!r} is a 2D model; volumes need a 3D model (trained with --spatial-dims 3), "
            "or segment the slices one by one as 2D images."
        )
    return model


def volume_tile_shape(
    model: SegmentationModel, volume_shape: Sequence[int], tile_shape: Sequence[int] | None = None
) -> tuple[int, int, int]:
    """The ``(Z, Y, X)`` tile used on a volume of ``volume_shape`` (on the model grid).

    The requested tile (``tile_shape``, else the model config's ``tile_shape_3d``, else
    :data:`DEFAULT_TILE_SHAPE_3D`) is cut to the volume, and where the volume is larger, rounded
    down to a multiple of the network's down-sampling factor (``required_divisor``) so tiles need
    no internal padding.
    """
    requested = tile_shape or model.config.get("tile_shape_3d") or DEFAULT_TILE_SHAPE_3D
    divisor = getattr(model.network, "required_divisor", (1, 1, 1))
    out = []
    for req, size, div in zip(requested, volume_shape, divisor, strict=True):
        t = min(int(req), int(size))
        if t < size:
            t = max(div, t - t % div)
        out.append(min(t, int(size)))
    return tuple(out)  # type: ignore[return-value]


def volume_probability(
    model: SegmentationModel,
    normalized: np.ndarray,
    *,
    tile_shape: Sequence[int],
    overlap: int | Sequence[int],
    halo: int | Sequence[int] | None = None,
    precision: str = "auto",
    batch_size: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Run a 3D network over a normalised volume in blended 3D tiles.

    Parameters
    ----------
    model : SegmentationModel
        A 3D model.
    normalized : ndarray of float32, shape (Z, Y, X)
        Volume on the model's grid, normalised as the model expects.
    tile_shape : (int, int, int)
        Tile size (voxels); cut to the volume where it is smaller.
    overlap : int or (int, int, int)
        Tile overlap (voxels) per axis; cut to ``tile - 1``.
    halo : int, (int, int, int) or None
        Voxels at inner tile borders whose output is discarded; ``None``: ``overlap // 2``. With
        ``halo >= model.network.halo`` and tile starts on the pooling grid the result equals
        untiled inference.
    precision : {"auto", "fp32", "bf16"}
    batch_size : int
        Tiles per network call.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    ndarray of float32, shape (K, Z, Y, X)
        Sigmoid probabilities of the K output channels (channel 0 = foreground).
    """
    from evseg.predict.tiling import tiled_predict, torch_predictor

    volume = check_image(normalized, name="normalized", ndim=(3,))
    tile = tuple(min(int(t), s) for t, s in zip(tile_shape, volume.shape, strict=True))
    overlaps = np.broadcast_to(np.asarray(overlap, dtype=int), (3,))
    overlaps = tuple(int(min(o, t - 1)) if t > 1 else 0 for o, t in zip(overlaps, tile, strict=True))
    halos = tuple(o // 2 for o in overlaps) if halo is None else halo
    predictor = torch_predictor(model.network, precision=resolve_precision(precision))
    return tiled_predict(
        volume[None].astype(np.float32, copy=False),
        predictor,
        tile_shape=tile,
        overlap=overlaps,
        halo=halos,
        blend="gaussian",
        batch_size=batch_size,
        progress=progress,
    )


def _voxel_triple(voxel_size_nm: float | Sequence[float | None] | None) -> tuple[float | None, ...]:
    """``(z, y, x)`` with ``None`` for unknown axes, from None, one number or three."""
    if voxel_size_nm is None:
        return (None, None, None)
    if np.ndim(voxel_size_nm) == 0:
        voxel_size_nm = (voxel_size_nm,) * 3
    values = tuple(voxel_size_nm)
    if len(values) != 3:
        raise ValueError(f"`voxel_size_nm` must be one number or (z, y, x), got {voxel_size_nm!r}.")
    out = []
    for v in values:
        if v is not None and not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"`voxel_size_nm` entries must be positive numbers of nm or None, got {voxel_size_nm!r}.")
        out.append(None if v is None else float(v))
    return tuple(out)


def _warn_if_anisotropy_differs(model: SegmentationModel, z_nm: float | None, grid_px: float | None,
                                source: str) -> None:
    trained = model.config.get("voxel_size_nm")
    if not trained or z_nm is None or grid_px is None or trained[0] is None:
        return
    ratio_trained = float(trained[0]) / float(trained[-1])
    ratio_here = z_nm / grid_px
    if max(ratio_here / ratio_trained, ratio_trained / ratio_here) > _ANISOTROPY_TOLERANCE:
        warnings.warn(
            f"{source}: z spacing / in-plane pixel is {ratio_here:.2f} on the model grid, but the model was "
            f"trained at {ratio_trained:.2f} (z is not rescaled); results may be worse.",
            stacklevel=3,
        )


def segment_volume(
    model: SegmentationModel,
    volume: np.ndarray,
    *,
    voxel_size_nm: float | Sequence[float | None] | None,
    options: PredictOptions = PredictOptions(),
    source: str = "volume",
) -> Segmentation:
    """Segment one volume with a 3D model: in-plane rescale, normalise, 3D tiles, 3D instances.

    Parameters
    ----------
    model : SegmentationModel
        A 3D model (``model_spatial_dims(model) == 3``).
    volume : ndarray, shape (Z, Y, X)
        Grey volume in any real dtype.
    voxel_size_nm : float, (z, y, x) or None
        Voxel size in nm; an axis may be ``None`` (unknown), e.g. ``(None, 4.6, 4.6)``. Only Y and X
        are rescaled to the model's pixel size (Z is kept, as in training). Unknown in-plane size:
        the volume is assumed to be at the model's pixel size (with a warning) and results are in
        voxels. Unknown Z: sizes are filtered as if voxels were cubic.
    options : PredictOptions
        ``tile_shape_3d`` sets the tile (default: the model's, else ``(32, 128, 128)``); the overlap
        is a quarter of the tile per axis, at most ``options.overlap``; post-processing overrides as
        in 2D. ``"radon"`` splitting is refused (2D only); a model whose stored split method is
        ``"radon"`` uses ``"watershed"`` instead.
    source : str
        Name used in messages.

    Returns
    -------
    Segmentation
        Probability and labels ``(Z, Y, X)`` on the input grid, ``pixel_size_nm`` (in-plane) and
        ``voxel_size_nm`` (``None`` unless all three axes are known).

    Raises
    ------
    ValueError
        If ``volume`` is not 3D, ``model`` is not a 3D model, or ``"radon"`` splitting is asked for.
    """
    model = _check_3d_model(model)
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise ValueError(
            f"{source}: a 3D model needs a (Z, Y, X) volume, got shape {arr.shape}; "
            "segment 2D images with a 2D model."
        )
    arr = check_image(arr, name="volume", ndim=(3,))
    z_nm, y_nm, x_nm = _voxel_triple(voxel_size_nm)
    pixel_nm = None if y_nm is None or x_nm is None else (y_nm + x_nm) / 2
    working_px, factor = working_grid(model, pixel_nm, source)
    params = postprocessing_parameters(model, options)
    if params["split_method"] == "radon":
        if options.split_method is not None:
            raise ValueError(
                f"{source}: split method 'radon' works on 2D images only; for volumes use 'watershed' or 'none'."
            )
        logger.info("%s: the model's split method 'radon' is 2D only; using 'watershed' in 3D", source)
        params["split_method"] = "watershed"
    if float(np.ptp(arr)) == 0.0:
        logger.warning("%s: the volume is constant; no objects can be found.", source)
    scaled = arr.astype(np.float32) if factor == 1.0 else np.stack([rescale_image(p, factor) for p in arr])
    if model.pixel_size_nm is not None:
        _warn_if_anisotropy_differs(model, z_nm, model.pixel_size_nm, source)
    normalized = normalize_image(scaled, model.normalization)
    tile = volume_tile_shape(model, normalized.shape, options.tile_shape_3d)
    overlap = tuple(min(options.overlap, t // 4) if t < s else 0
                    for t, s in zip(tile, normalized.shape, strict=True))
    probability = volume_probability(model, normalized, tile_shape=tile, overlap=overlap,
                                     precision=options.precision, batch_size=options.batch_size,
                                     progress=options.progress)
    probability = np.stack([resize_probability(p, arr.shape) for p in probability])
    if working_px is None:
        filter_voxel = None
    else:
        if z_nm is None:
            logger.info("%s: z spacing unknown; object sizes are filtered as if voxels were cubic", source)
        filter_voxel = (z_nm if z_nm is not None else working_px, working_px, working_px)
    labels = probability_to_instances(probability, params=params, pixel_size_nm=filter_voxel)
    known = None if (z_nm is None or pixel_nm is None) else (z_nm, y_nm, x_nm)
    return Segmentation(probability=probability[0], labels=labels, pixel_size_nm=pixel_nm, voxel_size_nm=known)


def predict_volume_file(
    model: SegmentationModel,
    image: Image,
    out_dir: Path,
    *,
    options: PredictOptions = PredictOptions(),
    outputs: Any = None,
    thumbnail_width: int | None = None,
) -> tuple[dict, dict, bytes | None, float | None]:
    """Segment one volume read from a file and write its outputs (3D counterpart of ``batch.segment_file``).

    Writes ``<stem>_labels.tif`` (uint16 ``(Z, Y, X)``, calibrated), and per ``outputs``
    ``<stem>_prob.tif`` (float32 ``(Z, Y, X)``) and ``<stem>_overlay.png`` (the outlines on the
    central slice ``Z // 2``). ImageJ ROI sets are 2D and not written for volumes.

    Parameters
    ----------
    model : SegmentationModel
        A 3D model.
    image : evseg.io.Image
        The volume as read by :func:`evseg.io.read_image` (``data`` ``(Z, Y, X)``).
    out_dir : Path
        Existing output folder.
    options : PredictOptions
    outputs : evseg.predict.batch.OutputOptions, optional
        Which files to write besides the labels (``rois`` is ignored); default all.
    thumbnail_width : int or None
        Also return a report thumbnail (JPEG of the central slice) this many pixels wide.

    Returns
    -------
    (summary, table, thumbnail, pixel_size_nm)
        The summary row (``evseg.measure.SUMMARY_COLUMNS``, diameters of the equal-volume spheres),
        the measurement table (an ``image`` column then :data:`evseg.measure.MEASUREMENT_COLUMNS_3D`),
        the thumbnail (``None`` unless asked) and the in-plane pixel size used (nm or ``None``).

    Raises
    ------
    ValueError
        If the file holds a 2D image (naming the file), or the model is not 3D.
    """
    from evseg.io import render_overlay, write_labels, write_png, write_probability
    from evseg.measure import measure_instances_3d, summarize_measurements

    path = Path(image.path) if image.path is not None else Path("volume")
    if image.data.ndim != 3:
        raise ValueError(
            f"{path}: a {image.data.ndim}D image (shape {image.data.shape}) was given to a 3D model; "
            "it needs (Z, Y, X) volumes."
        )
    voxel = image.voxel_size_nm
    if voxel is None and image.pixel_size_nm is not None:
        voxel = (None, image.pixel_size_nm, image.pixel_size_nm)
    result = segment_volume(model, image.data, voxel_size_nm=voxel, options=options, source=path.name)
    calibration = ({"pixel_size_nm": None, "voxel_size_nm": result.voxel_size_nm}
                   if result.voxel_size_nm is not None else {"pixel_size_nm": result.pixel_size_nm})
    stem = path.stem
    out_dir = Path(out_dir)
    write_labels(out_dir / f"{stem}_labels.tif", result.labels, **calibration)
    if outputs is None or outputs.probability:
        write_probability(out_dir / f"{stem}_prob.tif", result.probability, **calibration)
    middle = image.data.shape[0] // 2
    if outputs is None or outputs.overlay:
        write_png(out_dir / f"{stem}_overlay.png", render_overlay(image.data[middle], result.labels[middle]))
    table = measure_instances_3d(result.labels, image.data, voxel_size_nm=result.voxel_size_nm)
    table = {"image": np.full(len(table["label"]), path.name, dtype=object), **table}
    summary = summarize_measurements(table, image_name=path.name)
    thumbnail = None
    if thumbnail_width is not None:
        from evseg.report import make_thumbnail

        thumbnail = make_thumbnail(image.data[middle], result.labels[middle], width=thumbnail_width)
    return summary, table, thumbnail, result.pixel_size_nm


def write_measurement_tables(out_dir: Path, tables: Sequence[dict]) -> list[Path]:
    """Write the per-object tables of many images: 2D ones and 3D ones in separate CSV files.

    ``measurements.csv`` (always written, possibly with a header only) holds the rows of the 2D
    images (``image`` + :data:`evseg.measure.MEASUREMENT_COLUMNS`); ``measurements_3d.csv``
    (written only when some table is 3D, recognised by its ``volume_px`` column) holds those of
    volumes (``image`` + :data:`evseg.measure.MEASUREMENT_COLUMNS_3D`: centroid z/y/x, volume in
    voxels and nm³, equal-volume sphere diameter, surface area, sphericity, mean intensity).

    Parameters
    ----------
    out_dir : Path
        Output folder.
    tables : sequence of dict
        Tables of :func:`predict_volume_file` or ``evseg.predict.batch.predict_file``.

    Returns
    -------
    list of Path
        The files written.
    """
    from evseg.io import write_csv
    from evseg.measure import MEASUREMENT_COLUMNS, MEASUREMENT_COLUMNS_3D

    out_dir = Path(out_dir)
    flat = [t for t in tables if "volume_px" not in t]
    volumes = [t for t in tables if "volume_px" in t]
    written = []
    for name, group, columns, always in (("measurements.csv", flat, MEASUREMENT_COLUMNS, True),
                                         (MEASUREMENTS_3D_NAME, volumes, MEASUREMENT_COLUMNS_3D, False)):
        if not group and not always:
            continue
        columns = ("image", *columns)
        merged = {c: np.concatenate([np.asarray(t[c]) for t in group]) if group else np.zeros(0) for c in columns}
        written.append(write_csv(out_dir / name, merged, columns=columns))
    return written
