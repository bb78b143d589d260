"""Shared input checks for the public functions; messages name the parameter and the fix."""

from __future__ import annotations

import numpy as np


def check_image(image: np.ndarray, *, name: str = "image", ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """Check that ``image`` is a finite real array with an allowed number of dimensions.

    Parameters
    ----------
    image : ndarray
        Image, ``(Y, X)`` (or ``(Z, Y, X)`` where ``ndim`` allows 3).
    name : str
        Parameter name used in error messages.
    ndim : tuple of int
        Allowed numbers of dimensions.

    Returns
    -------
    ndarray
        ``image`` as a numpy array (no copy, no dtype change).

    Raises
    ------
    TypeError
        If ``image`` is not numeric.
    ValueError
        If ``image`` has the wrong number of dimensions, is empty, or holds NaN/inf.
    """
    arr = np.asarray(image)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"`{name}` must be a numeric array, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be real-valued, got dtype {arr.dtype}.")
    if arr.ndim not in ndim:
        raise ValueError(
            f"`{name}` must have {' or '.join(map(str, ndim))} dimensions, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}).")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values; replace them before segmenting.")
    return arr


def check_labels(labels: np.ndarray, *, name: str = "labels", ndim: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Check that ``labels`` is a non-negative integer label image (0 = background).

    Parameters
    ----------
    labels : ndarray of int
        Label image ``(Y, X)`` or ``(Z, Y, X)``; 0 is background, k > 0 is object k.
    name : str
        Parameter name used in error messages.
    ndim : tuple of int
        Allowed numbers of dimensions.

    Returns
    -------
    ndarray
        ``labels`` as a numpy array (no copy).

    Raises
    ------
    TypeError
        If ``labels`` is boolean or not integer (call ``skimage.measure.label`` on masks).
    ValueError
        If ``labels`` has negative values or the wrong number of dimensions.
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        raise TypeError(
            f"`{name}` is a boolean mask; instance labels are needed "
            "(use skimage.measure.label(mask) or evseg.instances.label_components)."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must be an integer label image, got dtype {arr.dtype}.")
    if arr.ndim not in ndim:
        raise ValueError(
            f"`{name}` must have {' or '.join(map(str, ndim))} dimensions, got shape {arr.shape}."
        )
    if arr.size and arr.min() < 0:
        raise ValueError(f"`{name}` must be non-negative (0 = background), got minimum {arr.min()}.")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, *, names: tuple[str, str]) -> None:
    """Raise ``ValueError`` if ``a`` and ``b`` differ in shape, naming both and their shapes."""
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"`{names[0]}` (shape {np.shape(a)}) must have the same shape as "
            f"`{names[1]}` (shape {np.shape(b)})."
        )


def check_pixel_size(pixel_size_nm: float | None, *, name: str = "pixel_size_nm") -> float | None:
    """Check a pixel size in nanometres: ``None`` (unknown) or a finite positive number."""
    if pixel_size_nm is None:
        return None
    value = float(pixel_size_nm)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number of nanometres, got {pixel_size_nm!r}.")
    return value


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a seed, a Generator or ``None``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
