"""Segment many image files (in this process or a local process pool); write per-image files, tables, a report.

Workers are started with the ``spawn`` method: a script that calls :func:`predict_files` with more
than one worker must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from evseg.models.store import SegmentationModel
from evseg.predict.pipeline import CLASSICAL, PredictOptions, segment_image

if TYPE_CHECKING:
    import distributed

logger = logging.getLogger(__name__)

MEASUREMENTS_NAME = "measurements.csv"
SUMMARY_NAME = "summary.csv"

#: Errors that fail one image (reported in its outcome) without stopping the run.
IMAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, TypeError, RuntimeError, MemoryError)


#: Longest side (pixels) of ``<stem>_overlay.png``; larger images get an overlay subsampled by an integer step.
OVERLAY_MAX_PX = 4096


@dataclass(frozen=True)
class OutputOptions:
    """Which per-image files to write besides ``<stem>_labels.tif``.

    Attributes
    ----------
    probability : bool
        ``<stem>_prob.tif`` (float32 foreground probability).
    overlay : bool
        ``<stem>_overlay.png`` (outlines and ids over the image; subsampled by an integer step for
        images longer than ``OVERLAY_MAX_PX`` pixels).
    rois : bool
        ``<stem>_rois.zip`` (ImageJ ROI set, one polygon per object).
    """

    probability: bool = True
    overlay: bool = True
    rois: bool = True


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one input file: its summary row and measurement table, or its error.

    Attributes
    ----------
    path : Path
        The input file.
    summary : dict or None
        Its row of ``summary.csv`` (keys ``evseg.measure.SUMMARY_COLUMNS``); ``None`` if it failed.
    table : dict or None
        Its measurement table (an ``image`` column, then ``evseg.measure.MEASUREMENT_COLUMNS``).
    error : str or None
        Why it failed (the message names the file); ``None`` on success.
    seconds : float
        Wall time spent on it, reading and writing included.
    warnings : tuple of str
        Warnings raised or logged while it was processed (e.g. an unknown pixel size).
    thumbnail : bytes or None
        Small JPEG of the overlay for the report (see ``evseg.report.make_thumbnail``).
    pixel_size_nm : float or None
        Pixel size the image was measured with (``None``: unknown, measurements in pixels).
    """

    path: Path
    summary: dict | None
    table: dict | None
    error: str | None
    seconds: float
    warnings: tuple[str, ...] = ()
    thumbnail: bytes | None = field(default=None, repr=False)
    pixel_size_nm: float | None = None


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
    summary, table, _, _ = segment_file(model, Path(path), Path(out_dir), pixel_size_nm=pixel_size_nm,
                                        options=options, outputs=outputs, thumbnail_width=None)
    return summary, table


def segment_file(
    model: SegmentationModel | str,
    path: Path,
    out_dir: Path,
    *,
    pixel_size_nm: float | None,
    options: PredictOptions,
    outputs: OutputOptions,
    thumbnail_width: int | None,
) -> tuple[dict, dict, bytes | None, float | None]:
    """:func:`predict_file`, also returning a report thumbnail and the pixel size used.

    Returns
    -------
    (summary, table, thumbnail, pixel_size_nm)
        ``thumbnail`` is a JPEG of longest side ``thumbnail_width`` pixels, or ``None`` when that is ``None``.
    """
    from evseg.io import read_image, render_overlay, write_imagej_rois, write_labels, write_png, write_probability
    from evseg.measure import measure_instances, summarize_measurements

    image = read_image(path, pixel_size_nm=pixel_size_nm)
    from evseg.predict.volume import model_spatial_dims, predict_volume_file

    if model_spatial_dims(model) == 3:
        return predict_volume_file(model, image, out_dir, options=options, outputs=outputs,
                                   thumbnail_width=thumbnail_width)
    if image.data.ndim != 2:
        raise ValueError(f"{path}: a {image.data.ndim}D stack (shape {image.data.shape}) was given to a 2D model.")
    result = segment_image(model, image.data, pixel_size_nm=image.pixel_size_nm, options=options, source=path.name)
    stem = path.stem
    write_labels(out_dir / f"{stem}_labels.tif", result.labels, pixel_size_nm=result.pixel_size_nm)
    if outputs.probability:
        write_probability(out_dir / f"{stem}_prob.tif", result.probability, pixel_size_nm=result.pixel_size_nm)
    if outputs.overlay:
        step = max(1, -(-max(image.data.shape) // OVERLAY_MAX_PX))  # huge images: a subsampled overlay
        if step > 1:
            logger.info("%s: overlay drawn at 1/%d of the image size (longest side at most %d px)", path.name, step,
                        OVERLAY_MAX_PX)
        write_png(out_dir / f"{stem}_overlay.png",
                  render_overlay(image.data[::step, ::step], result.labels[::step, ::step]))
    if outputs.rois and result.labels.any():
        write_imagej_rois(out_dir / f"{stem}_rois.zip", result.labels)
    table = measure_instances(result.labels, image.data, pixel_size_nm=result.pixel_size_nm)
    table = {"image": np.full(len(table["label"]), path.name, dtype=object), **table}
    summary = summarize_measurements(table, image_name=path.name)
    thumbnail = None
    if thumbnail_width is not None:
        from evseg.report import make_thumbnail

        thumbnail = make_thumbnail(image.data, result.labels, width=thumbnail_width)
    return summary, table, thumbnail, result.pixel_size_nm


def predict_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    model: SegmentationModel | str | Path,
    *,
    pixel_size_nm: float | None = None,
    options: PredictOptions = PredictOptions(),
    outputs: OutputOptions = OutputOptions(),
    progress: bool = True,
    workers: int | None = None,
    scheduler: str | distributed.Client | None = None,
    report: bool = True,
    run_info: Mapping[str, Any] | None = None,
) -> list[ImageOutcome]:
    """Segment image files and folders; write per-image files, the two tables and ``report.html``.

    An image that fails (unreadable, wrong dimensions, out of memory...) is reported in its outcome,
    logged, and listed in the report; the others are still processed. ``measurements.csv`` and
    ``summary.csv`` hold the images that succeeded, in input order whatever the order they finished in.

    Parameters
    ----------
    paths : sequence of path-like
        Image files and folders of images.
    out_dir : path-like
        Output folder (created).
    model : SegmentationModel, "classical", bundled model name or model folder
    pixel_size_nm : float, optional
        Pixel size for every image, overriding the files' calibration.
    options, outputs
        How to segment, and which files to write.
    progress : bool
        Show a progress bar over images.
    workers : int, optional
        Local worker processes. ``None``: one per image up to the number of usable cores (1 on a
        single-core machine); 1 runs in this process. Each worker loads the model once and uses
        ``cores // workers`` torch threads. Results are identical to a single-process run.
    scheduler : str or distributed.Client, optional
        Address of a running dask.distributed scheduler (``tcp://host:8786``), or an open client:
        run the images on that cluster instead (see :mod:`evseg.predict.distributed`; needs
        ``pip install "evseg[dask]"``, and inputs and ``out_dir`` on storage shared with the workers).
        Nothing is written if the scheduler cannot be reached.
    report : bool
        Write ``report.html`` (plots need matplotlib, ``pip install "evseg[plot]"``).
    run_info : mapping, optional
        Extra rows for the report's parameter table (the command line passes its own).

    Returns
    -------
    list of ImageOutcome
        One per input image, in input order.

    Raises
    ------
    ValueError
        If ``workers`` is not a positive integer or both ``workers`` and ``scheduler`` are given.
    ConnectionError
        If ``scheduler`` cannot be reached (nothing is written).
    ImportError
        If ``scheduler`` is given and dask.distributed is not installed.
    """
    from evseg.io import list_images

    if scheduler is not None and workers is not None:
        raise ValueError("Give either `workers` (local processes) or `scheduler` (a dask cluster), not both.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ValueError(f"`workers` must be a positive integer or None (automatic), got {workers!r}.")
    files = list_images(paths)
    if isinstance(model, (str, Path)):
        model = load_segmenter(model)
    out = Path(out_dir)
    thumbnail_width = _thumbnail_width(len(files)) if report else None
    if scheduler is not None:
        from evseg.predict.distributed import run_on_dask

        outcomes = run_on_dask(files, out, model, scheduler=scheduler, pixel_size_nm=pixel_size_nm, options=options,
                               outputs=outputs, progress=progress, thumbnail_width=thumbnail_width)
        address = scheduler if isinstance(scheduler, str) else scheduler.scheduler.address
        n_workers: int | str = f"dask cluster at {address}"
    else:
        out.mkdir(parents=True, exist_ok=True)
        n_workers = resolve_workers(workers, len(files))
        task = {"out_dir": out, "pixel_size_nm": pixel_size_nm, "options": options, "outputs": outputs,
                "thumbnail_width": thumbnail_width}
        if n_workers == 1:
            outcomes = _run_serial(files, model, task, progress=progress)
        else:
            outcomes = _run_pool(files, model, task, workers=n_workers, progress=progress)
    write_tables(out, outcomes)
    if report:
        from evseg.report import describe_model, describe_parameters, write_report

        parameters = describe_parameters(model, options=options, pixel_size_nm=pixel_size_nm, workers=n_workers)
        write_report(out, outcomes, model_description=describe_model(model),
                     parameters={**parameters, **dict(run_info or {})})
    return outcomes


def write_tables(out_dir: Path, outcomes: Sequence[ImageOutcome]) -> tuple[Path, Path]:
    """Write ``measurements.csv`` and ``summary.csv`` for the outcomes that succeeded, in their order."""
    from evseg.io import write_csv
    from evseg.measure import SUMMARY_COLUMNS
    from evseg.predict.volume import write_measurement_tables

    done = [o for o in outcomes if o.error is None]
    paths = write_measurement_tables(out_dir, [o.table for o in done])
    return paths[0], write_csv(out_dir / SUMMARY_NAME, [o.summary for o in done], columns=SUMMARY_COLUMNS)


def resolve_workers(workers: int | None, n_images: int) -> int:
    """Number of local processes: ``workers`` capped at ``n_images``, or min(images, usable cores)."""
    cores = available_cores()
    wanted = (cores if cores > 1 else 1) if workers is None else int(workers)
    return max(1, min(wanted, n_images))


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _thumbnail_width(n_images: int) -> int:
    from evseg.report import thumbnail_width_for

    return thumbnail_width_for(n_images)


# --- running one image and collecting what it reported ---------------------------------------------------------


@dataclass
class ImageResult:
    """An outcome plus the warnings and log records raised while computing it (to replay elsewhere)."""

    outcome: ImageOutcome
    warnings: list[tuple[type[Warning], str]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_messages() -> Iterator[ImageResult]:
    """Record warnings and evseg log records (WARNING and above) raised inside the block.

    Yields an :class:`ImageResult` whose ``warnings`` and ``records`` are filled when the block ends
    (its ``outcome`` is for the caller to set). Log records still reach the usual handlers.
    """
    holder = ImageResult(outcome=None)  # type: ignore[arg-type]
    handler = _ListHandler()
    evseg_logger = logging.getLogger("evseg")
    evseg_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield holder
    finally:
        evseg_logger.removeHandler(handler)
    holder.warnings = [(w.category, str(w.message)) for w in caught]
    for record in handler.records:  # make them picklable: format now, drop arguments and tracebacks
        record.msg, record.args, record.exc_info, record.exc_text = record.getMessage(), None, None, None
    holder.records = handler.records


def error_text(path: Path, exc: BaseException) -> str:
    """An error message that names the file."""
    message = str(exc) or type(exc).__name__
    return message if str(path) in message or path.name in message else f"{path}: {message}"


def run_one(model: SegmentationModel | str, path: Path, *, catch: bool = True, **task: Any) -> ImageResult:
    """Segment one file (:func:`segment_file`), timing it and recording its warnings.

    With ``catch`` an error of :data:`IMAGE_ERRORS` becomes the outcome's ``error``; otherwise it
    is raised (so that a dask task can be retried).
    """
    start = time.perf_counter()
    outcome = None
    with capture_messages() as result:
        try:
            summary, table, thumb, px = segment_file(model, path, **task)
            outcome = ImageOutcome(path, summary, table, None, 0.0, thumbnail=thumb, pixel_size_nm=px)
        except IMAGE_ERRORS as exc:
            if not catch:
                raise
            outcome = ImageOutcome(path, None, None, error_text(path, exc), 0.0)
    notes = tuple(message for _, message in result.warnings) + tuple(r.getMessage() for r in result.records)
    result.outcome = dataclasses.replace(outcome, seconds=time.perf_counter() - start, warnings=notes)
    return result


def replay(result: ImageResult, *, logs: bool) -> ImageOutcome:
    """Re-issue an image's warnings (and, from another process, its log records) here; log its error."""
    for category, message in result.warnings:
        warnings.warn(message, category, stacklevel=2)
    if logs:
        for record in result.records:
            target = logging.getLogger(record.name)
            if target.isEnabledFor(record.levelno):
                target.handle(record)
    if result.outcome.error is not None:
        logger.error("%s", result.outcome.error)
    return result.outcome


def _run_serial(files: Sequence[Path], model: SegmentationModel | str, task: dict[str, Any], *,
                progress: bool) -> list[ImageOutcome]:
    return [replay(run_one(model, path, **task), logs=False)
            for path in tqdm(files, desc="images", unit="image", disable=not progress)]


# --- local process pool ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackedModel:
    """A model as bytes, to ship to worker processes once (``blob`` is ``None`` for "classical")."""

    key: str
    blob: bytes | None
    path: str | None


def pack_model(model: SegmentationModel | str) -> PackedModel:
    """Serialise a model (config + weights) for :func:`worker_model` in another process."""
    import torch

    if not isinstance(model, SegmentationModel):
        return PackedModel(str(model), None, None)
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    torch.save({"config": model.config, "state": state}, buffer)
    blob = buffer.getvalue()
    path = str(model.path) if model.path is not None else None
    return PackedModel(hashlib.sha256(blob).hexdigest(), blob, path)


# Per-process model cache of pool and dask workers (filled in the worker processes only).
_WORKER_MODELS: dict[str, SegmentationModel | str] = {}


def worker_model(packed: PackedModel) -> SegmentationModel | str:
    """The unpacked model, built once per process and kept (the last one only)."""
    import torch

    cached = _WORKER_MODELS.get(packed.key)
    if cached is not None:
        return cached
    if packed.blob is None:
        model: SegmentationModel | str = packed.key
    else:
        from evseg.models.registry import build_model

        content = torch.load(io.BytesIO(packed.blob), map_location="cpu", weights_only=True)
        config = content["config"]
        network = build_model(config["arch"], **config["arch_kwargs"])
        network.load_state_dict(content["state"])
        network.eval()
        model = SegmentationModel(network=network, config=config,
                                  path=Path(packed.path) if packed.path is not None else None)
    _WORKER_MODELS.clear()
    _WORKER_MODELS[packed.key] = model
    return model


def _init_pool_worker(packed: PackedModel, torch_threads: int) -> None:
    import torch

    torch.set_num_threads(torch_threads)
    logging.getLogger("evseg").propagate = False  # records go back to the parent, which logs them
    worker_model(packed)


def _pool_task(key: str, path: Path, task: dict[str, Any]) -> ImageResult:
    return run_one(_WORKER_MODELS[key], path, **task)


def _run_pool(files: Sequence[Path], model: SegmentationModel | str, task: dict[str, Any], *, workers: int,
              progress: bool) -> list[ImageOutcome]:
    packed = pack_model(model)
    threads = max(1, available_cores() // workers)
    task = {**task, "options": dataclasses.replace(task["options"], progress=False)}
    logger.info("%d images on %d worker processes (%d torch thread(s) each)", len(files), workers, threads)
    outcomes: list[ImageOutcome | None] = [None] * len(files)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_pool_worker, initargs=(packed, threads))
    try:
        futures = {pool.submit(_pool_task, packed.key, path, task): i for i, path in enumerate(files)}
        for future in tqdm(as_completed(futures), total=len(files), desc="images", unit="image",
                           disable=not progress):
            i = futures[future]
            try:
                outcomes[i] = replay(future.result(), logs=True)
            except BrokenProcessPool as exc:
                error = (f"{files[i]}: a worker process stopped before finishing this image (out of memory, or it "
                         f"could not start: see the messages above; try fewer --workers, or --workers 1) [{exc}]")
                logger.error("%s", error)
                outcomes[i] = ImageOutcome(files[i], None, None, error, 0.0)
    except BaseException:  # an unexpected error or Ctrl-C: drop the queued images, do not wait for them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return list(outcomes)  # type: ignore[arg-type]  # every future has set its slot
