"""Load annotated image/label pairs for training: read, check, rescale to the model grid, normalise."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from skimage.measure import label as label_components

from evseg.data.normalize import normalize_image
from evseg.data.pairs import FilePair
from evseg.data.rescale import rescale_image, resize_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingImage:
    """One annotated image on the model's grid.

    Attributes
    ----------
    name : str
        The file stem.
    image : ndarray of float32, shape (Y, X)
        Normalised image.
    labels : ndarray of int32, shape (Y, X)
        Instance labels, 0 = background.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray


def labels_to_instances(labels: np.ndarray, *, source: str) -> np.ndarray:
    """Return instance labels: binary masks become connected components, instance maps pass through.

    Raises
    ------
    ValueError
        If the labels are not integer-valued (naming ``source``).
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0) and arr.min() >= 0:
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"{source}: labels must be a binary mask or integer instance labels, got dtype {arr.dtype}."
            )
    if arr.min() < 0:
        raise ValueError(f"{source}: labels must be non-negative, got minimum {arr.min()}.")
    values = np.unique(arr)
    if values.size <= 2:  # {0}, {0, v} or {v}: a binary mask
        return label_components(arr > 0, connectivity=1).astype(np.int32)
    return arr.astype(np.int32)


def load_training_images(
    pairs: list[FilePair],
    *,
    model_pixel_size_nm: float | None,
    pixel_size_nm: float | None = None,
    normalization: dict,
) -> list[TrainingImage]:
    """Read and prepare annotated pairs for training.

    Parameters
    ----------
    pairs : list of FilePair
        Image and label files.
    model_pixel_size_nm : float or None
        Grid the model works on. ``None``: images are used as they are (pixels).
    pixel_size_nm : float or None
        Pixel size of the training images, overriding their metadata.
    normalization : dict
        Normalisation spec of the model.

    Returns
    -------
    list of TrainingImage

    Raises
    ------
    ValueError
        If a label image differs in shape from its image, is not integer, or every label image is empty;
        or if a pixel size is needed to rescale and unknown.
    """
    from evseg.io.readers import read_image, read_labels

    loaded = []
    for pair in pairs:
        img = read_image(pair.image_path, pixel_size_nm=pixel_size_nm)
        if img.data.ndim != 2:
            raise ValueError(f"{pair.image_path}: a 2D image is needed, got shape {img.data.shape}.")
        labels = labels_to_instances(read_labels(pair.label_path), source=str(pair.label_path))
        if labels.shape != img.data.shape:
            raise ValueError(
                f"{pair.label_path}: label image shape {labels.shape} differs from its image "
                f"{pair.image_path.name} shape {img.data.shape}."
            )
        data = img.data.astype(np.float32)
        if model_pixel_size_nm is not None:
            if img.pixel_size_nm is None:
                raise ValueError(
                    f"{pair.image_path}: no pixel size in the file; give --pixel-size, or train a model "
                    "that works in pixels (no --model-pixel-size)."
                )
            factor = img.pixel_size_nm / model_pixel_size_nm
            data = rescale_image(data, factor)
            labels = resize_labels(labels, data.shape)
        loaded.append(TrainingImage(pair.stem, normalize_image(data, normalization), labels))
    if loaded and not any(item.labels.any() for item in loaded):
        raise ValueError("Every label image is empty (all zeros): there is nothing to learn.")
    return loaded


def describe_training_images(images: list[TrainingImage]) -> dict:
    """Summary of a training set for the model's config: counts and object sizes (pixels)."""
    n_objects = 0
    areas = []
    for item in images:
        counts = np.bincount(item.labels.ravel())[1:]
        counts = counts[counts > 0]
        n_objects += int(counts.size)
        areas.append(counts)
    all_areas = np.concatenate(areas) if areas else np.zeros(0)
    return {
        "n_images": len(images),
        "n_objects": n_objects,
        "names": [item.name for item in images],
        "median_object_diameter_px": float(np.median(2 * np.sqrt(all_areas / np.pi))) if all_areas.size else None,
    }

