"""Segment many image files and write per-image maps, overlays, and one measurement table for all."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evseg.models.store import SegmentationModel
from evseg.predict.pipeline import CLASSICAL, PredictOptions, segment_image

logger = logging.getLogger(__name__)

MEASUREMENTS_NAME = "measurements.csv"
SUMMARY_NAME = "summary.csv"


@dataclass(frozen=True)
class OutputOptions:
    """Which per-image files to write besides ``<stem>_labels.tif``.

    Attributes
    ----------
    probability : bool
        ``<stem>_prob.tif`` (float32 foreground probability).
    overlay : bool
        ``<stem>_overlay.png`` (outlines and ids over the image).
    rois : bool
        ``<stem>_rois.zip`` (ImageJ ROI set, one polygon per object).
    """

    probability: bool = True
    overlay: bool = True
    rois: bool = True


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one input file: its summary row and measurement table, or its error."""

    path: Path
    summary: dict | None
    table: dict | None
    error: str | None
    seconds: float


def load_segmenter(name_or_folder: str | Path) -> SegmentationModel | str:
    """A model for :func:`predict_files`: ``"classical"``, a bundled model name, or a model folder."""
    from evseg.models.store import load_model

    if str(name_or_folder) == CLASSICAL:
        return CLASSICAL
    return load_model(name_or_folder)


def predict_file(
    model: SegmentationModel | str,
    path: Path,
    out_dir: Path,
    *,
    pixel_size_nm: float | None = None,
    options: PredictOptions = PredictOptions(),
    outputs: OutputOptions = OutputOptions(),
) -> tuple[dict, dict]:
    """Segment one image file and write its per-image outputs into ``out_dir``.

    Parameters
    ----------
    model : SegmentationModel or "classical"
    path : Path
        Image file (TIFF, PNG, JPEG, ...).
    out_dir : Path
        Existing output folder.
    pixel_size_nm : float, optional
        Overrides the file's calibration.
    options, outputs
        How to segment, and which files to write.

    Returns
    -------
    (summary, table)
        The image's summary row and its measurement table (dict of columns, with an ``image`` column).
    """
    from evseg.io import read_image, render_overlay, write_imagej_rois, write_labels, write_png, write_probability
    from evseg.measure import measure_instances, summarize_measurements

    image = read_image(path, pixel_size_nm=pixel_size_nm)
    if image.data.ndim != 2:
        raise ValueError(f"{path}: a {image.data.ndim}D stack (shape {image.data.shape}) was given to a 2D model.")
    result = segment_image(model, image.data, pixel_size_nm=image.pixel_size_nm, options=options, source=path.name)
    stem = path.stem
    write_labels(out_dir / f"{stem}_labels.tif", result.labels, pixel_size_nm=result.pixel_size_nm)
    if outputs.probability:
        write_probability(out_dir / f"{stem}_prob.tif", result.probability, pixel_size_nm=result.pixel_size_nm)
    if outputs.overlay:
        write_png(out_dir / f"{stem}_overlay.png", render_overlay(image.data, result.labels))
    if outputs.rois and result.labels.any():
        write_imagej_rois(out_dir / f"{stem}_rois.zip", result.labels)
    table = measure_instances(result.labels, image.data, pixel_size_nm=result.pixel_size_nm)
    table = {"image": np.full(len(table["label"]), path.name, dtype=object), **table}
    summary = summarize_measurements(table, image_name=path.name)
    return summary, table


def predict_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    model: SegmentationModel | str,
    *,
    pixel_size_nm: float | None = None,
    options: PredictOptions = PredictOptions(),
    outputs: OutputOptions = OutputOptions(),
    progress: bool = True,
) -> list[ImageOutcome]:
    """Segment image files and folders; write per-image files, ``measurements.csv`` and ``summary.csv``.

    An image that fails (unreadable, wrong dimensions...) is reported in its outcome and skipped;
    the others are still processed. The two tables hold the images that succeeded.

    Parameters
    ----------
    paths : sequence of path-like
        Image files and folders of images.
    out_dir : path-like
        Output folder (created).
    model : SegmentationModel or "classical"
    pixel_size_nm : float, optional
        Pixel size for every image, overriding the files' calibration.
    options, outputs
        How to segment, and which files to write.
    progress : bool
        Show a progress bar over images.

    Returns
    -------
    list of ImageOutcome
        One per input image, in order.
    """
    from evseg.io import list_images, write_csv
    from evseg.measure import MEASUREMENT_COLUMNS, SUMMARY_COLUMNS

    files = list_images(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcomes: list[ImageOutcome] = []
    for path in tqdm(files, desc="images", unit="image", disable=not progress):
        start = time.perf_counter()
        try:
            summary, table = predict_file(model, path, out, pixel_size_nm=pixel_size_nm, options=options,
                                          outputs=outputs)
            outcomes.append(ImageOutcome(path, summary, table, None, time.perf_counter() - start))
        except (OSError, ValueError, TypeError) as exc:
            logger.error("%s", exc if str(path) in str(exc) else f"{path}: {exc}")
            outcomes.append(ImageOutcome(path, None, None, str(exc), time.perf_counter() - start))
    done = [o for o in outcomes if o.error is None]
    columns = ("image", *MEASUREMENT_COLUMNS)
    merged = {c: np.concatenate([np.asarray(o.table[c]) for o in done]) if done else np.zeros(0) for c in columns}
    write_csv(out / MEASUREMENTS_NAME, merged, columns=columns)
    write_csv(out / SUMMARY_NAME, [o.summary for o in done], columns=SUMMARY_COLUMNS)
    return outcomes
