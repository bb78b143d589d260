"""Random training patches from whole images, biased towards patches that contain objects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


def pad_to_min_shape(
    image: np.ndarray, labels: np.ndarray, min_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``image`` (reflect) and ``labels`` (zeros) at the end so each axis is >= ``min_shape``.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
    labels : ndarray of int, same shape
    min_shape : tuple of int
        Minimal size per axis (the patch shape).

    Returns
    -------
    (image, labels)
        Padded copies, or the inputs when they are large enough.
    """
    pad = [(0, max(0, m - s)) for s, m in zip(image.shape, min_shape, strict=True)]
    if not any(after for _, after in pad):
        return image, labels
    mode = "reflect" if all(s > 1 for s in image.shape) else "edge"
    return np.pad(image, pad, mode=mode), np.pad(labels, pad, mode="constant")


@dataclass
class PatchSampler:
    """Draw random (image, label) patches from a list of whole images.

    Parameters
    ----------
    images : list of ndarray of float32, each (Y, X) or (Z, Y, X)
        Normalised images.
    labels : list of ndarray of int, same shapes
        Instance labels (0 = background).
    patch_shape : tuple of int
        Spatial patch size, e.g. ``(256, 256)``. Images smaller than this are padded (a note is logged).
    foreground_bias : float
        Probability that a patch is centred on a random object pixel rather than anywhere.
    augment : callable or None
        Called on ``{"image": (1, *patch), "label": (1, *patch)}``; returns the same keys.
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]
    patch_shape: tuple[int, ...]
    foreground_bias: float = 0.7
    augment: Callable[[dict], dict] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels) or not self.images:
            raise ValueError("PatchSampler needs the same, non-zero number of images and label images.")
        padded_images, padded_labels = [], []
        for i, (img, lab) in enumerate(zip(self.images, self.labels, strict=True)):
            if img.shape != lab.shape:
                raise ValueError(f"image {i} (shape {img.shape}) and its labels (shape {lab.shape}) differ.")
            if any(s < p for s, p in zip(img.shape, self.patch_shape, strict=True)):
                logger.info("image %d (shape %s) is smaller than the patch %s: padded", i, img.shape,
                            self.patch_shape)
            img, lab = pad_to_min_shape(img, lab, self.patch_shape)
            padded_images.append(img)
            padded_labels.append(lab)
        self.images, self.labels = padded_images, padded_labels
        self._foreground = [np.flatnonzero(lab.ravel() > 0) for lab in self.labels]

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Return one patch ``{"image": float32 (1, *patch), "label": int32 (1, *patch)}``."""
        index = int(rng.integers(len(self.images)))
        image, labels = self.images[index], self.labels[index]
        fg = self._foreground[index]
        if fg.size and rng.random() < self.foreground_bias:
            centre = np.unravel_index(int(fg[rng.integers(fg.size)]), labels.shape)
            start = [int(np.clip(c - p // 2, 0, s - p))
                     for c, p, s in zip(centre, self.patch_shape, labels.shape, strict=True)]
        else:
            start = [int(rng.integers(0, s - p + 1)) for p, s in zip(self.patch_shape, labels.shape, strict=True)]
        window = tuple(slice(b, b + p) for b, p in zip(start, self.patch_shape, strict=True))
        sample = {
            "image": image[window][None].astype(np.float32, copy=True),
            "label": labels[window][None].astype(np.int32, copy=True),
        }
        if self.augment is not None:
            sample = self.augment(sample)
        return sample
