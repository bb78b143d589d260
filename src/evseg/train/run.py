"""Train a model from folders of images and labels: pair, split by image, load, train."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from evseg.data.pairs import FilePair, pair_by_stem, split_indices
from evseg.io.atomic import atomic_path
from evseg.models.store import SegmentationModel, create_model, load_model, save_model
from evseg.train.config import TrainConfig
from evseg.train.data import load_training_images
from evseg.train.loop import TrainResult, train_model

logger = logging.getLogger(__name__)

SPLIT_NAME = "split.json"


def split_pairs(pairs: list[FilePair], config: TrainConfig) -> dict[str, list[FilePair]]:
    """Split ``pairs`` by image into ``train``/``val``/``test`` with ``config``'s fractions and seed."""
    train, val, test = split_indices(
        len(pairs), val_fraction=config.val_fraction, test_fraction=config.test_fraction, rng=config.seed
    )
    return {"train": [pairs[i] for i in train], "val": [pairs[i] for i in val], "test": [pairs[i] for i in test]}


def write_split(path: Path, split: dict[str, list[FilePair]]) -> None:
    """Record which image stems went to which set (``split.json``)."""
    record = {name: [p.stem for p in items] for name, items in split.items()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def detect_model_pixel_size(pairs: list[FilePair], config: TrainConfig, pixel_size_nm: float | None) -> float | None:
    """The grid the model will work on: ``config.pixel_size_nm`` if the images have a pixel size, else pixels."""
    from evseg.io.readers import read_image

    if config.pixel_size_nm is None:
        return None
    if pixel_size_nm is not None:
        return config.pixel_size_nm
    if read_image(pairs[0].image_path).pixel_size_nm is None:
        logger.warning(
            "%s carries no pixel size and --pixel-size was not given: the model works in pixels "
            "and will not rescale images at prediction time.", pairs[0].image_path.name)
        return None
    return config.pixel_size_nm


def detect_grid_voxel_size(
    pairs: list[FilePair], model_pixel_size_nm: float | None, pixel_size_nm: float | None
) -> tuple[float, ...] | None:
    """``(z, y, x)`` voxel size (nm) of the first training volume on the model grid, ``None`` if unknown.

    The model grid keeps the file's Z spacing and has ``model_pixel_size_nm`` in-plane (or the
    file's in-plane size for a model that works in pixels).
    """
    from evseg.io.readers import read_image

    image = read_image(pairs[0].image_path, pixel_size_nm=pixel_size_nm)
    voxel = image.voxel_size_nm
    if image.data.ndim != 3 or voxel is None:
        return None
    return voxel if model_pixel_size_nm is None else (voxel[0], model_pixel_size_nm, model_pixel_size_nm)


def train_from_folders(
    images_dir: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    pixel_size_nm: float | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a segmentation model on the annotated images of two folders.

    Files are paired by stem; the pairs are split by image into independent train, validation
    (and optional test) sets, recorded in ``out_dir/split.json``.

    Parameters
    ----------
    images_dir, labels_dir : path-like
        Images, and their binary masks or instance labels with the same stems.
    out_dir : path-like
        The model folder to write.
    config : TrainConfig
        Training settings.
    pixel_size_nm : float, optional
        Pixel size (nm) of the training images, overriding their metadata.
    init : str or path-like, optional
        Start from this model's weights (fine-tuning); its architecture is used.
    resume : bool
        Continue an interrupted run in ``out_dir``.
    progress : bool
        Show progress bars.

    Returns
    -------
    TrainResult
    """
    pairs = pair_by_stem(images_dir, labels_dir)
    split = split_pairs(pairs, config)
    out_dir = Path(out_dir)
    if resume and (out_dir / SPLIT_NAME).is_file():
        saved = json.loads((out_dir / SPLIT_NAME).read_text())
        if saved.get("train") != [p.stem for p in split["train"]]:
            raise ValueError(f"Cannot resume: the data or seed differ from the run in {out_dir} ({SPLIT_NAME}).")
    model_px = detect_model_pixel_size(pairs, config, pixel_size_nm)
    if init is not None:
        base = load_model(init)
        base_dims = int(base.config.get("arch_kwargs", {}).get("spatial_dims", 2))
        if base_dims != config.spatial_dims:
            raise ValueError(f"--init model {init} is {base_dims}D but spatial_dims is {config.spatial_dims}.")
        model = SegmentationModel(network=base.network, config=dict(base.config))
        model.config["pixel_size_nm"] = model_px
        model.config["init"] = str(init)
    else:
        outputs = ("foreground", "boundary") if config.outputs == "foreground+boundary" else ("foreground",)
        voxel = None
        if config.spatial_dims == 3 and config.anisotropic_pool == "auto":
            voxel = detect_grid_voxel_size(pairs, model_px, pixel_size_nm)
            if voxel is None:
                logger.info("no z spacing in %s: 3D pooling assumes isotropic voxels "
                            "(give --anisotropic-pool for anisotropic stacks)", pairs[0].image_path.name)
        kwargs = config.network_kwargs(voxel)
        torch.manual_seed(config.seed)  # the initial weights depend on the seed only
        model = create_model(config.arch, kwargs, pixel_size_nm=model_px, outputs=outputs)
        logger.info("network %s %s", config.arch, kwargs)
    load = {"model_pixel_size_nm": model_px, "pixel_size_nm": pixel_size_nm, "normalization": model.normalization,
            "spatial_dims": config.spatial_dims}
    train_images = load_training_images(split["train"], **load)
    val_images = load_training_images(split["val"], **load)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_split(out_dir / SPLIT_NAME, split)
    extra = {"split": {name: [p.stem for p in items] for name, items in split.items()}}
    result = train_model(model, train_images, val_images, config, out_dir, resume=resume, progress=progress,
                         extra_config=extra)
    if config.tune_postprocessing and val_images and config.spatial_dims == 2:
        tune_saved_model(out_dir, val_images, precision=config.precision)
    return result


#: At most this many validation images are used to tune the post-processing (each candidate re-runs it).
MAX_TUNING_IMAGES = 24


def tune_saved_model(model_dir: Path, val_images: list, *, precision: str = "auto") -> dict[str, float]:
    """Tune the post-processing thresholds of the model in ``model_dir`` on ``val_images`` and save them.

    Uses the first ``MAX_TUNING_IMAGES`` validation images (the split order is random already).

    Parameters
    ----------
    model_dir : Path
        A model folder written by :func:`evseg.train.loop.train_model`.
    val_images : list of TrainingImage
        Validation images (on the model grid).
    precision : {"auto", "fp32", "bf16"}
        Network precision for the validation pass.

    Returns
    -------
    dict
        The chosen parameters (also stored in the model's ``postprocessing``, with the scores of
        every candidate under ``validation.tuning``).
    """
    from evseg.predict.pipeline import resolve_precision
    from evseg.train.tune import tune_postprocessing

    model = load_model(model_dir)
    chosen, rows = tune_postprocessing(model, val_images[:MAX_TUNING_IMAGES], precision=resolve_precision(precision))
    model.config.setdefault("postprocessing", {}).update(chosen)
    model.config.setdefault("validation", {})["tuning"] = rows
    save_model(model, model_dir)
    logger.info("post-processing tuned on %d validation images: %s (F1@0.5 %.3f)",
                min(len(val_images), MAX_TUNING_IMAGES), chosen,
                max(row["f1"] for row in rows))
    return chosen
