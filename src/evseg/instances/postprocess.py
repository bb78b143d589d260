"""From a foreground probability map to instance labels: threshold, fill, label, split, filter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evseg._registry import look_up_option
from evseg._validate import check_image, check_labels
from evseg.instances.components import (
    fill_small_holes,
    label_components,
    relabel_sequential,
    remove_small_objects_by_diameter,
)
from evseg.instances.radon import split_radon
from evseg.instances.watershed import split_watershed

__all__ = ["SPLIT_METHODS", "probability_to_labels", "split_instances"]

SPLIT_METHODS: tuple[str, ...] = ("radon", "watershed", "none")
"""Names accepted by ``split_instances(method=...)``."""


def split_instances(labels: np.ndarray, *, method: str = "radon", **kwargs: Any) -> np.ndarray:
    """Split touching objects with the chosen method.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance labels, 0 = background.
    method : {"radon", "watershed", "none"}
        ``"radon"``: :func:`evseg.instances.split_radon` (2D only, FRU-Net); ``"watershed"``:
        :func:`evseg.instances.split_watershed` (2D and 3D); ``"none"``: a copy of ``labels``.
    **kwargs
        Options of the chosen splitter (none for ``"none"``).

    Returns
    -------
    ndarray of int32, same shape
        Labels, not necessarily sequential.

    Raises
    ------
    ValueError
        If ``method`` is unknown (the message lists the options), or ``"radon"`` is asked for 3D.
    TypeError
        If ``kwargs`` are not options of the chosen method.

    Examples
    --------
    >>> lab = np.array([[0, 1], [1, 1]], np.int32)
    >>> split_instances(lab, method="none").tolist()
    [[0, 1], [1, 1]]
    """
    method = look_up_option(method, SPLIT_METHODS, what="split method")
    if method == "radon":
        return split_radon(labels, **kwargs)
    if method == "watershed":
        return split_watershed(check_labels(labels), **kwargs)
    if kwargs:
        raise TypeError(f"split method 'none' takes no options, got {sorted(kwargs)}.")
    return check_labels(labels).astype(np.int32, copy=True)


def probability_to_labels(
    probability: np.ndarray,
    *,
    threshold: float = 0.5,
    min_diameter_px: float = 0.0,
    max_hole_area_px: float | None = None,
    split_method: str = "radon",
    split_options: Mapping[str, Any] | None = None,
    connectivity: int = 1,
) -> np.ndarray:
    """Turn a foreground probability map into instance labels.

    Steps: ``probability > threshold`` -> fill holes of at most ``max_hole_area_px`` ->
    connected components -> split touching objects (``split_method``) -> remove objects with an
    equivalent diameter below ``min_diameter_px`` -> renumber ``1..n``.

    Parameters
    ----------
    probability : ndarray of float, shape (Y, X) or (Z, Y, X)
        Foreground probability (or any score compared with ``threshold``).
    threshold : float
        Pixels with ``probability > threshold`` are foreground.
    min_diameter_px : float
        Objects whose equivalent diameter (disc in 2D, sphere in 3D) is below this many pixels are
        removed after splitting; ``0`` keeps all.
    max_hole_area_px : float or None
        Enclosed background holes up to this many pixels (voxels) are filled; ``None`` or ``0``
        fills none.
    split_method : {"radon", "watershed", "none"}
        How touching objects are separated, see :func:`split_instances`. ``"radon"`` is 2D only.
    split_options : mapping or None
        Keyword options for the splitter, e.g. ``{"min_valley_depth": 0.15}``.
    connectivity : int
        Connectivity of the components, 1 (4/6-connected) to ``probability.ndim``.

    Returns
    -------
    ndarray of int32, same shape as ``probability``
        Labels ``1..n``, 0 = background.

    Raises
    ------
    ValueError
        If ``probability`` is not a finite 2D/3D array, ``threshold`` is not finite, ``split_method``
        is unknown or is ``"radon"`` with 3D input.

    Examples
    --------
    >>> p = np.zeros((8, 8), np.float32); p[1:4, 1:4] = 0.9; p[5:7, 5:7] = 0.8
    >>> int(probability_to_labels(p, min_diameter_px=3.0).max())
    1
    """
    probability = check_image(probability, name="probability", ndim=(2, 3))
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"`threshold` must be a finite number, got {threshold!r}.")
    split_method = look_up_option(split_method, SPLIT_METHODS, what="split method")
    if split_method == "radon" and probability.ndim == 3:
        raise ValueError(
            "split_method='radon' works on 2D images only, got a 3D probability of shape "
            f"{probability.shape}; use split_method='watershed' or 'none'."
        )
    mask = probability > threshold
    if max_hole_area_px is not None:
        mask = fill_small_holes(mask, max_hole_area_px=max_hole_area_px)
    labels = label_components(mask, connectivity=connectivity)
    labels = split_instances(labels, method=split_method, **dict(split_options or {}))
    labels = remove_small_objects_by_diameter(labels, min_diameter_px=min_diameter_px)
    return relabel_sequential(labels)
