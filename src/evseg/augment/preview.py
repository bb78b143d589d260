"""A picture of what augmentation does: augmented images with their label outlines, as one RGB grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evseg._validate import check_image, check_labels, check_same_shape
from evseg.augment.transforms import AugmentConfig, build_augmentation

#: Outline colour (RGB) drawn over the grey image.
OUTLINE_RGB = (255, 40, 40)
#: Pixels between grid cells, and their grey value.
GAP_PX, GAP_VALUE = 4, 255


def augment_preview(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    *,
    config: AugmentConfig,
    n_per_image: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Return an RGB grid: one row per image, its original then ``n_per_image`` augmentations.

    Every cell shows the (augmented) image in grey, scaled to its own 1st-99th percentile range,
    with the (augmented) label outlines drawn in red on top, so one can see that geometric ops
    move image and labels together and what the intensity ops look like.

    Parameters
    ----------
    images : list of ndarray, each (Y, X)
        Grey images (any real dtype; converted to float32, not rescaled before augmentation).
    labels : list of ndarray of int, each (Y, X)
        Instance labels matching ``images`` (0 = background).
    config : AugmentConfig
        The augmentation to preview.
    n_per_image : int
        Number of augmented versions per image (>= 1).
    seed : int
        Seed of the augmentation, so the preview is reproducible.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        The grid; cells are padded to the largest image, separated by white gaps of
        ``GAP_PX`` pixels.

    Raises
    ------
    ValueError
        If the lists are empty or of different lengths, an image is not 2D, or an image and its
        labels differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((32, 32), np.int32); lab[8:20, 8:20] = 1
    >>> grid = augment_preview([lab.astype(np.float32)], [lab], config=AugmentConfig.preset("flips"), n_per_image=2)
    >>> grid.shape, grid.dtype
    ((32, 104, 3), dtype('uint8'))
    """
    if len(images) != len(labels) or not images:
        raise ValueError(
            f"`images` and `labels` must be non-empty lists of the same length, got {len(images)} and {len(labels)}."
        )
    if not (isinstance(n_per_image, int) and n_per_image >= 1):
        raise ValueError(f"`n_per_image` must be a positive integer, got {n_per_image!r}.")
    augment = build_augmentation(config, spatial_dims=2, seed=seed)
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        image = check_image(image, name=f"images[{i}]", ndim=(2,))
        label = check_labels(label, name=f"labels[{i}]", ndim=(2,))
        check_same_shape(image, label, names=(f"images[{i}]", f"labels[{i}]"))
        cells = [_render(image.astype(np.float32), label)]
        for _ in range(n_per_image):
            out = augment({"image": image[None].astype(np.float32), "label": label[None]})
            cells.append(_render(out["image"][0], out["label"][0]))
        rows.append(cells)
    cell_h = max(c.shape[0] for row in rows for c in row)
    cell_w = max(c.shape[1] for row in rows for c in row)
    n_rows, n_cols = len(rows), n_per_image + 1
    grid = np.full(
        (n_rows * cell_h + (n_rows - 1) * GAP_PX, n_cols * cell_w + (n_cols - 1) * GAP_PX, 3), GAP_VALUE, np.uint8
    )
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            y, x = r * (cell_h + GAP_PX), c * (cell_w + GAP_PX)
            grid[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return grid


def _render(image: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(Y, X, 3) uint8: the image in grey (1-99 % range) with label outlines in ``OUTLINE_RGB``."""
    from skimage.segmentation import find_boundaries

    lo, hi = np.percentile(image, [1.0, 99.0])
    scaled = np.clip((image - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(image)
    rgb = np.repeat((scaled * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
    rgb[find_boundaries(label, mode="inner")] = OUTLINE_RGB
    return rgb


def write_augment_preview(
    images_dir: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    *,
    config: AugmentConfig,
    n_images: int = 4,
    n_per_image: int = 4,
    max_size_px: int = 384,
    seed: int = 0,
) -> Path:
    """Write ``augment_preview.png``: a few training pairs from two folders, each augmented several times.

    Parameters
    ----------
    images_dir, labels_dir : path-like
        Folders of images and labels paired by stem (see :func:`evseg.data.pairs.pair_by_stem`).
    out_dir : path-like
        Output folder (created).
    config : AugmentConfig
        The augmentation to show.
    n_images : int
        Number of pairs shown (the first ones by name).
    n_per_image : int
        Augmented versions per pair.
    max_size_px : int
        Larger images are centre-cropped to this size so the grid stays readable.
    seed : int
        Seed of the augmentation.

    Returns
    -------
    Path
        The PNG written.
    """
    from evseg.data.pairs import pair_by_stem
    from evseg.io import read_image, read_labels, write_png
    from evseg.train.data import labels_to_instances

    images, labels = [], []
    for pair in pair_by_stem(images_dir, labels_dir)[:n_images]:
        image = read_image(pair.image_path).data.astype(np.float32)
        label = labels_to_instances(read_labels(pair.label_path), source=str(pair.label_path))
        check_same_shape(image, label, names=(str(pair.image_path), str(pair.label_path)))
        window = tuple(slice(max(0, (s - max_size_px) // 2), max(0, (s - max_size_px) // 2) + max_size_px)
                       for s in image.shape)
        images.append(image[window])
        labels.append(label[window])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = augment_preview(images, labels, config=config, n_per_image=n_per_image, seed=seed)
    return write_png(out / "augment_preview.png", grid)
