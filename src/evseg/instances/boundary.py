"""Instances from a foreground + boundary probability pair: seeds inside objects, then watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from evseg.instances.components import fill_enclosed_holes


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
    without any seed keep one label of their own. The watershed runs only inside the bounding box of
    each mask component holding two or more seeds (the others are labelled by a look-up), so the
    cost grows with the clustered objects, not with the image.

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
    mask = fill_enclosed_holes(inside | (boundary >= boundary_threshold))
    seeds, n_seeds = ndi.label(inside & (boundary < boundary_threshold))
    components, n_components = ndi.label(mask)
    # The component of every seed (a seed lies inside the mask, within one component).
    seed_pixels = seeds > 0
    component_of_seed = np.zeros(n_seeds + 1, dtype=np.int64)
    component_of_seed[seeds[seed_pixels]] = components[seed_pixels]
    keep = np.bincount(seeds[seed_pixels], minlength=n_seeds + 1) >= min_seed_area_px
    keep[0] = False
    seeds_per_component = np.bincount(component_of_seed[keep], minlength=n_components + 1)
    # A component with one seed is that seed's object; one without seeds gets a label of its own
    # (after the seed labels). Only components holding several seeds need the watershed.
    lut = np.zeros(n_components + 1, dtype=np.int32)
    kept_ids = np.flatnonzero(keep)
    single = seeds_per_component[component_of_seed[kept_ids]] == 1
    lut[component_of_seed[kept_ids[single]]] = kept_ids[single]
    orphans = np.flatnonzero(seeds_per_component == 0)[1:]
    lut[orphans] = n_seeds + 1 + np.arange(orphans.size, dtype=np.int32)
    labels = lut[components]
    markers_lut = np.where(keep, np.arange(n_seeds + 1), 0).astype(np.int32)
    for c, box in enumerate(ndi.find_objects(components), start=1):
        if box is None or seeds_per_component[c] < 2:
            continue
        region = components[box] == c
        split = watershed(boundary[box], markers=markers_lut[seeds[box]] * region, mask=region)
        labels[box][region] = split[region]
    return labels
