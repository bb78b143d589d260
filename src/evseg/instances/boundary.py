"""Instances from a foreground + boundary probability pair: seeds inside objects, then watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed


def boundary_seeded_watershed(
    foreground: np.ndarray,
    boundary: np.ndarray,
    *,
    threshold: float = 0.5,
    boundary_threshold: float = 0.5,
    min_seed_area_px: float = 4,
) -> np.ndarray:
    """Label objects using a foreground map and a boundary map predicted by the network.

    The object mask is ``(foreground > threshold) | (boundary >= boundary_threshold)`` with its holes
    filled (a vesicle whose interior is uncertain but whose rim is predicted still counts whole).
    Seeds are the connected components of ``(foreground > threshold) & (boundary < boundary_threshold)``
    (object interiors cut apart by the predicted boundaries) of at least ``min_seed_area_px`` pixels;
    every mask pixel is then assigned to a seed by a watershed on the boundary map. Mask components
    without any seed keep one label of their own.

    Parameters
    ----------
    foreground, boundary : ndarray of float, shape (Y, X) or (Z, Y, X)
        Probabilities in [0, 1].
    threshold : float
        Foreground probability threshold.
    boundary_threshold : float
        Pixels with a boundary probability at or above this are not seeds.
    min_seed_area_px : float
        Seeds smaller than this (pixels) are ignored (noise).

    Returns
    -------
    ndarray of int32
        Instance labels, 0 = background.
    """
    if foreground.shape != boundary.shape:
        raise ValueError(
            f"`foreground` (shape {foreground.shape}) and `boundary` (shape {boundary.shape}) differ."
        )
    inside = foreground > threshold
    mask = ndi.binary_fill_holes(inside | (boundary >= boundary_threshold))
    seeds, n_seeds = ndi.label(inside & (boundary < boundary_threshold))
    if n_seeds:
        sizes = np.bincount(seeds.ravel(), minlength=n_seeds + 1)
        small = sizes < min_seed_area_px
        small[0] = False
        if small.any():
            seeds[small[seeds]] = 0
    labels = watershed(boundary, markers=seeds, mask=mask).astype(np.int32)
    orphans, n_orphans = ndi.label(mask & (labels == 0))
    if n_orphans:
        offset = labels.max()
        labels[orphans > 0] = orphans[orphans > 0] + offset
    return labels
