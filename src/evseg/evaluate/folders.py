"""Evaluate a folder of predicted label images against a folder of ground truth (+ pooled row)."""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from evseg._validate import check_labels, check_same_shape
from evseg.evaluate.scores import image_scores, pool_scores
from evseg.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Columns of an evaluation table, in order; the last row has ``image == "ALL"`` (pooled).
EVALUATION_COLUMNS = (
    "image", "n_gt", "n_pred", "jaccard", "dice", "seg", "det", "delta_d", "delta_r",
    "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5",
)

#: File suffixes read as label images (case-insensitive).
LABEL_SUFFIXES = (".tif", ".tiff", ".png")

#: Optional suffix of a prediction's stem: ``img1_labels.tif`` pairs with ``img1.tif``.
PREDICTION_SUFFIX = "_labels"

#: Name of the pooled row.
POOLED_ROW = "ALL"


def _label_files(folder: Path, *, what: str) -> dict[str, Path]:
    """Label files of ``folder`` by stem; two files with one stem (``a.tif``, ``a.png``) raise."""
    if not folder.is_dir():
        raise NotADirectoryError(f"{what} folder not found or not a folder: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in LABEL_SUFFIXES:
            continue
        if not path.is_file():
            continue
        if path.stem in found:
            raise ValueError(
                f"Two {what} files in {folder} share the stem {path.stem!r}: "
                f"{found[path.stem].name} and {path.name}; keep one."
            )
        found[path.stem] = path
    return found


def pair_label_files(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike
) -> list[tuple[str, Path, Path]]:
    """Pair each ground-truth label file with the prediction of the same stem.

    Files ending in .tif, .tiff or .png count (not searched recursively). The prediction for
    GT ``img1.png`` is ``img1_labels.<ext>`` or ``img1.<ext>`` in ``pred_dir``; when both exist the
    ``_labels`` file is taken (the other is probably an image). Files in ``pred_dir`` that pair
    with no GT file (``<stem>_prob.tif``, ``<stem>_overlay.png``, ...) are skipped (logged at INFO).

    Parameters
    ----------
    pred_dir, gt_dir : path-like
        Folders of predicted and ground-truth label images.

    Returns
    -------
    list of (str, Path, Path)
        ``(stem, prediction file, GT file)``, sorted by the GT stem.

    Raises
    ------
    NotADirectoryError
        If a folder does not exist.
    ValueError
        If a GT file has no prediction (the stems are listed), a folder has two files with one
        stem, or there is no pair at all (both folders are named).
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gt_files = _label_files(gt_dir, what="ground-truth")
    pred_files = _label_files(pred_dir, what="prediction")
    if not gt_files:
        raise ValueError(
            f"No label files ({', '.join(LABEL_SUFFIXES)}) in the ground-truth folder {gt_dir} "
            f"to pair with the predictions in {pred_dir}."
        )
    pairs: list[tuple[str, Path, Path]] = []
    used: set[str] = set()
    missing: list[str] = []
    for stem, gt_path in gt_files.items():
        for candidate in (stem + PREDICTION_SUFFIX, stem):
            if candidate in pred_files:
                if candidate in used:
                    raise ValueError(
                        f"The prediction {pred_files[candidate].name} pairs with two ground-truth "
                        f"files in {gt_dir}; rename one of them."
                    )
                used.add(candidate)
                pairs.append((stem, pred_files[candidate], gt_path))
                break
        else:
            missing.append(stem)
    if missing and not pairs:
        raise ValueError(
            f"No prediction in {pred_dir} pairs with a ground-truth file in {gt_dir} (by stem, "
            f"optionally with a {PREDICTION_SUFFIX!r} suffix on the prediction)."
        )
    if missing:
        listed = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(
            f"{len(missing)} ground-truth file(s) in {gt_dir} have no prediction in {pred_dir} "
            f"(expected <stem>{PREDICTION_SUFFIX}.tif or <stem>.tif/.png): {listed}"
        )
    extra = sorted(set(pred_files) - used)
    if extra:
        logger.debug("Skipping %d file(s) in %s with no ground truth in %s (e.g. probability maps, "
                    "overlays): %s", len(extra), pred_dir, gt_dir, ", ".join(extra[:20]))
    return pairs


def read_label_file(path: str | os.PathLike) -> np.ndarray:
    """Read a label image from a TIFF (tifffile) or PNG (PIL) file.

    A binary mask (an image whose non-zero pixels all share one value, e.g. {0, 255}) is turned
    into instances by connected components (``skimage.measure.label``, full connectivity), with
    a logged warning when that yields more than one object. Otherwise ids are kept as stored.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` (2D or 3D) or ``.png`` (2D, one channel).

    Returns
    -------
    ndarray of int, shape (Y, X) or (Z, Y, X)
        Labels, 0 = background.

    Raises
    ------
    ValueError
        If the file cannot be read, has the wrong number of dimensions (e.g. an RGB PNG) or
        negative values; the file is named.
    TypeError
        If the file holds non-integer (e.g. float) values.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as img:
                labels = np.asarray(img)
        else:
            import tifffile

            labels = tifffile.imread(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"Cannot read label file {path}: {err}") from err
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if path.suffix.lower() == ".png" and labels.ndim != 2:
        raise ValueError(
            f"Label file {path} has shape {labels.shape}; a PNG label image must have one channel "
            "(save labels as greyscale or 16-bit PNG, or as TIFF)."
        )
    labels = check_labels(labels, name=str(path))
    foreground = labels > 0
    if foreground.any():
        values = labels[foreground]
        if values.min() == values.max():
            from skimage.measure import label

            components, count = label(foreground, return_num=True)
            if count > 1:
                logger.warning("%s is a binary mask (only value %d); split into %d objects by "
                               "connected components.", path, int(values[0]), count)
                return components.astype(np.int32)
    return labels


def evaluate_folders(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, *, progress: bool = False
) -> list[dict[str, str | int | float]]:
    """Evaluate every prediction in ``pred_dir`` against its ground truth in ``gt_dir``.

    Files are paired by :func:`pair_label_files` and read by :func:`read_label_file`; the
    metrics are those of :func:`evseg.evaluate.scores.evaluate_pair`.

    Parameters
    ----------
    pred_dir, gt_dir : path-like
        Folders of predicted and ground-truth label images (2D or 3D).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of dict
        One row per image (``image`` = GT stem) plus a last row ``image == "ALL"`` pooled over all
        objects of all images (:func:`evseg.evaluate.scores.pool_scores`); keys are
        :data:`EVALUATION_COLUMNS`.

    Raises
    ------
    ValueError
        As :func:`pair_label_files` and :func:`read_label_file`, if a GT file is named "ALL", or
        if a prediction's shape differs from its GT's (both files are named).
    """
    from tqdm import tqdm

    pairs = pair_label_files(pred_dir, gt_dir)
    if any(stem == POOLED_ROW for stem, _, _ in pairs):
        raise ValueError(f"A ground-truth file in {gt_dir} is named {POOLED_ROW!r}, the name of "
                         "the pooled row; rename it.")
    rows: list[dict[str, str | int | float]] = []
    scores = []
    for stem, pred_path, gt_path in tqdm(pairs, desc="evaluate", disable=not progress):
        gt = read_label_file(gt_path)
        pred = read_label_file(pred_path)
        check_same_shape(gt, pred, names=(str(gt_path), str(pred_path)))
        image = image_scores(gt, pred)
        scores.append(image)
        rows.append({"image": stem, **image.metrics()})
    rows.append({"image": POOLED_ROW, **pool_scores(scores).metrics()})
    return rows


def _cell(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Format evaluation rows as a fixed-width text table (floats to 3 decimals).

    Parameters
    ----------
    rows : sequence of mapping
        Rows as returned by :func:`evaluate_folders`; the columns are the first row's keys.

    Returns
    -------
    str
        Header line and one line per row, columns separated by two spaces, the first column
        left-aligned and the others right-aligned; no trailing newline. Empty string for no rows.
    """
    if not rows:
        return ""
    columns = list(rows[0].keys())
    cells = [columns] + [[_cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join(lines)


def write_evaluation_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike) -> Path:
    """Write evaluation rows to a CSV file atomically (full float precision, NaN as ``nan``).

    Parameters
    ----------
    rows : sequence of mapping
        Rows with the keys :data:`EVALUATION_COLUMNS` (as :func:`evaluate_folders` returns).
    path : path-like
        Output file; its folder must exist. Written under a temporary name, then renamed.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If the folder of ``path`` does not exist or a row lacks or adds a column.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"Folder of `path` does not exist: {path.parent}; create it first.")
    for k, row in enumerate(rows):
        if set(row) != set(EVALUATION_COLUMNS):
            raise ValueError(
                f"Row {k} of `rows` has columns {sorted(row)}; expected {list(EVALUATION_COLUMNS)}."
            )
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EVALUATION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
