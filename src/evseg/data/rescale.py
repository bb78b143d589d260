"""Rescale images and labels between physical pixel sizes (e.g. to a model's 1.56 nm/px grid)."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize


def rescaled_shape(shape: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """Shape of an array of ``shape`` after scaling every axis by ``factor`` (rounded, >= 1)."""
    return tuple(max(1, int(round(s * factor))) for s in shape)


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resample ``image`` by ``factor`` (> 1 enlarges) with linear interpolation.

    Anti-aliasing is applied when shrinking. ``factor`` is ``pixel_size_in / pixel_size_out``.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        Image to resample (any real dtype; the result is float32).
    factor : float
        Scale factor applied to both axes.

    Returns
    -------
    ndarray of float32, shape ``rescaled_shape(image.shape, factor)``
    """
    if factor <= 0:
        raise ValueError(f"`factor` must be positive, got {factor}.")
    arr = np.asarray(image, dtype=np.float32)
    if abs(factor - 1.0) < 1e-6:
        return arr
    out_shape = rescaled_shape(arr.shape, factor)
    return resize(arr, out_shape, order=1, anti_aliasing=factor < 1, preserve_range=True).astype(
        np.float32, copy=False
    )


def resize_probability(probability: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resample a probability map to ``shape`` with linear interpolation (values stay in [0, 1])."""
    prob = np.asarray(probability, dtype=np.float32)
    if prob.shape == tuple(shape):
        return prob
    return resize(prob, shape, order=1, anti_aliasing=False, preserve_range=True).astype(
        np.float32, copy=False
    )


def resize_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resample an integer label image to ``shape`` with nearest-neighbour interpolation."""
    lab = np.asarray(labels)
    if lab.shape == tuple(shape):
        return lab
    return resize(lab, shape, order=0, anti_aliasing=False, preserve_range=True).astype(lab.dtype)
