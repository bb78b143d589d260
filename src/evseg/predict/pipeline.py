"""From an image to a probability map and instance labels with a model (tiling, rescaling, post-processing)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from evseg._registry import look_up_option
from evseg._validate import check_image, check_pixel_size
from evseg.data.normalize import normalize_image
from evseg.data.rescale import rescale_image, resize_probability
from evseg.models.store import SegmentationModel
from evseg.predict.backends import BACKENDS

logger = logging.getLogger(__name__)

#: Name under which the classical (no learning) baseline is used in place of a model.
CLASSICAL = "classical"
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class PredictOptions:
    """How to run a network over an image; ``None`` post-processing fields take the model's values.

    Attributes
    ----------
    tile_size : int
        Largest tile edge (pixels on the model's grid); the tiles actually used are the fewest that
        cover the image, shrunk to overlap as little as possible (:func:`balanced_tile`).
    overlap : int
        Tile overlap (pixels); seams are blended with a Gaussian window.
    batch_size : int
        Tiles per network call.
    precision : {"auto", "fp32", "bf16"}
        ``auto`` uses bf16 where the CPU supports it natively.
    threshold : float or None
        Foreground probability threshold.
    min_diameter_nm : float or None
        Objects with a smaller equivalent diameter are dropped.
    split_method : {"radon", "watershed", "none"} or None
        How touching objects are separated (``"radon"`` is 2D only).
    progress : bool
        Show a progress bar over tiles.
    tile_shape_3d : (int, int, int) or None
        ``(Z, Y, X)`` tile of a 3D model (voxels on the model's grid); ``None``: the model's
        ``tile_shape_3d`` config entry, else ``(32, 128, 128)`` (see :mod:`evseg.predict.volume`).
    backend : {"auto", "torch", "onnx", "openvino"}
        Runtime of the network (see :func:`evseg.predict.backends.resolve_backend`): ``auto`` uses
        OpenVINO when ``evseg[openvino]`` is installed, else ONNX Runtime when ``evseg[onnx]`` is
        installed and the network runs in fp32 (``precision`` ``"fp32"``, or ``"auto"`` on a CPU
        without native bf16), else PyTorch.
    block_size : int
        Core edge (input pixels) of the blocks that images of more than ``block_min_image_px``
        pixels are segmented in (see :mod:`evseg.predict.blocks`), which bounds memory on huge
        micrographs.
    block_margin_nm : float or None
        Margin around each block (nm; pixels where the pixel size is unknown), at least the
        largest object's diameter; ``None``: 256 model pixels (400 nm for the sEV model).
    block_min_image_px : int
        Images with more pixels than this are segmented in blocks (default 4096²: a 4096 x 4096
        micrograph is processed whole).
    """

    tile_size: int = 1024
    overlap: int = 64
    batch_size: int = 2
    precision: str = "auto"
    threshold: float | None = None
    min_diameter_nm: float | None = None
    split_method: str | None = None
    progress: bool = False
    tile_shape_3d: tuple[int, int, int] | None = None
    backend: str = "auto"
    block_size: int = 2048
    block_margin_nm: float | None = None
    block_min_image_px: int = 4096 * 4096

    def __post_init__(self) -> None:
        look_up_option(self.precision, PRECISIONS, what="precision")
        look_up_option(self.backend, BACKENDS, what="inference backend")
        if self.tile_size < 16:
            raise ValueError(f"`tile_size` must be >= 16 pixels, got {self.tile_size}.")
        if not 0 <= self.overlap < self.tile_size:
            raise ValueError(f"`overlap` must be >= 0 and < tile_size ({self.tile_size}), got {self.overlap}.")
        if self.block_size < 256:
            raise ValueError(f"`block_size` must be >= 256 pixels, got {self.block_size}.")
        if self.block_min_image_px < 0:
            raise ValueError(f"`block_min_image_px` must be >= 0, got {self.block_min_image_px}.")
        if self.block_margin_nm is not None and not self.block_margin_nm > 0:
            raise ValueError(f"`block_margin_nm` must be > 0, got {self.block_margin_nm}.")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"`threshold` must be in (0, 1), got {self.threshold}.")
        if self.tile_shape_3d is not None and (
            len(self.tile_shape_3d) != 3 or not all(int(t) >= 1 for t in self.tile_shape_3d)
        ):
            raise ValueError(f"`tile_shape_3d` must be 3 positive ints (Z, Y, X), got {self.tile_shape_3d!r}.")


@dataclass(frozen=True)
class Segmentation:
    """The result of segmenting one image (or volume), on the input's grid.

    Attributes
    ----------
    probability : ndarray of float32, shape (Y, X) or (Z, Y, X)
        Foreground probability (float16 for an image segmented in blocks, to halve its memory).
    labels : ndarray of int32, same shape
        Instance labels, 0 = background.
    pixel_size_nm : float or None
        (In-plane) pixel size of the input (``None``: unknown, results are in pixels).
    voxel_size_nm : tuple of float or None
        ``(z, y, x)`` voxel size of a volume (``None`` for 2D images and where Z is unknown).
    """

    probability: np.ndarray
    labels: np.ndarray
    pixel_size_nm: float | None
    voxel_size_nm: tuple[float, ...] | None = None


def resolve_precision(precision: str) -> str:
    """Turn ``"auto"`` into ``"bf16"`` where the CPU runs bf16 natively, else ``"fp32"``."""
    from evseg.predict.tiling import bf16_supported

    look_up_option(precision, PRECISIONS, what="precision")
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return precision


def balanced_tile(size: int, max_tile: int, overlap: int, *, divisor: int = 1) -> int:
    """The tile edge that covers ``size`` pixels with the fewest tiles of at most ``max_tile`` and least waste.

    With ``n = ceil((size - overlap) / (max_tile - overlap))`` tiles, each tile is made just large
    enough for ``n`` tiles overlapping by ``overlap`` to span ``size``, rounded up to a multiple of
    ``divisor`` (the network's down-sampling factor, so tiles need no internal padding) and capped
    at ``size``. E.g. 2048 px, tiles of at most 1024 with 64 px overlap: 3 tiles of 736 px (2208 px
    computed) instead of 3 tiles of 1024 (3072 px).

    Parameters
    ----------
    size : int
        Image size along the axis (pixels, >= 1).
    max_tile : int
        Largest tile edge allowed (pixels, > overlap).
    overlap : int
        Overlap of neighbouring tiles (pixels, >= 0).
    divisor : int
        Tile edges are rounded up to a multiple of this (when that still fits ``max_tile``).

    Returns
    -------
    int
        Tile edge in pixels, ``<= max(size, ...)`` and ``<= max_tile`` unless rounding to ``divisor`` forbids it.

    Examples
    --------
    >>> balanced_tile(2048, 1024, 64, divisor=16), balanced_tile(2048, 512, 64, divisor=16)
    (736, 464)
    >>> balanced_tile(300, 1024, 64)
    300
    """
    if size <= max_tile:
        return size
    n = -(-(size - overlap) // (max_tile - overlap))
    tile = -(-(size + (n - 1) * overlap) // n)
    rounded = -(-tile // divisor) * divisor
    return min(rounded if rounded <= max_tile else tile, size)


def network_probability(
    model: SegmentationModel, normalized: np.ndarray, *, options: PredictOptions = PredictOptions()
) -> np.ndarray:
    """Run the network over a normalised image in blended tiles.

    Parameters
    ----------
    model : SegmentationModel
    normalized : ndarray of float32, shape (Y, X)
        Image already on the model's grid and normalised as the model expects.
    options : PredictOptions

    Returns
    -------
    ndarray of float32, shape (K, Y, X)
        Sigmoid probabilities of the K output channels (channel 0 = foreground).
    """
    from evseg.predict.backends import make_predictor
    from evseg.predict.tiling import tiled_predict

    predictor = make_predictor(model, backend=options.backend, precision=options.precision)
    overlap = min(options.overlap, max(0, min(normalized.shape) - 1))
    divisors = model.network.required_divisor if hasattr(model.network, "required_divisor") else (1, 1)
    tile = tuple(balanced_tile(s, options.tile_size, overlap, divisor=d)
                 for s, d in zip(normalized.shape, divisors, strict=True))
    return tiled_predict(
        normalized[None].astype(np.float32, copy=False),
        predictor,
        tile_shape=tile,
        overlap=overlap,
        halo=overlap // 2,
        blend="gaussian",
        batch_size=options.batch_size,
        progress=options.progress,
    )


def postprocessing_parameters(
    model: SegmentationModel | str, options: PredictOptions = PredictOptions()
) -> dict[str, Any]:
    """The post-processing parameters in force: the model's, overridden by ``options``."""
    from evseg.models.store import DEFAULT_POSTPROCESSING

    params = dict(DEFAULT_POSTPROCESSING)
    if isinstance(model, SegmentationModel):
        params.update(model.postprocessing)
    for key in ("threshold", "min_diameter_nm", "split_method"):
        value = getattr(options, key)
        if value is not None:
            params[key] = value
    return params


def _hole_volume(area: float) -> float:
    """Volume of the ball whose diameter is that of the disc of ``area`` (same units, cubed)."""
    diameter = np.sqrt(4.0 * area / np.pi)
    return float(np.pi * diameter**3 / 6.0)


def probability_to_instances(
    probability: np.ndarray,
    *,
    params: dict[str, Any],
    pixel_size_nm: float | tuple[float, ...] | None,
) -> np.ndarray:
    """Turn network probabilities into instance labels (2D or 3D).

    Parameters
    ----------
    probability : ndarray of float32, shape (K, Y, X) or (K, Z, Y, X)
        Channel 0 = foreground; an optional channel 1 = object boundary.
    params : dict
        ``threshold``, ``min_diameter_nm``, ``max_hole_area_nm2``, ``split_method`` (and the
        ``*_px`` sizes, see below).
    pixel_size_nm : float, (float, float, float) or None
        Pixel size of the grid of ``probability``, used to turn the nm sizes into pixels; in 3D a
        ``(z, y, x)`` voxel size or one number for cubic voxels. ``None`` (a model that works in
        pixels) uses ``min_diameter_px`` and ``max_hole_area_px`` instead.

    Returns
    -------
    ndarray of int32, shape (Y, X) or (Z, Y, X)

    Raises
    ------
    ValueError
        If ``split_method`` is ``"radon"`` for a 3D probability (Radon splitting is 2D only).

    Notes
    -----
    In 3D, objects whose equivalent sphere diameter ``cbrt(6 V / pi)`` (``V`` in nm³ from the voxel
    size) is below ``min_diameter_nm`` are removed, and enclosed holes are filled up to the
    volume of the ball as wide as the disc of ``max_hole_area_nm2`` (likewise in voxels for
    ``max_hole_area_px``).
    """
    from evseg.instances import (
        probability_to_labels,
        relabel_sequential,
        remove_small_objects_by_diameter,
        split_instances,
    )
    from evseg.instances.boundary import boundary_seeded_watershed

    ndim = probability.ndim - 1
    split_method = str(params["split_method"])
    if ndim == 3 and split_method == "radon":
        raise ValueError(
            "split_method 'radon' works on 2D images only; for a 3D volume use 'watershed' or "
            "'none' (--split watershed)."
        )
    if pixel_size_nm is None:
        min_diameter_px = float(params["min_diameter_px"])
        max_hole_px = float(params["max_hole_area_px"])
        if ndim == 3:
            max_hole_px = _hole_volume(max_hole_px)
    else:
        spacing = np.broadcast_to(np.asarray(pixel_size_nm, dtype=np.float64), (ndim,))
        step = float(np.prod(spacing) ** (1.0 / ndim))  # edge of the cube (square) of one voxel's size
        min_diameter_px = float(params["min_diameter_nm"]) / step
        max_hole_px = float(params["max_hole_area_nm2"]) / step**2
        if ndim == 3:
            max_hole_px = _hole_volume(float(params["max_hole_area_nm2"])) / step**3
    if probability.shape[0] > 1:
        labels = boundary_seeded_watershed(
            probability[0], probability[1], threshold=float(params["threshold"]),
            boundary_threshold=float(params.get("boundary_threshold", 0.5)),
            min_seed_area_px=max(4.0, 0.1 * np.pi * (min_diameter_px / 2) ** 2),
        )
        if split_method != "none":
            labels = split_instances(labels, method=split_method)
        return relabel_sequential(remove_small_objects_by_diameter(labels, min_diameter_px=min_diameter_px))
    return probability_to_labels(
        probability[0],
        threshold=float(params["threshold"]),
        min_diameter_px=min_diameter_px,
        max_hole_area_px=max_hole_px,
        split_method=split_method,
    )


def working_grid(
    model: SegmentationModel | str, pixel_size_nm: float | None, source: str = "image"
) -> tuple[float | None, float]:
    """How an image is processed: (pixel size for the size filters, scale factor to the model grid).

    A model that works in pixels never rescales and filters sizes in pixels (``None``). A model with
    a pixel size rescales images of known pixel size to it; an image of unknown pixel size is
    assumed to be at the model's pixel size (with a warning), and its results are in pixels.
    """
    model_px = model.pixel_size_nm if isinstance(model, SegmentationModel) else 1.56
    if isinstance(model, SegmentationModel) and model_px is None:
        return None, 1.0
    if pixel_size_nm is None:
        warnings.warn(
            f"{source}: no pixel size in the file and none given (--pixel-size): assuming the "
            f"image is at {model_px:g} nm/px for processing; measurements are reported in pixels only.",
            stacklevel=3,
        )
        return model_px, 1.0
    if not isinstance(model, SegmentationModel):
        return pixel_size_nm, 1.0
    return pixel_size_nm, pixel_size_nm / model_px


def segment_image(
    model: SegmentationModel | str,
    image: np.ndarray,
    *,
    pixel_size_nm: float | None,
    options: PredictOptions = PredictOptions(),
    source: str = "image",
) -> Segmentation:
    """Segment one 2D image: rescale to the model's grid, normalise, tiled network, post-process.

    Parameters
    ----------
    model : SegmentationModel or "classical"
        A trained model, or ``"classical"`` for the no-learning baseline.
    image : ndarray, shape (Y, X)
        Grey image in any real dtype.
    pixel_size_nm : float or None
        Pixel size of ``image``. ``None``: unknown (a warning; the image is assumed to be at the
        model's pixel size and results are in pixels).
    options : PredictOptions
    source : str
        Name used in messages (e.g. the file name).

    Returns
    -------
    Segmentation
        Probability and labels on the input grid.
    """
    image = check_image(image, ndim=(2,))
    pixel_size_nm = check_pixel_size(pixel_size_nm)
    working_px, factor = working_grid(model, pixel_size_nm, source)
    params = postprocessing_parameters(model, options)
    if isinstance(model, str):
        look_up_option(model, (CLASSICAL,), what="model")
        from evseg.baselines.classical import segment_classical

        # Unknown pixel size: the baseline's own pixel limits apply (not an assumed nm scale).
        labels = segment_classical(image, pixel_size_nm=pixel_size_nm, min_diameter_nm=params["min_diameter_nm"])
        return Segmentation(
            probability=(labels > 0).astype(np.float32), labels=labels.astype(np.int32), pixel_size_nm=pixel_size_nm
        )
    if float(np.ptp(image)) == 0.0:
        logger.warning("%s: the image is constant; no objects can be found.", source)
    if image.size > options.block_min_image_px:
        from evseg.predict.blocks import segment_in_blocks

        return segment_in_blocks(model, image, pixel_size_nm=pixel_size_nm, options=options, source=source)
    probability, labels = segment_array(model, image, factor=factor, working_px=working_px, params=params,
                                        options=options)
    return Segmentation(probability=probability[0], labels=labels, pixel_size_nm=pixel_size_nm)


def segment_array(
    model: SegmentationModel,
    image: np.ndarray,
    *,
    factor: float,
    working_px: float | None,
    params: dict[str, Any],
    options: PredictOptions,
    intensity_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The network and instance steps of :func:`segment_image` on one array (a whole image or a block).

    Parameters
    ----------
    model : SegmentationModel
    image : ndarray, shape (Y, X)
        Grey image (input grid).
    factor : float
        Input-to-model grid scale factor (see :func:`working_grid`).
    working_px : float or None
        Pixel size of the model grid (nm), ``None`` for a model working in pixels.
    params : dict
        Post-processing parameters (see :func:`postprocessing_parameters`).
    options : PredictOptions
    intensity_range : (float, float), optional
        Normalisation percentiles computed beforehand (on the whole image, for blocks).

    Returns
    -------
    (probability, labels)
        ``(K, Y, X)`` float32 probabilities and ``(Y, X)`` int32 labels, on the input grid.
    """
    scaled = rescale_image(image, factor)
    normalized = normalize_image(scaled, model.normalization, intensity_range=intensity_range)
    del scaled
    probability = network_probability(model, normalized, options=options)
    del normalized
    if probability.shape[1:] != image.shape:
        probability = np.stack([resize_probability(p, image.shape) for p in probability])
    labels = probability_to_instances(probability, params=params, pixel_size_nm=working_px)
    return probability, labels
