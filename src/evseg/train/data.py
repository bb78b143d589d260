"""Load annotated image/label pairs (2D images or 3D volumes) for training: read, check, rescale, normalise."""

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
    image : ndarray of float32, shape (Y, X) or (Z, Y, X)
        Normalised image or volume.
    labels : ndarray of int32, same shape
        Instance labels, 0 = background.
    voxel_size_nm : tuple of float or None
        Spacing of ``image`` along each axis on the model grid (nm), ``None`` where unknown.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    voxel_size_nm: tuple[float, ...] | None = None


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
    spatial_dims: int = 2,
) -> list[TrainingImage]:
    """Read and prepare annotated pairs for training.

    Parameters
    ----------
    pairs : list of FilePair
        Image and label files.
    model_pixel_size_nm : float or None
        Grid the model works on (in-plane pixel size, nm). ``None``: images are used as they are
        (pixels).
    pixel_size_nm : float or None
        Pixel size of the training images, overriding their metadata (in-plane; a volume keeps
        the Z spacing of its file).
    normalization : dict
        Normalisation spec of the model (applied to each whole image or volume).
    spatial_dims : {2, 3}
        2: every file must be a 2D image ``(Y, X)``; 3: every file must be a volume ``(Z, Y, X)``.
        Volumes are rescaled in-plane only (Y and X to ``model_pixel_size_nm``); their slices are
        kept as they are, so the Z spacing stays that of the file (a 3D network copes with coarse
        Z through its anisotropic pooling).

    Returns
    -------
    list of TrainingImage

    Raises
    ------
    ValueError
        If an image does not have ``spatial_dims`` dimensions, a label image differs in shape from
        its image, is not integer, or every label image is empty; or if a pixel size is needed to
        rescale and unknown.
    """
    from evseg.io.readers import read_image, read_labels

    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    loaded = []
    for pair in pairs:
        img = read_image(pair.image_path, pixel_size_nm=pixel_size_nm)
        if img.data.ndim != spatial_dims:
            hint = ("train a 3D model (--spatial-dims 3) on volumes" if img.data.ndim == 3
                    else "a 3D model needs (Z, Y, X) volumes")
            raise ValueError(
                f"{pair.image_path}: a {spatial_dims}D {'image' if spatial_dims == 2 else 'volume'} is "
                f"needed, got shape {img.data.shape}; {hint}."
            )
        labels = labels_to_instances(read_labels(pair.label_path), source=str(pair.label_path))
        if labels.shape != img.data.shape:
            raise ValueError(
                f"{pair.label_path}: label image shape {labels.shape} differs from its image "
                f"{pair.image_path.name} shape {img.data.shape}."
            )
        data = img.data.astype(np.float32)
        voxel = img.voxel_size_nm
        if model_pixel_size_nm is not None:
            if img.pixel_size_nm is None:
                raise ValueError(
                    f"{pair.image_path}: no pixel size in the file; give --pixel-size, or train a model "
                    "that works in pixels (no --model-pixel-size)."
                )
            factor = img.pixel_size_nm / model_pixel_size_nm
            if data.ndim == 2:
                data = rescale_image(data, factor)
            else:  # in-plane only: slice by slice
                data = np.stack([rescale_image(plane, factor) for plane in data])
            labels = resize_labels(labels, data.shape)
            voxel = None if voxel is None else (*voxel[:-2], model_pixel_size_nm, model_pixel_size_nm)
        loaded.append(TrainingImage(pair.stem, normalize_image(data, normalization), labels, voxel))
    if loaded and not any(item.labels.any() for item in loaded):
        raise ValueError("Every label image is empty (all zeros): there is nothing to learn.")
    return loaded


def describe_training_images(images: list[TrainingImage]) -> dict:
    """Summary of a training set for the model's config: counts and object sizes (pixels).

    The median object diameter is that of the disc (2D) or sphere (3D, in voxels) of equal size.
    """
    n_objects = 0
    areas = []
    for item in images:
        counts = np.bincount(item.labels.ravel())[1:]
        counts = counts[counts > 0]
        n_objects += int(counts.size)
        areas.append(counts)
    all_areas = np.concatenate(areas) if areas else np.zeros(0)
    three_d = bool(images) and images[0].image.ndim == 3
    diameters = np.cbrt(6 * all_areas / np.pi) if three_d else 2 * np.sqrt(all_areas / np.pi)
    summary = {
        "n_images": len(images),
        "n_objects": n_objects,
        "names": [item.name for item in images],
        "median_object_diameter_px": float(np.median(diameters)) if all_areas.size else None,
    }
    if three_d:
        summary["shapes"] = [list(item.image.shape) for item in images]
        summary["voxel_size_nm"] = None if images[0].voxel_size_nm is None else list(images[0].voxel_size_nm)
    return summary

