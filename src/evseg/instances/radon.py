"""Split touching vesicles along the deepest valley of their Radon transform (FRU-Net post-processing)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from skimage.feature import peak_local_max
from skimage.segmentation import expand_labels, watershed
from skimage.transform import downscale_local_mean, radon

from evseg._validate import check_labels
from evseg.instances.components import _CRACK_OFFSETS, convex_hull_outlines, polygon_area

__all__ = ["split_radon"]

_CUT_HALF_WIDTH_PX = 0.75  # a 1.5 px strip blocks every 4- and 8-connected path across the line
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class _Params:
    solidity_threshold: float
    min_valley_depth: float
    min_area_px: float
    max_depth: int
    n_angles: int
    max_size_px: int
    refine: bool


def split_radon(
    labels: np.ndarray,
    *,
    solidity_threshold: float = 0.96,
    min_valley_depth: float = 0.12,
    min_area_px: float = 50.0,
    max_depth: int = 4,
    n_angles: int = 60,
    max_size_px: int = 48,
    refine: bool = True,
) -> np.ndarray:
    """Split clusters of touching objects along the necks found in their Radon transform.

    Every object whose solidity is below ``solidity_threshold`` is cut along the straight line
    through its deepest "neck", found as the deepest valley of its Radon projections, and the
    pieces are split again in the same way until they are convex enough, too small, or no neck is
    deep enough.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Instance labels (0 = background), e.g. connected components of a thresholded probability.
    solidity_threshold : float
        Objects (and pieces) with ``area / convex hull area`` at or above this are left alone. The
        hull is that of the pixel outline (see :func:`evseg.instances.convex_hull_outlines`), so
        digitised discs and ellipses score 0.98-1.0 and two touching discs 0.88-0.96.
    min_valley_depth : float
        Smallest relative valley depth (see Notes), in (0, 1), for a cut to be made.
    min_area_px : float
        Smallest piece, in pixels. Cuts that leave fewer than two pieces of this size are not made;
        smaller fragments cut off by a line are given back to a neighbouring piece.
    max_depth : int
        Maximum recursion depth (a cluster of ``n`` objects needs ``n - 1`` cuts, done in at most
        ``n - 1`` levels); ``0`` disables splitting.
    n_angles : int
        Number of projection angles, evenly spaced over [0, 180) degrees.
    max_size_px : int
        Objects whose bounding box is larger than this are block-averaged (by an integer factor)
        before the Radon transform, for speed; the cut position is then refined at full resolution.
    refine : bool
        If True (default), each cut only groups the object's centres (distance-transform maxima)
        and a marker watershed draws the boundaries along the necks (see Notes). If False, cut
        pixels and small fragments go to the nearest piece and the boundary is the straight cut.

    Returns
    -------
    ndarray of int32, shape (Y, X)
        Labels; the first piece of a split object keeps its label, the others get new labels above
        ``labels.max()`` (not sequential: use :func:`evseg.instances.relabel_sequential`).

    Raises
    ------
    ValueError
        If ``labels`` is not 2D (use ``split_watershed`` for 3D) or a parameter is out of range.
    TypeError
        If ``labels`` is not an integer label image.

    Notes
    -----
    For each candidate object (solidity below the threshold, at least ``2 * min_area_px`` pixels),
    its padded crop (from ``scipy.ndimage.find_objects``) is block-averaged to at most
    ``max_size_px`` pixels per side and its Radon transform ``R(s, theta)`` is computed with
    ``skimage.transform.radon(..., circle=False)``. ``R(s, theta)`` is the object's chord length
    summed along the lines ``x cos(theta) - y sin(theta) = s`` (``x`` to the right, ``y`` down, from
    the crop centre). Two touching vesicles give, at the angle parallel to their neck, a profile
    with two peaks and a valley at the neck; a convex object gives a concave (single-peaked)
    profile. The relative valley depth at ``(s, theta)`` is

    .. math:: d(s, \\theta) = 1 - R(s, \\theta) / \\min(\\max_{s' < s} R(s', \\theta),
              \\max_{s' > s} R(s', \\theta)),

    i.e. measured against the smaller of the two flanking peaks, and is set to 0 where the object
    area on either side of the line (the cumulative sum of the profile) is below ``min_area_px``.
    The line of largest ``d`` is cut if ``d >= min_valley_depth``: after refining its offset to the
    thinnest full-resolution strip within one block of it, the pixels within 0.75 px of it are
    removed, the remainder is labelled (8-connectivity), pieces of at least ``min_area_px`` pixels
    are kept and the cut is rejected if fewer than two remain.

    With ``refine=True`` the straight cut only decides which vesicle centres go together: the
    local maxima of the object's Euclidean distance transform (at least ``sqrt(min_area_px / pi)``
    from the background) are grouped by the piece they fall in, and a marker watershed of the
    negated distance transform from these groups gives the pieces. Their boundaries then follow
    the necks, and a cap that the line cut off a neighbouring disc (a piece without a centre)
    returns to it; without this, 3-4 disc clusters are over-split (91 % correct counts instead of
    100 % on the tuning set below). The cut is rejected if fewer than two pieces hold a centre.
    Each piece is then processed again (recursion depth ``max_depth``).

    Defaults were tuned on 200 synthetic clusters of 2-4 discs of radius 15-60 px overlapping by up
    to 30 % of the smaller radius (all counts right, median IoU with the true discs 0.98) and on
    ellipses of axis ratio <= 1.5 with smooth or noisy outlines (never split, even with the
    solidity test disabled). Their relative valley depths were 0.17-1 and <= 0.02. Two equal discs
    overlapping by 30 % of their radius have a neck half as wide as a disc, ``d ~ 0.47``. On a
    2048 x 2048 synthetic micrograph with 180 objects the split takes about 0.4 s on 2 CPU cores
    (most of it ``radon``); ``n_angles=90, max_size_px=64`` is about 3x slower for the same result. Fill holes
    first: the projections of a ring have a valley at its hole.

    References
    ----------
    .. [1] E. Gómez-de-Mariscal, M. Maška, A. Kotrbová, V. Pospíchalová, P. Matula, A. Muñoz-Barrutia,
       "Deep-Learning-Based Segmentation of Small Extracellular Vesicles in Transmission Electron
       Microscopy Images", Scientific Reports 9, 13211 (2019). doi:10.1038/s41598-019-49431-3

    Examples
    --------
    >>> from skimage.draw import disk
    >>> lab = np.zeros((80, 120), np.int32)
    >>> for cx in (38, 80):
    ...     lab[disk((40, cx), 22)] = 1
    >>> np.unique(split_radon(lab)).tolist()
    [0, 1, 2]
    """
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(
            f"Radon splitting works on 2D labels only, got shape {arr.shape}; "
            "use split_watershed (method='watershed') for 3D."
        )
    arr = check_labels(arr, ndim=(2,))
    params = _check_params(
        solidity_threshold, min_valley_depth, min_area_px, max_depth, n_angles, max_size_px, refine
    )
    out = arr.astype(np.int32, copy=True)
    if out.max() == 0 or params.max_depth == 0:
        return out
    areas = np.bincount(out.ravel())
    next_label = int(out.max()) + 1
    hulls = convex_hull_outlines(out)
    for k, (hull, box) in enumerate(zip(hulls, ndi.find_objects(out), strict=True), start=1):
        if hull is None or areas[k] < 2 * params.min_area_px:
            continue
        solidity = areas[k] / polygon_area(hull)
        if solidity >= params.solidity_threshold:
            continue
        box = _padded_box(box, out.shape)
        pieces = _split_object(arr[box] == k, params, depth=0, solidity=solidity)
        n_pieces = int(pieces.max())
        if n_pieces < 2:
            continue
        region = out[box]  # a view: writes go to `out`
        for j in range(2, n_pieces + 1):
            region[pieces == j] = next_label
            next_label += 1
    return out


def _check_params(
    solidity_threshold: float,
    min_valley_depth: float,
    min_area_px: float,
    max_depth: int,
    n_angles: int,
    max_size_px: int,
    refine: bool,
) -> _Params:
    if not 0 < solidity_threshold <= 1.5:
        raise ValueError(f"`solidity_threshold` must be in (0, 1.5], got {solidity_threshold!r}.")
    if not 0 < min_valley_depth < 1:
        raise ValueError(f"`min_valley_depth` must be in (0, 1), got {min_valley_depth!r}.")
    if not (np.isfinite(min_area_px) and min_area_px >= 1):
        raise ValueError(f"`min_area_px` must be a number >= 1 (pixels), got {min_area_px!r}.")
    for name, value, low in (("max_depth", max_depth, 0), ("n_angles", n_angles, 2),
                             ("max_size_px", max_size_px, 8)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
    return _Params(
        float(solidity_threshold), float(min_valley_depth), float(min_area_px), int(max_depth),
        int(n_angles), int(max_size_px), bool(refine),
    )


def _padded_box(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by 1 px on every side, clipped to ``shape``."""
    return tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape, strict=True)
    )


def _solidity(mask: np.ndarray) -> float:
    """Solidity of one object (``mask`` padded by >= 1 px), as in :func:`split_radon`."""
    edge = mask & ~ndi.binary_erosion(mask)
    points = np.argwhere(edge).astype(np.float64)
    cracks = (points[:, None, :] + _CRACK_OFFSETS[None]).reshape(-1, 2)
    hull = ConvexHull(cracks)
    return float(mask.sum()) / float(hull.volume)  # in 2D, ConvexHull.volume is the area


def _split_object(mask: np.ndarray, params: _Params, depth: int, solidity: float | None = None) -> np.ndarray:
    """Recursively split one object; returns int32 labels 1..m over ``mask`` (0 outside).

    ``solidity`` is the object's solidity when the caller knows it already (else it is computed).
    """
    out = mask.astype(np.int32)
    if depth >= params.max_depth or out.sum() < 2 * params.min_area_px:
        return out
    if (_solidity(mask) if solidity is None else solidity) >= params.solidity_threshold:
        return out
    pieces = _cut_once(mask, params)
    if pieces is None:
        return out
    out[:] = 0
    n_done = 0
    for k, box in enumerate(ndi.find_objects(pieces), start=1):
        if box is None:
            continue
        box = _padded_box(box, mask.shape)
        sub = _split_object(pieces[box] == k, params, depth + 1)
        region = out[box]
        region[sub > 0] = sub[sub > 0] + n_done
        n_done += int(sub.max())
    return out


def _valley_depth(sinogram: np.ndarray, min_side: float) -> np.ndarray:
    """Relative valley depth of every projection bin (see ``split_radon`` Notes); (S, A)."""
    zeros = np.zeros((1, sinogram.shape[1]))
    left = np.vstack([zeros, np.maximum.accumulate(sinogram, axis=0)[:-1]])
    right = np.vstack([np.maximum.accumulate(sinogram[::-1], axis=0)[::-1][1:], zeros])
    peak = np.minimum(left, right)
    depth = np.zeros_like(sinogram)
    np.divide(peak - sinogram, peak, out=depth, where=peak > 0)
    mass_left = np.cumsum(sinogram, axis=0) - sinogram
    mass_right = mass_left[-1:] + sinogram[-1:] - mass_left - sinogram
    depth[(mass_left < min_side) | (mass_right < min_side)] = 0.0
    return np.clip(depth, 0.0, 1.0)


def _cut_once(mask: np.ndarray, params: _Params) -> np.ndarray | None:
    """Cut ``mask`` along its deepest Radon valley; labels 1..m (m >= 2) or None if no cut."""
    factor = max(1, math.ceil(max(mask.shape) / params.max_size_px))
    small = mask.astype(np.float64)
    if factor > 1:
        small = downscale_local_mean(small, (factor, factor))
    theta = np.arange(params.n_angles) * (180.0 / params.n_angles)
    sinogram = radon(small, theta=theta, circle=False, preserve_range=True)
    depth = _valley_depth(sinogram, params.min_area_px / factor**2)
    s, a = np.unravel_index(int(np.argmax(depth)), depth.shape)
    if depth[s, a] < params.min_valley_depth:
        return None

    # skimage.transform.radon: bin s of angle theta integrates the line
    # (x - W//2) cos(theta) - (y - H//2) sin(theta) = s - size//2 of the (H, W) input (x right, y down).
    # A block-averaged pixel (yb, xb) is centred on full-resolution (f yb + (f-1)/2, f xb + (f-1)/2).
    cos_t, sin_t = math.cos(math.radians(theta[a])), math.sin(math.radians(theta[a]))
    half = (factor - 1) / 2.0
    offset = (
        factor * (s - sinogram.shape[0] // 2)
        + (factor * (small.shape[1] // 2) + half) * cos_t
        - (factor * (small.shape[0] // 2) + half) * sin_t
    )
    yy, xx = np.indices(mask.shape, dtype=np.float64)
    along = xx * cos_t - yy * sin_t
    if factor > 1:  # refine the offset to the thinnest 1 px strip within one block
        steps = np.arange(-factor, factor + 1)
        strip = np.rint(along[mask] - offset).astype(np.int64)
        inside = np.abs(strip) <= factor
        counts = np.bincount(strip[inside] + factor, minlength=steps.size)
        best = np.flatnonzero(counts == counts.min())
        offset += steps[best[np.argmin(np.abs(steps[best]))]]

    cut = np.abs(along - offset) < _CUT_HALF_WIDTH_PX
    pieces, n = ndi.label(mask & ~cut, structure=_EIGHT)
    if n < 2:
        return None
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    keep = sizes >= params.min_area_px
    keep[0] = False
    if keep.sum() < 2:
        return None
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    pieces = lut[pieces]
    if not params.refine:
        return expand_labels(pieces, distance=float(sum(mask.shape))) * mask
    # Refinement: each piece is represented by the maxima of the object's distance transform
    # (vesicle centres) that it holds; a marker watershed on the distance transform then draws the
    # boundaries along the necks. Pieces without a centre (caps cut off a neighbour) disappear.
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(
        distance,
        min_distance=1,
        threshold_abs=math.sqrt(params.min_area_px / math.pi),
        labels=mask.astype(np.int32),
        exclude_border=False,
    )
    owner = pieces[peaks[:, 0], peaks[:, 1]]
    for i in np.flatnonzero(owner == 0):  # a centre on the cut line goes to the nearest piece
        y, x = peaks[i]
        near = pieces[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
        owner[i] = near.max()
    owners = np.unique(owner[owner > 0])
    if owners.size < 2:
        return None
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[peaks[:, 0], peaks[:, 1]] = np.searchsorted(owners, owner) + 1
    markers[peaks[owner == 0, 0], peaks[owner == 0, 1]] = 0
    refined = watershed(-distance, markers, mask=mask)
    sizes = np.bincount(refined.ravel(), minlength=owners.size + 1)[1:]
    if (sizes < params.min_area_px).any():
        return None
    return refined.astype(np.int32, copy=False)
