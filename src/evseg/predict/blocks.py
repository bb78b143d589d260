"""Segment huge 2D images in overlapping blocks, so memory stays bounded whatever the image size.

Each block of ``block_size`` input pixels is segmented with a margin around it (the whole pipeline
of :func:`evseg.predict.pipeline.segment_array`, normalised with percentiles of the whole image so
every block is scaled alike). An object is kept by the one block whose core contains the centre
of its bounding box, so objects crossing block borders are neither cut nor counted twice as long
as they are smaller than the margin. Kept objects are painted into one int32 label image with
consecutive ids; the foreground probability of each core goes into one float16 map.

Memory beyond the input and the label output: the float16 probability map (2 bytes per pixel) and
one block's working set (about 70 bytes per pixel of a block with its margins). For a 16384² image
with 2048-pixel blocks and 256-pixel margins that is about 0.5 GiB + 0.45 GiB.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from evseg.data.normalize import percentile_range

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel
    from evseg.predict.pipeline import PredictOptions, Segmentation

logger = logging.getLogger(__name__)

__all__ = ["block_grid", "block_margin_px", "keep_core_objects", "segment_in_blocks"]

#: Default margin around a block, in pixels of the model's grid.
DEFAULT_MARGIN_MODEL_PX = 256


def block_grid(size: int, block: int, margin: int) -> list[tuple[slice, slice]]:
    """Cores and padded extents of the blocks along one axis.

    Parameters
    ----------
    size : int
        Image size along the axis (pixels).
    block : int
        Core size (pixels, >= 1); the last core is shorter where ``size`` is not a multiple.
    margin : int
        Pixels added on both sides of each core (clipped at the image border).

    Returns
    -------
    list of (core, padded)
        Slices into the axis; the cores tile ``[0, size)`` without overlap.

    Examples
    --------
    >>> [(c.start, c.stop, p.start, p.stop) for c, p in block_grid(10, 4, 1)]
    [(0, 4, 0, 5), (4, 8, 3, 9), (8, 10, 7, 10)]
    """
    if block < 1 or margin < 0:
        raise ValueError(f"`block` must be >= 1 and `margin` >= 0, got {block} and {margin}.")
    out = []
    for start in range(0, size, block):
        stop = min(start + block, size)
        out.append((slice(start, stop), slice(max(start - margin, 0), min(stop + margin, size))))
    return out


def block_margin_px(model: SegmentationModel, pixel_size_nm: float | None, options: PredictOptions) -> int:
    """Margin around each block in input pixels (see :class:`~evseg.predict.pipeline.PredictOptions`)."""
    model_px = model.pixel_size_nm
    if options.block_margin_nm is not None:
        if pixel_size_nm is None:
            return math.ceil(options.block_margin_nm)  # pixel-size-free: the value is pixels
        return math.ceil(options.block_margin_nm / pixel_size_nm)
    if model_px is None or pixel_size_nm is None:
        return DEFAULT_MARGIN_MODEL_PX
    return math.ceil(DEFAULT_MARGIN_MODEL_PX * model_px / pixel_size_nm)


def keep_core_objects(labels: np.ndarray, core: tuple[slice, slice]) -> list[tuple[tuple[slice, slice], int]]:
    """Objects of a padded block whose bounding-box centre lies in the block's core.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Labels of the padded block.
    core : (slice, slice)
        The core, in the padded block's coordinates.

    Returns
    -------
    list of (bounding box, label id)
        Bounding boxes (slices into ``labels``) and ids of the kept objects.
    """
    kept = []
    for index, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        centre = [(s.start + s.stop - 1) / 2.0 for s in box]
        if all(c.start <= x < c.stop for x, c in zip(centre, core, strict=True)):
            kept.append((box, index + 1))
    return kept


def segment_in_blocks(
    model: SegmentationModel,
    image: np.ndarray,
    *,
    pixel_size_nm: float | None,
    options: PredictOptions,
    source: str = "image",
) -> Segmentation:
    """Segment a 2D image block by block (see the module docstring); same result type as ``segment_image``.

    Parameters
    ----------
    model : SegmentationModel
    image : ndarray, shape (Y, X)
        Grey image, any real dtype (not copied as a whole).
    pixel_size_nm : float or None
        Pixel size of ``image``.
    options : PredictOptions
        ``block_size`` and ``block_margin_nm`` set the blocks; the rest as in ``segment_image``.
    source : str
        Name used in messages.

    Returns
    -------
    Segmentation
        ``probability`` is float16 (foreground), ``labels`` int32 (ids increase block by block).
    """
    from evseg.predict.pipeline import Segmentation, postprocessing_parameters, segment_array, working_grid

    working_px, factor = working_grid(model, pixel_size_nm, source)
    params = postprocessing_parameters(model, options)
    spec = model.normalization
    intensity_range = percentile_range(image, low=float(spec.get("low", 1.0)), high=float(spec.get("high", 99.8)))
    margin = block_margin_px(model, pixel_size_nm, options)
    grids = [block_grid(n, options.block_size, margin) for n in image.shape]
    labels = np.zeros(image.shape, dtype=np.int32)
    probability = np.zeros(image.shape, dtype=np.float16)
    next_id = 1
    blocks = [(ry, rx) for ry in grids[0] for rx in grids[1]]
    logger.info("%s: %d x %d pixels, segmented in %d blocks of %d pixels (+%d margin)", source, *image.shape,
                len(blocks), options.block_size, margin)
    for (core_y, pad_y), (core_x, pad_x) in tqdm(blocks, desc="blocks", unit="block", disable=not options.progress):
        block_prob, block_labels = segment_array(model, image[pad_y, pad_x], factor=factor, working_px=working_px,
                                                 params=params, options=options, intensity_range=intensity_range)
        local_core = (slice(core_y.start - pad_y.start, core_y.stop - pad_y.start),
                      slice(core_x.start - pad_x.start, core_x.stop - pad_x.start))
        probability[core_y, core_x] = block_prob[(0, *local_core)]
        del block_prob
        for box, label_id in keep_core_objects(block_labels, local_core):
            target = labels[box[0].start + pad_y.start: box[0].stop + pad_y.start,
                            box[1].start + pad_x.start: box[1].stop + pad_x.start]
            target[(block_labels[box] == label_id) & (target == 0)] = next_id
            next_id += 1
    return Segmentation(probability=probability, labels=labels, pixel_size_nm=pixel_size_nm)
