"""Pair image and label files by stem, and split pairs by image into independent sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evseg._validate import as_rng

#: File suffixes taken as images or labels when pairing folders.
PAIR_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".mrc", ".dm3", ".dm4")


@dataclass(frozen=True)
class FilePair:
    """An image file and its label file, sharing ``stem``."""

    stem: str
    image_path: Path
    label_path: Path


def _files_by_stem(folder: Path, *, strip_suffix: str = "") -> dict[str, Path]:
    if not folder.exists():
        raise FileNotFoundError(f"Folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"Not a folder: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in PAIR_SUFFIXES:
            continue
        stem = path.stem
        if strip_suffix and stem.endswith(strip_suffix):
            stem = stem[: -len(strip_suffix)]
        if stem in found:
            raise ValueError(f"Two files in {folder} share the stem {stem!r}: {found[stem].name}, {path.name}.")
        found[stem] = path
    return found


def pair_by_stem(images_dir: str | Path, labels_dir: str | Path) -> list[FilePair]:
    """Pair every image in ``images_dir`` with the label file of the same stem in ``labels_dir``.

    A label file may carry a ``_labels`` or ``_mask`` suffix (``a_labels.tif`` pairs with ``a.png``).

    Parameters
    ----------
    images_dir, labels_dir : path-like
        Folders (not searched recursively).

    Returns
    -------
    list of FilePair
        Sorted by stem.

    Raises
    ------
    FileNotFoundError
        If a folder does not exist.
    ValueError
        If a folder holds no image files, or some stems have no partner (they are listed).
    """
    images = _files_by_stem(Path(images_dir))
    labels = _files_by_stem(Path(labels_dir))
    for suffix in ("_labels", "_mask"):
        labels = {(k[: -len(suffix)] if k.endswith(suffix) and k[: -len(suffix)] in images else k): v
                  for k, v in labels.items()}
    if not images:
        raise ValueError(f"No image files ({', '.join(PAIR_SUFFIXES)}) in {images_dir}.")
    missing_labels = sorted(set(images) - set(labels))
    missing_images = sorted(set(labels) - set(images))
    if missing_labels or missing_images:
        parts = []
        if missing_labels:
            parts.append(f"images without a label file in {labels_dir}: {', '.join(missing_labels[:10])}")
        if missing_images:
            parts.append(f"label files without an image in {images_dir}: {', '.join(missing_images[:10])}")
        raise ValueError("Unmatched image/label stems — " + "; ".join(parts) + ".")
    return [FilePair(stem, images[stem], labels[stem]) for stem in sorted(images)]


def split_indices(
    n_items: int,
    *,
    val_fraction: float,
    test_fraction: float = 0.0,
    rng: int | np.random.Generator | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """Split ``range(n_items)`` into disjoint train, validation and test index lists.

    Splitting is by item (image), so no image contributes patches to two sets. Validation and test
    get at least one item each when their fraction is > 0.

    Parameters
    ----------
    n_items : int
        Number of images.
    val_fraction, test_fraction : float
        Fractions in [0, 1) of the images held out for validation and test.
    rng : int, Generator or None
        Seed for the shuffle.

    Returns
    -------
    (train, val, test) : tuple of lists of int
        Sorted indices.

    Raises
    ------
    ValueError
        If the fractions are out of range or there are too few images for the split.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {frac}.")
    n_val = int(round(n_items * val_fraction)) if val_fraction > 0 else 0
    n_test = int(round(n_items * test_fraction)) if test_fraction > 0 else 0
    n_val = max(n_val, 1 if val_fraction > 0 else 0)
    n_test = max(n_test, 1 if test_fraction > 0 else 0)
    if n_items - n_val - n_test < 1:
        raise ValueError(
            f"Too few images ({n_items}) for the split: {n_val} validation + {n_test} test leave no "
            "training image. Add images or lower --val-fraction / --test-fraction."
        )
    order = as_rng(rng).permutation(n_items)
    val = sorted(int(i) for i in order[:n_val])
    test = sorted(int(i) for i in order[n_val : n_val + n_test])
    train = sorted(int(i) for i in order[n_val + n_test :])
    return train, val, test
