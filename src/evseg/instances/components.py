"""Binary masks to instance labels: hole filling, connected components, size/border filters, hulls."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from skimage import measure, segmentation

from evseg._validate import check_labels

__all__ = [
    "check_mask",
    "convex_hull_outlines",
    "equivalent_diameters",
    "fill_small_holes",
    "label_components",
    "polygon_area",
    "relabel_sequential",
    "remove_border_objects",
    "remove_small_objects_by_diameter",
]

# Half-pixel steps along the axes: the four edge midpoints ("cracks") of a pixel centred at 0.
_CRACK_OFFSETS = np.array([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]])


def check_mask(mask: np.ndarray, *, name: str = "mask", ndim: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Check a binary mask and return it as a boolean array.

    Parameters
    ----------
    mask : ndarray of bool, or of int with values in {0, 1}
        Foreground mask, ``(Y, X)`` or ``(Z, Y, X)``.
    name : str
        Parameter name used in error messages.
    ndim : tuple of int
        Allowed numbers of dimensions.

    Returns
    -------
    ndarray of bool
        The mask (no copy when it is already boolean).

    Raises
    ------
    TypeError
        If ``mask`` is float, or integer with values other than 0 and 1 (threshold it first, or pass
        labels to the label functions).
    ValueError
        If ``mask`` has the wrong number of dimensions or is empty.
    """
    arr = np.asarray(mask)
    if arr.ndim not in ndim:
        raise ValueError(
            f"`{name}` must have {' or '.join(map(str, ndim))} dimensions, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}).")
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 1:
        return arr.astype(bool)
    raise TypeError(
        f"`{name}` must be a boolean mask (or 0/1 integers), got dtype {arr.dtype} with values in "
        f"[{arr.min()}, {arr.max()}]; threshold probabilities first (e.g. `probability > 0.5`)."
    )


def _check_connectivity(connectivity: int, ndim: int) -> int:
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise TypeError(f"`connectivity` must be an int in 1..{ndim}, got {connectivity!r}.")
    if not 1 <= int(connectivity) <= ndim:
        raise ValueError(
            f"`connectivity` must be in 1..{ndim} for {ndim}D data (1 = faces only, {ndim} = "
            f"all neighbours), got {connectivity}."
        )
    return int(connectivity)


def _check_nonnegative(value: float, name: str, *, allow_inf: bool = False) -> float:
    out = float(value)
    if np.isnan(out) or out < 0 or (np.isinf(out) and not allow_inf):
        bound = "a number >= 0 (or inf)" if allow_inf else "a finite number >= 0"
        raise ValueError(f"`{name}` must be {bound}, got {value!r}.")
    return out


def _touches_border(regions: np.ndarray, n: int) -> np.ndarray:
    """Bool array ``(n + 1,)``: entry ``k`` says whether region ``k`` of ``regions`` touches the image border."""
    touches = np.zeros(n + 1, dtype=bool)
    for axis in range(regions.ndim):
        for index in (0, -1):
            touches[np.take(regions, index, axis=axis)] = True
    return touches


def fill_small_holes(mask: np.ndarray, *, max_hole_area_px: float) -> np.ndarray:
    """Fill background holes enclosed by the foreground up to a maximum size.

    A hole is a connected background region (full connectivity, the dual of the 1-connected
    foreground) that does not touch the image border. Unlike ``skimage.morphology.remove_small_holes``,
    small background regions at the image border are never filled.

    Parameters
    ----------
    mask : ndarray of bool, shape (Y, X) or (Z, Y, X)
        Foreground mask.
    max_hole_area_px : float
        Holes with at most this many pixels (voxels in 3D) are filled; ``0`` fills nothing and
        ``inf`` fills every enclosed hole.

    Returns
    -------
    ndarray of bool
        A new mask, same shape, with the small holes filled.

    Raises
    ------
    TypeError, ValueError
        If ``mask`` is not a 2D/3D binary mask or ``max_hole_area_px`` is negative.

    Examples
    --------
    >>> ring = np.ones((5, 5), bool); ring[2, 2] = False
    >>> bool(fill_small_holes(ring, max_hole_area_px=1)[2, 2])
    True
    """
    mask = check_mask(mask)
    max_hole = _check_nonnegative(max_hole_area_px, "max_hole_area_px", allow_inf=True)
    out = mask.copy()
    if max_hole == 0:
        return out
    background, n = ndi.label(~mask, structure=ndi.generate_binary_structure(mask.ndim, mask.ndim))
    if n == 0:
        return out
    sizes = np.bincount(background.ravel(), minlength=n + 1)
    fill = (sizes <= max_hole) & ~_touches_border(background, n)
    fill[0] = False
    out[fill[background]] = True
    return out


def fill_enclosed_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background region that is not 4- (6-) connected to the image border.

    The same result as ``scipy.ndimage.binary_fill_holes`` with its default structure (a thin
    diagonal ring encloses its inside), computed from one labelling of the background instead of
    an iterated dilation: about 10x faster on a 2048² mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (Y, X) or (Z, Y, X)
        Foreground mask.

    Returns
    -------
    ndarray of bool
        A new mask, same shape, with all enclosed holes filled.
    """
    mask = check_mask(mask)
    background, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    hole = ~_touches_border(background, n)
    hole[0] = False
    return mask | hole[background]


def label_components(mask: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Label the connected components of a binary mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (Y, X) or (Z, Y, X)
        Foreground mask.
    connectivity : int
        Neighbourhood, ``1`` (faces only: 4-connected in 2D, 6-connected in 3D) up to ``mask.ndim``
        (8- / 26-connected).

    Returns
    -------
    ndarray of int32, same shape
        Labels ``1..n`` in raster order, 0 = background.

    Examples
    --------
    >>> m = np.array([[1, 0, 1], [1, 0, 0]], bool)
    >>> label_components(m)
    array([[1, 0, 2],
           [1, 0, 0]], dtype=int32)
    """
    mask = check_mask(mask)
    connectivity = _check_connectivity(connectivity, mask.ndim)
    return measure.label(mask, connectivity=connectivity).astype(np.int32, copy=False)


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameter of every label: of the disc (2D) or sphere (3D) of the same size.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 = background.

    Returns
    -------
    ndarray of float64, shape (labels.max() + 1,)
        Entry ``k`` is the diameter of label ``k`` in pixels: ``sqrt(4 A / pi)`` in 2D,
        ``cbrt(6 V / pi)`` in 3D (0 for absent labels; entry 0 is the background and is meaningless).
    """
    labels = check_labels(labels)
    sizes = np.bincount(labels.ravel()).astype(np.float64)
    if labels.ndim == 2:
        return np.sqrt(4.0 * sizes / np.pi)
    return np.cbrt(6.0 * sizes / np.pi)


def remove_small_objects_by_diameter(labels: np.ndarray, *, min_diameter_px: float) -> np.ndarray:
    """Remove objects whose equivalent diameter is below a minimum.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 = background.
    min_diameter_px : float
        Objects with equivalent diameter (see :func:`equivalent_diameters`) strictly below this
        many pixels are set to 0; ``0`` keeps everything.

    Returns
    -------
    ndarray of int32, same shape
        A copy with the small objects removed; the other labels keep their values (not relabelled).

    Examples
    --------
    >>> lab = np.zeros((6, 6), np.int32); lab[0, 0] = 1; lab[2:6, 2:6] = 2
    >>> np.unique(remove_small_objects_by_diameter(lab, min_diameter_px=2.0)).tolist()
    [0, 2]
    """
    labels = check_labels(labels)
    min_diameter = _check_nonnegative(min_diameter_px, "min_diameter_px")
    out = labels.astype(np.int32, copy=True)
    if min_diameter == 0 or out.max() == 0:
        return out
    small = equivalent_diameters(out) < min_diameter
    small[0] = False
    if small.any():
        out[small[out]] = 0
    return out


def remove_border_objects(labels: np.ndarray, *, buffer_px: int = 0) -> np.ndarray:
    """Remove objects that touch the image border (or come within ``buffer_px`` of it).

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 = background.
    buffer_px : int
        Width of the border band in pixels; objects with any pixel in it are removed.

    Returns
    -------
    ndarray of int32, same shape
        A copy without the border objects (labels not renumbered).
    """
    labels = check_labels(labels)
    if isinstance(buffer_px, bool) or int(buffer_px) != buffer_px or buffer_px < 0:
        raise ValueError(f"`buffer_px` must be an int >= 0, got {buffer_px!r}.")
    out = labels.astype(np.int32, copy=True)
    return segmentation.clear_border(out, buffer_size=int(buffer_px))


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber labels to ``1..n`` keeping their order (``skimage.segmentation.relabel_sequential``).

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 = background.

    Returns
    -------
    ndarray of int32, same shape

    Examples
    --------
    >>> relabel_sequential(np.array([[0, 7], [3, 7]]))
    array([[0, 2],
           [1, 2]], dtype=int32)
    """
    labels = check_labels(labels)
    top = int(labels.max(initial=0))
    if top > 4 * labels.size + 1024:  # sparse huge ids: a look-up table would be too large
        return segmentation.relabel_sequential(labels)[0].astype(np.int32, copy=False)
    present = np.bincount(labels.ravel(), minlength=top + 1) > 0
    present[0] = False
    lut = (np.cumsum(present) * present).astype(np.int32)
    return lut[labels]


def _boundary_pixels(labels: np.ndarray, *, strip_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of object pixels with a 4-neighbour (or the image outside) of another value.

    Computed in strips of ``strip_rows`` rows (plus one row of context on each side), so the
    temporary arrays stay small on huge label images.
    """
    ys_all, xs_all = [], []
    for top in range(0, labels.shape[0], strip_rows):
        lo, hi = max(top - 1, 0), min(top + strip_rows + 1, labels.shape[0])
        strip = labels[lo:hi]
        # A pixel is on the edge when a 4-neighbour differs; the image outside counts as background.
        edge = np.zeros(strip.shape, dtype=bool)
        vertical = strip[:-1] != strip[1:]
        edge[:-1] |= vertical
        edge[1:] |= vertical
        horizontal = strip[:, :-1] != strip[:, 1:]
        edge[:, :-1] |= horizontal
        edge[:, 1:] |= horizontal
        edge[:, [0, -1]] = True
        if lo == 0:
            edge[0] = True
        if hi == labels.shape[0]:
            edge[-1] = True
        edge &= strip > 0
        if lo > 0:  # the strip's first row is context: the row above decides it, not "outside"
            edge[0] = False
        if hi < labels.shape[0]:
            edge[-1] = False
        ys, xs = np.nonzero(edge)
        ys_all.append(ys + lo)
        xs_all.append(xs)
    return np.concatenate(ys_all), np.concatenate(xs_all)


def convex_hull_outlines(labels: np.ndarray) -> list[np.ndarray | None]:
    """Convex hull of each object's pixel outline, as polygon vertices.

    The outline of an object is taken through the midpoints between its boundary pixels and their
    background 4-neighbours (the contour that marching squares draws at level 0.5 on the mask), so
    that a ``h x w`` pixel rectangle has width ``h`` and length ``w``. Its hull is the hull of the
    four edge midpoints ``(y +- 0.5, x)``, ``(y, x +- 0.5)`` of the object's boundary pixels.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Instance labels, 0 = background.

    Returns
    -------
    list of (ndarray of float64, shape (H, 2)) or None
        Entry ``k - 1`` holds the hull vertices of label ``k`` as ``(y, x)`` pixel coordinates in
        counter-clockwise order (in ``(y, x)`` axes); ``None`` where label ``k`` is absent.
    """
    labels = check_labels(labels, ndim=(2,))
    n = int(labels.max())
    if n == 0:
        return []
    ys, xs = _boundary_pixels(labels)
    owner = labels[ys, xs]
    order = np.argsort(owner, kind="stable")
    points = np.stack([ys[order], xs[order]], axis=1).astype(np.float64)
    bounds = np.searchsorted(owner[order], np.arange(1, n + 2))
    hulls: list[np.ndarray | None] = []
    for k in range(n):
        pts = points[bounds[k] : bounds[k + 1]]
        if len(pts) == 0:
            hulls.append(None)
            continue
        cracks = (pts[:, None, :] + _CRACK_OFFSETS[None]).reshape(-1, 2)
        hull = ConvexHull(cracks)
        hulls.append(cracks[hull.vertices])
    return hulls


def polygon_area(vertices: np.ndarray) -> float:
    """Area of a simple polygon ``(H, 2)`` by the shoelace formula (any orientation)."""
    y, x = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
