"""Intensity normalisation of images before they enter a network (percentile scaling)."""

from __future__ import annotations

import numpy as np

from evseg._validate import check_image

#: Largest number of pixels used to estimate percentiles; larger images are subsampled on a grid.
_MAX_PERCENTILE_SAMPLES = 1 << 20


def percentile_range(image: np.ndarray, *, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """Return the ``low`` and ``high`` percentiles of ``image`` (grid-subsampled when huge).

    Parameters
    ----------
    image : ndarray
        Image of any shape and real dtype.
    low, high : float
        Percentiles in [0, 100], ``low < high``.

    Returns
    -------
    (float, float)
        The two percentile values, in the image's intensity units.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}.")
    arr = np.asarray(image)
    step = int(np.ceil((arr.size / _MAX_PERCENTILE_SAMPLES) ** (1.0 / arr.ndim))) if arr.size else 1
    sample = arr[(slice(None, None, max(step, 1)),) * arr.ndim]
    lo, hi = np.percentile(sample, [low, high])
    return float(lo), float(hi)


def percentile_normalize(
    image: np.ndarray,
    *,
    low: float = 1.0,
    high: float = 99.8,
    eps: float = 1e-6,
    intensity_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Scale ``image`` so that its ``low`` percentile maps to 0 and its ``high`` percentile to 1.

    This is bioimage.io's ``scale_range`` preprocessing (per sample, all axes). Values outside the
    percentile range are kept (not clipped), as in CSBDeep's ``normalize``.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
        Image in any real dtype; it is never rescaled by dtype.
    low, high : float
        Percentiles (0–100).
    eps : float
        Added to the denominator so a constant image gives zeros instead of NaN.
    intensity_range : (float, float), optional
        The two percentile values, computed beforehand (e.g. on the whole of a huge image that
        is then normalised block by block, so that every block gets the same scaling).

    Returns
    -------
    ndarray of float32, same shape
        The normalised image.

    Examples
    --------
    >>> import numpy as np
    >>> x = percentile_normalize(np.arange(101, dtype=float), low=0, high=100)
    >>> float(x[0]), round(float(x[-1]), 4)
    (0.0, 1.0)
    """
    arr = check_image(image, ndim=(2, 3))
    lo, hi = percentile_range(arr, low=low, high=high) if intensity_range is None else intensity_range
    out = arr.astype(np.float32, copy=True)
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo + eps))
    return out


def normalize_image(
    image: np.ndarray, spec: dict, *, intensity_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Apply the normalisation described by ``spec`` (as stored in a model's ``config.json``).

    Parameters
    ----------
    image : ndarray
        Image ``(Y, X)`` or ``(Z, Y, X)``.
    spec : dict
        ``{"method": "percentile", "low": 1.0, "high": 99.8}``.
    intensity_range : (float, float), optional
        Percentile values computed beforehand (see :func:`percentile_normalize`).

    Returns
    -------
    ndarray of float32
    """
    method = spec.get("method", "percentile")
    if method != "percentile":
        raise ValueError(f"Unknown normalization method {method!r}; only 'percentile' is supported.")
    return percentile_normalize(image, low=float(spec.get("low", 1.0)), high=float(spec.get("high", 99.8)),
                                intensity_range=intensity_range)
