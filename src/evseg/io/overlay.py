"""Render a quick-look RGB overlay: the grey image, object outlines and label ids."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from evseg._validate import check_image, check_labels, check_same_shape

logger = logging.getLogger(__name__)

__all__ = ["render_overlay"]

#: Above this many objects the ids are not drawn (they would cover the image).
MAX_IDS_DRAWN = 2000
_PERCENTILES = (1.0, 99.5)
_PERCENTILE_SAMPLE = 1 << 22  # pixels; larger images are subsampled on a regular grid for the range


def render_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    draw_ids: bool = True,
    color: Sequence[int] = (255, 64, 0),
) -> np.ndarray:
    """Draw object outlines and ids over a grey image.

    Parameters
    ----------
    image : ndarray
        Grey image ``(Y, X)``, any real dtype. It is mapped to 0..255 between its 1st and
        99.5th percentiles (computed on a regular subsample of about 4 million pixels for larger
        images) and clipped.
    labels : ndarray of int
        ``(Y, X)`` label image of the same shape, 0 = background.
    draw_ids : bool
        Write each object's id at its centroid (skipped, with a log note, above 2000 objects).
    color : sequence of 3 int
        RGB colour (0..255) of the outlines and ids; ids get a black edge for contrast.

    Returns
    -------
    ndarray of uint8
        ``(Y, X, 3)`` RGB image. Outlines are the objects' inner boundary pixels
        (``skimage.segmentation.find_boundaries(mode="inner")``), so they lie on the objects.

    Raises
    ------
    ValueError
        If the shapes differ, the image is not 2D or ``color`` is not three values in 0..255.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((20, 20), np.int32); lab[5:15, 5:15] = 1
    >>> rgb = render_overlay(np.zeros((20, 20)), lab, draw_ids=False)
    >>> rgb.shape, rgb.dtype.name, rgb[5, 5].tolist(), rgb[10, 10].tolist()
    ((20, 20, 3), 'uint8', [255, 64, 0], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    img = check_image(image, name="image", ndim=(2,))
    lab = check_labels(labels, name="labels", ndim=(2,))
    check_same_shape(img, lab, names=("image", "labels"))
    rgb_color = np.asarray(color)
    if rgb_color.shape != (3,) or rgb_color.min() < 0 or rgb_color.max() > 255:
        raise ValueError(f"`color` must be three values in 0..255 (R, G, B), got {color!r}.")
    rgb_color = rgb_color.astype(np.uint8)

    grey = _to_uint8(img)
    rgb = np.empty(grey.shape + (3,), np.uint8)
    rgb[...] = grey[..., None]
    rgb[find_boundaries(lab, mode="inner")] = rgb_color
    if draw_ids:
        rgb = _draw_ids(rgb, lab, tuple(int(c) for c in rgb_color))
    return rgb


def _to_uint8(img: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(math.sqrt(img.size / _PERCENTILE_SAMPLE)))
    lo, hi = np.percentile(img[::step, ::step], _PERCENTILES)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = (img.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def _draw_ids(rgb: np.ndarray, lab: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont
    from scipy import ndimage as ndi

    slices = ndi.find_objects(lab)
    ids = [k + 1 for k, sl in enumerate(slices) if sl is not None]
    if not ids:
        return rgb
    if len(ids) > MAX_IDS_DRAWN:
        logger.info("overlay: %d objects (> %d); ids not drawn", len(ids), MAX_IDS_DRAWN)
        return rgb
    size = int(np.clip(round(min(lab.shape) / 80), 10, 64))
    try:
        font = ImageFont.load_default(size=size)  # Pillow >= 10.1 (FreeType); scales with image
    except TypeError:
        font = ImageFont.load_default()
    stroke = max(1, size // 12) if isinstance(font, ImageFont.FreeTypeFont) else 0
    canvas = PILImage.fromarray(rgb)
    draw = ImageDraw.Draw(canvas)
    for k in ids:
        sl = slices[k - 1]
        rows, cols = np.nonzero(lab[sl] == k)
        cy, cx = rows.mean() + sl[0].start, cols.mean() + sl[1].start
        text = str(k)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        xy = (cx - (right - left) / 2 - left, cy - (bottom - top) / 2 - top)
        draw.text(xy, text, fill=color, font=font, stroke_width=stroke, stroke_fill=(0, 0, 0))
    return np.asarray(canvas).copy()
