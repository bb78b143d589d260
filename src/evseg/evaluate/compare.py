"""Compare segmentation methods side by side: one split, learned ones trained alike, all scored on the test set."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg.evaluate.scores import ImageScores, image_scores, pool_scores

if TYPE_CHECKING:
    from evseg.data.pairs import FilePair
    from evseg.io.readers import Image
    from evseg.models.store import SegmentationModel
    from evseg.predict.pipeline import PredictOptions, Segmentation
    from evseg.train.config import TrainConfig

logger = logging.getLogger(__name__)

#: Method names that are trained here (architectures of :class:`evseg.train.config.TrainConfig`).
LEARNED_METHODS = ("frunet", "unet")
#: The no-learning baseline.
CLASSICAL_METHOD = "classical"
#: What a method row is: trained here, the classical baseline, or an existing model evaluated as it is.
METHOD_KINDS = ("learned", "classical", "model")

#: Columns of ``comparison.csv`` (one row per method; scores pooled over all test images).
COMPARISON_COLUMNS = (
    "method", "kind", "n_images", "n_gt", "n_pred", "jaccard", "dice", "seg", "det", "delta_d", "delta_r",
    "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5", "seconds_per_image", "train_minutes", "epochs_run",
    "best_epoch", "stop_reason",
)
#: Columns of ``per_image.csv`` (one row per method and test image).
PER_IMAGE_COLUMNS = (
    "method", "image", "n_gt", "n_pred", "jaccard", "dice", "seg", "det", "delta_d", "delta_r",
    "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5", "seconds",
)
#: Key of the ground truth in :attr:`ComparisonResult.diameters`.
GROUND_TRUTH = "ground truth"
#: Name of the split record in the report folder (and in each trained model's folder).
SPLIT_NAME = "split.json"
#: Sub-folder of the report folder holding the trained models.
MODELS_DIR = "models"


@dataclass(frozen=True)
class MethodSpec:
    """One method to compare.

    Attributes
    ----------
    name : str
        Its row name (an architecture, ``"classical"``, a bundled model name or a model folder's name).
    kind : {"learned", "classical", "model"}
        Trained here, the classical baseline, or an existing model that is only evaluated.
    source : str
        The architecture, ``"classical"``, or the bundled model name / model folder as given.
    """

    name: str
    kind: str
    source: str


@dataclass(frozen=True)
class TrainingSummary:
    """How a learned method was trained.

    Attributes
    ----------
    model_dir : Path
        The saved model folder (best validation epoch).
    epochs_run, best_epoch : int
        Epochs completed and the epoch kept.
    stop_reason : str
        ``"epochs"``, ``"time limit"`` or ``"early stopping"``.
    minutes : float
        Wall-clock training time, validation included.
    validation : dict
        Validation scores of the kept epoch.
    """

    model_dir: Path
    epochs_run: int
    best_epoch: int
    stop_reason: str
    minutes: float
    validation: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodRow:
    """The scores of one method on the test images.

    Attributes
    ----------
    name : str
        Method (row) name.
    kind : {"learned", "classical", "model"}
    scores : ImageScores
        Sufficient statistics pooled over all test images (``scores.metrics()`` gives the metrics).
    seconds_per_image : float
        Mean wall-clock seconds of :func:`evseg.predict.pipeline.segment_image` per test image
        (reading files and training excluded).
    n_images : int
        Number of test images.
    training : TrainingSummary or None
        Set for learned methods.
    """

    name: str
    kind: str
    scores: ImageScores
    seconds_per_image: float
    n_images: int
    training: TrainingSummary | None = None

    def metrics(self) -> dict[str, float | int]:
        """The pooled metrics (keys of :meth:`evseg.evaluate.scores.ImageScores.metrics`)."""
        return self.scores.metrics()

    def as_dict(self) -> dict[str, Any]:
        """The row with the keys :data:`COMPARISON_COLUMNS` (training fields NaN/None when not trained)."""
        t = self.training
        return {
            "method": self.name, "kind": self.kind, "n_images": self.n_images, **self.metrics(),
            "seconds_per_image": self.seconds_per_image,
            "train_minutes": t.minutes if t else math.nan,
            "epochs_run": t.epochs_run if t else None,
            "best_epoch": t.best_epoch if t else None,
            "stop_reason": t.stop_reason if t else None,
        }


@dataclass(frozen=True)
class ExampleImage:
    """A test image kept for the side-by-side overlays.

    Attributes
    ----------
    stem : str
    image : ndarray, shape (Y, X)
        The image as read (any real dtype).
    ground_truth : ndarray of int32, shape (Y, X)
    predictions : dict of str to ndarray of int32, shape (Y, X)
        Instance labels per method name.
    """

    stem: str
    image: np.ndarray
    ground_truth: np.ndarray
    predictions: dict[str, np.ndarray]


@dataclass(frozen=True)
class ComparisonResult:
    """Everything a comparison produced (what :func:`write_comparison_report` renders).

    Attributes
    ----------
    rows : tuple of MethodRow
        One per method, in the order given.
    per_image : tuple of dict
        One row per method and test image (keys :data:`PER_IMAGE_COLUMNS`).
    split : dict of str to tuple of str
        Image stems of the ``train``, ``val`` and ``test`` sets.
    diameters : dict of str to ndarray of float
        Equivalent diameters of every object in the test images: :data:`GROUND_TRUTH` and each method.
    diameter_unit : {"nm", "px"}
        ``"nm"`` when every test image has a pixel size, else ``"px"``.
    examples : tuple of ExampleImage
        A few test images with the ground truth and every method's labels.
    config : TrainConfig
        The training settings shared by the learned methods (``arch`` set per method).
    images_dir, labels_dir : Path
        The data.
    pixel_size_nm : float or None
        The pixel size given for all images (``None``: the files' own).
    """

    rows: tuple[MethodRow, ...]
    per_image: tuple[dict[str, Any], ...]
    split: dict[str, tuple[str, ...]]
    diameters: dict[str, np.ndarray]
    diameter_unit: str
    examples: tuple[ExampleImage, ...]
    config: TrainConfig
    images_dir: Path
    labels_dir: Path
    pixel_size_nm: float | None = None

    def table(self) -> list[dict[str, Any]]:
        """One dict per method with the keys :data:`COMPARISON_COLUMNS`."""
        return [row.as_dict() for row in self.rows]


def resolve_methods(methods: Sequence[str]) -> list[MethodSpec]:
    """Say what each method name is: an architecture to train, the baseline, or an existing model.

    Parameters
    ----------
    methods : sequence of str
        ``"frunet"``, ``"unet"``, ``"classical"``, a bundled model name (``"sev"``) or a model folder.

    Returns
    -------
    list of MethodSpec
        In the given order.

    Raises
    ------
    ValueError
        If ``methods`` is empty, a name is neither of the above (the options are listed, with the
        closest match), or two methods would get the same row name.
    """
    from evseg._registry import look_up_option
    from evseg.models.store import BUNDLED_MODELS, CONFIG_NAME

    if isinstance(methods, str) or not methods:
        raise ValueError(f"`methods` must be a non-empty list of method names, got {methods!r}.")
    specs: list[MethodSpec] = []
    for method in methods:
        text = str(method)
        path = Path(text)
        if text in LEARNED_METHODS:
            specs.append(MethodSpec(text, "learned", text))
        elif text == CLASSICAL_METHOD:
            specs.append(MethodSpec(text, "classical", text))
        elif (path / CONFIG_NAME).is_file():
            specs.append(MethodSpec(path.resolve().name, "model", text))
        elif text in BUNDLED_MODELS:
            specs.append(MethodSpec(text, "model", text))
        elif path.exists():
            raise ValueError(f"Method {text!r} is a path but not an evseg model folder ({CONFIG_NAME} is missing).")
        else:
            options = (*LEARNED_METHODS, CLASSICAL_METHOD, *BUNDLED_MODELS)
            try:
                look_up_option(text, options, what="method")
            except ValueError as exc:
                raise ValueError(f"{exc} Or give an existing model folder.") from None
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"`methods` name the same method twice: {', '.join(duplicates)}; give each once.")
    return specs


def _check_fractions(train_fraction: float, val_fraction: float) -> float:
    """The test fraction left by the train and validation fractions (checked)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"`train_fraction` must be in (0, 1), got {train_fraction}.")
    test_fraction = round(1.0 - train_fraction - val_fraction, 10)
    if test_fraction <= 0.0:
        raise ValueError(
            f"`train_fraction` ({train_fraction}) + validation fraction ({val_fraction}) must be < 1 so "
            "that some images are left for testing; lower one of them."
        )
    return test_fraction


def _train_learned(
    arch: str,
    config: TrainConfig,
    split: dict[str, list[FilePair]],
    *,
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    out_dir: Path,
    pixel_size_nm: float | None,
    progress: bool,
) -> tuple[SegmentationModel, TrainingSummary]:
    """Train ``arch`` with :func:`evseg.train.run.train_from_folders` on ``split``; return its best model.

    ``train_from_folders`` splits the pairs again with the same ``config`` (fractions and seed);
    its recorded split is checked against ``split`` so that every method sees the same images.
    """
    import json

    import torch

    from evseg.models.store import load_model
    from evseg.train.run import train_from_folders

    cfg = config.replace(arch=arch)
    folder = out_dir / MODELS_DIR / arch
    torch.manual_seed(cfg.seed)  # the network's initialisation follows the seed too
    start = time.perf_counter()
    result = train_from_folders(images_dir, labels_dir, folder, cfg, pixel_size_nm=pixel_size_nm, progress=progress)
    minutes = (time.perf_counter() - start) / 60.0
    used = json.loads((folder / SPLIT_NAME).read_text())
    expected = {k: [p.stem for p in v] for k, v in split.items()}
    if {k: used.get(k) for k in expected} != expected:
        raise RuntimeError(f"{arch} was trained on another split than the comparison's ({folder / SPLIT_NAME}).")
    summary = TrainingSummary(result.model_dir, result.epochs_run, result.best_epoch, result.stop_reason, minutes,
                              dict(result.best_metrics))
    return load_model(folder), summary


def _equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent-circle diameters ``2 sqrt(area / pi)`` (pixels) of the objects of a label image."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    return 2.0 * np.sqrt(areas[areas > 0] / np.pi)


def _segment_quietly(
    model: SegmentationModel | str, image: Image, *, options: PredictOptions, caught: dict[tuple[str, type], int]
) -> tuple[Segmentation, float]:
    """Run and time :func:`segment_image` on one image; count its warnings in ``caught`` instead of issuing them."""
    from evseg.predict.pipeline import segment_image

    source = image.path.name if image.path is not None else "image"
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        start = time.perf_counter()
        result = segment_image(model, image.data, pixel_size_nm=image.pixel_size_nm, options=options, source=source)
        elapsed = time.perf_counter() - start
    for w in records:
        text = str(w.message)
        text = text[len(source) + 2:] if text.startswith(f"{source}: ") else text
        caught[(text, w.category)] = caught.get((text, w.category), 0) + 1
    return result, elapsed


def compare_methods(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    methods: Sequence[str],
    *,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    train_fraction: float = 0.6,
    pixel_size_nm: float | None = None,
    options: PredictOptions | None = None,
    n_examples: int = 3,
    progress: bool = True,
) -> ComparisonResult:
    """Train, run and score several segmentation methods on one split of one data set.

    The image/label pairs (by stem) are split by image, with ``config.seed``, into train
    (``train_fraction``), validation (``config.val_fraction``) and test (the rest) sets. Each
    learned method (``"frunet"``, ``"unet"``) is trained with ``config`` (only ``arch`` differs:
    same data, seed, epochs and time limit) and its best validation epoch is saved in
    ``out_dir/models/<name>/``; ``"classical"`` needs no training and other names are existing
    models. Every method then segments the same test images with
    :func:`evseg.predict.pipeline.segment_image`, timed per image, and is scored against the ground
    truth with :func:`evseg.evaluate.scores.image_scores`, pooled over all test images with
    :func:`evseg.evaluate.scores.pool_scores`. Finally the report is written into ``out_dir`` by
    :func:`evseg.evaluate.report.write_comparison_report`.

    Parameters
    ----------
    images_dir, labels_dir : path-like
        Images and their masks or instance labels, paired by stem (as ``evseg train``).
    methods : sequence of str
        Method names, see :func:`resolve_methods`.
    out_dir : path-like
        Report folder (created): ``split.json``, ``models/``, and the report files.
    config : TrainConfig
        Training settings shared by the learned methods; ``val_fraction`` and ``seed`` also
        decide the split, and ``pixel_size_nm=None`` makes the models work in pixels (they do
        anyway when the images carry no pixel size and ``pixel_size_nm`` is not given).
    train_fraction : float
        Fraction of the images used for training, in (0, 1); ``train_fraction +
        config.val_fraction`` must be < 1.
    pixel_size_nm : float, optional
        Pixel size (nm) of every image, overriding the files' calibration.
    options : PredictOptions, optional
        How the networks are run (tiles, precision); post-processing fields left ``None`` use each
        model's own settings. Default ``PredictOptions()``.
    n_examples : int
        Number of test images drawn side by side in ``examples/``.
    progress : bool
        Show progress bars.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    ValueError
        If a method name is unknown, the fractions leave no test image, the folders do not pair,
        or the training data are unusable; raised before any training where possible.
    FileNotFoundError
        If a folder or a named model does not exist.
    """
    from tqdm.auto import tqdm

    from evseg.data.pairs import pair_by_stem
    from evseg.io.readers import read_image, read_labels
    from evseg.predict.batch import load_segmenter
    from evseg.predict.pipeline import PredictOptions
    from evseg.train.data import labels_to_instances
    from evseg.train.run import split_pairs, write_split

    specs = resolve_methods(methods)
    test_fraction = _check_fractions(float(train_fraction), config.val_fraction)
    if int(n_examples) != n_examples or n_examples < 0:
        raise ValueError(f"`n_examples` must be a non-negative integer, got {n_examples!r}.")
    options = options if options is not None else PredictOptions()
    pairs = pair_by_stem(images_dir, labels_dir)
    config = config.replace(test_fraction=test_fraction)
    split = split_pairs(pairs, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_split(out / SPLIT_NAME, split)
    logger.info("split: %d train, %d validation, %d test image(s)", *(len(split[k]) for k in ("train", "val", "test")))

    segmenters: dict[str, SegmentationModel | str] = {}
    for spec in specs:  # load existing models first, so that a bad one fails before any training
        if spec.kind != "learned":
            segmenters[spec.name] = load_segmenter(spec.source)
    training: dict[str, TrainingSummary] = {}
    for spec in specs:
        if spec.kind == "learned":
            logger.info("training %s on %d image(s), validating on %d", spec.name, len(split["train"]),
                        len(split["val"]))
            segmenters[spec.name], training[spec.name] = _train_learned(
                spec.source, config, split, images_dir=images_dir, labels_dir=labels_dir, out_dir=out,
                pixel_size_nm=pixel_size_nm, progress=progress)

    test_pairs = split["test"]
    example_stems = {p.stem for p in test_pairs[: int(n_examples)]}
    names = [s.name for s in specs]
    scores: dict[str, list[ImageScores]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    diameters_px: dict[str, list[np.ndarray]] = {GROUND_TRUTH: [], **{n: [] for n in names}}
    pixel_sizes: list[float | None] = []
    per_image: list[dict[str, Any]] = []
    examples: list[ExampleImage] = []
    caught: dict[str, dict[tuple[str, type], int]] = {n: {} for n in names}
    first = read_image(test_pairs[0].image_path, pixel_size_nm=pixel_size_nm)
    for spec in specs:  # one untimed run per network, so that first-call set-up is not timed
        if spec.kind != "classical":
            _segment_quietly(segmenters[spec.name], first, options=options, caught={})
    for pair in tqdm(test_pairs, desc="test images", unit="image", disable=not progress):
        image = read_image(pair.image_path, pixel_size_nm=pixel_size_nm)
        if image.data.ndim != 2:
            raise ValueError(f"{pair.image_path}: a 2D image is needed, got shape {image.data.shape}.")
        gt = labels_to_instances(read_labels(pair.label_path), source=str(pair.label_path))
        if gt.shape != image.data.shape:
            raise ValueError(f"{pair.label_path}: label image shape {gt.shape} differs from its image "
                             f"{pair.image_path.name} shape {image.data.shape}.")
        pixel_sizes.append(image.pixel_size_nm)
        diameters_px[GROUND_TRUTH].append(_equivalent_diameters(gt))
        predictions = {}
        for name in names:
            result, elapsed = _segment_quietly(segmenters[name], image, options=options, caught=caught[name])
            stats = image_scores(gt, result.labels)
            scores[name].append(stats)
            seconds[name].append(elapsed)
            diameters_px[name].append(_equivalent_diameters(result.labels))
            per_image.append({"method": name, "image": pair.stem, **stats.metrics(), "seconds": elapsed})
            if pair.stem in example_stems:
                predictions[name] = result.labels
        if pair.stem in example_stems:
            examples.append(ExampleImage(pair.stem, image.data, gt, predictions))
    for name, messages in caught.items():
        for (text, category), count in messages.items():
            warnings.warn(f"{name}: {count} of {len(test_pairs)} test image(s): {text}", category, stacklevel=2)

    calibrated = all(px is not None for px in pixel_sizes)
    if not calibrated and any(px is not None for px in pixel_sizes):
        logger.warning("some test images have a pixel size and some not: size histograms are in pixels")
    diameters = {
        key: np.concatenate([d * px for d, px in zip(values, pixel_sizes, strict=True)] if calibrated else values)
        for key, values in diameters_px.items()
    }
    rows = tuple(
        MethodRow(n, s.kind, pool_scores(scores[n]), float(np.mean(seconds[n])), len(test_pairs), training.get(n))
        for n, s in zip(names, specs, strict=True)
    )
    result = ComparisonResult(
        rows=rows,
        per_image=tuple(per_image),
        split={k: tuple(p.stem for p in v) for k, v in split.items()},
        diameters=diameters,
        diameter_unit="nm" if calibrated else "px",
        examples=tuple(examples),
        config=config,
        images_dir=Path(images_dir),
        labels_dir=Path(labels_dir),
        pixel_size_nm=pixel_size_nm,
    )
    from evseg.evaluate.report import write_comparison_report

    write_comparison_report(result, out)
    return result
