"""Helpers shared by the benchmark scripts: files by stem, training on a list of stems, scoring on test stems."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from evseg.data.normalize import normalize_image
from evseg.evaluate import image_scores, pool_scores
from evseg.io import read_image, read_labels
from evseg.models.store import SegmentationModel, load_model
from evseg.predict.pipeline import PredictOptions, network_probability, probability_to_instances
from evseg.train.config import TrainConfig
from evseg.train.data import labels_to_instances
from evseg.train.run import train_from_folders

SUFFIXES = (".png", ".tif", ".tiff")


def file_by_stem(folder: Path, stem: str) -> Path:
    """The one file ``folder/<stem>.<png|tif|tiff>``; a clear error when it is missing."""
    for suffix in SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"No image {stem}{{{','.join(SUFFIXES)}}} in {folder}")


def stems_of(folder: Path) -> list[str]:
    """Sorted stems of the image files in ``folder``."""
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def link_subset(data: Path, stems: Iterable[str], work: Path) -> Path:
    """Make ``work/images`` and ``work/labels`` hold symbolic links to the pairs ``stems`` of ``data``.

    Lets :func:`evseg.train.run.train_from_folders` train on a chosen subset (a k-fold split) without
    copying the data. Returns ``work``.
    """
    for kind in ("images", "labels"):
        (work / kind).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            source = file_by_stem(data / kind, stem)
            target = work / kind / source.name
            if not target.exists():
                os.symlink(source.resolve(), target)
    return work


def train_on_stems(data: Path, stems: Iterable[str], out: Path, config: TrainConfig) -> SegmentationModel:
    """Train a model in ``out`` on the pairs ``stems`` of ``data`` (its own train/validation split)."""
    subset = link_subset(data, stems, out.with_name(out.name + "_data"))
    train_from_folders(subset / "images", subset / "labels", out, config, progress=True)
    return load_model(out)


def probability_of(model: SegmentationModel, image_path: Path) -> np.ndarray:
    """Network probabilities, shape (K, Y, X), of one image given in the model's pixels (no rescaling)."""
    image = read_image(image_path).data
    return network_probability(model, normalize_image(image, model.normalization), options=PredictOptions())


def instance_scores(model: SegmentationModel, data: Path, stems: Iterable[str]) -> dict:
    """Metrics pooled over all objects of the test pairs ``stems`` (the model's own instance step)."""
    scores = []
    for stem in stems:
        truth = labels_to_instances(read_labels(file_by_stem(data / "labels", stem)), source=stem)
        probability = probability_of(model, file_by_stem(data / "images", stem))
        labels = probability_to_instances(probability, params=model.postprocessing, pixel_size_nm=None)
        scores.append(image_scores(truth, labels))
    return pool_scores(scores).metrics()


def markdown_row(name: str, values: Iterable[object]) -> str:
    """One Markdown table row; floats with 3 decimals."""
    cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values]
    return f"| {name} | " + " | ".join(cells) + " |"
