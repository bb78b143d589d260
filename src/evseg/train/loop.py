"""The training loop: seeded patches, augmentation, loss, Adam, validation, checkpoints, resume, time limit."""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from evseg.data.patches import PatchSampler
from evseg.io.atomic import atomic_path
from evseg.models.store import SegmentationModel, save_model
from evseg.train.config import TrainConfig, config_to_toml
from evseg.train.data import TrainingImage, describe_training_images

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint_last.pt"
HISTORY_NAME = "history.csv"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_jaccard", "val_f1", "val_n_pred", "learning_rate", "seconds")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    model_dir : Path
        Folder with the best model (``config.json``, ``weights.pt``), ``history.csv``,
        ``train_config.toml`` and ``checkpoint_last.pt``.
    best_epoch : int
        Epoch (1-based) of the best validation score (0 if never validated).
    best_metrics : dict
        Validation metrics of the best epoch.
    epochs_run : int
        Epochs completed, including those of an earlier run that was resumed.
    stop_reason : str
        ``"epochs"``, ``"time limit"`` or ``"early stopping"``.
    history : list of dict
        One row per epoch (columns ``HISTORY_COLUMNS``).
    """

    model_dir: Path
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)


def _targets(labels: np.ndarray, outputs: str) -> np.ndarray:
    """(K, *spatial) float32 targets for a (1, *spatial) label patch."""
    foreground = (labels[0] > 0).astype(np.float32)
    if outputs == "foreground":
        return foreground[None]
    from evseg.train.targets import boundary_target

    boundary = (boundary_target(labels[0]) == 2).astype(np.float32)
    return np.stack([foreground, boundary])


def _batch(
    sampler: PatchSampler, rng: np.random.Generator, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    from evseg.train.targets import unet_border_weights

    images, targets, weights = [], [], []
    for _ in range(config.batch_size):
        sample = sampler.sample(rng)
        images.append(sample["image"].astype(np.float32))
        targets.append(_targets(sample["label"], config.outputs))
        if config.loss.startswith("weighted"):
            weights.append(
                unet_border_weights(sample["label"][0], w0=config.border_w0, sigma_px=config.border_sigma_px,
                                    class_balance=config.border_class_balance)[None]
            )
    weight = torch.from_numpy(np.stack(weights)) if weights else None
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets)), weight


def _loss(config: TrainConfig, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    from evseg.train.losses import get_loss

    loss_fn = get_loss(config.loss)
    logits = logits.float()
    if weight is not None:
        return loss_fn(logits, target, weight.expand_as(target))
    return loss_fn(logits, target)


def validate(
    model: SegmentationModel, images: list[TrainingImage], *, precision: str = "fp32"
) -> dict[str, float]:
    """Score ``model`` on whole validation images or volumes (on the model grid).

    2D images go through :func:`evseg.predict.pipeline.network_probability` (512-pixel tiles),
    volumes through :func:`evseg.predict.volume.volume_probability` (the model's 3D tile, overlap a
    quarter of the tile); then both through ``probability_to_instances`` with the model's
    post-processing (in 3D at the volume's voxel size where known).

    Returns
    -------
    dict
        ``jaccard`` (pixel/voxel foreground Jaccard pooled over images), ``f1`` (F1 at IoU 0.5 of
        the instances after the model's post-processing, pooled counts) and ``n_pred``.
    """
    from evseg.evaluate.metrics import match_instances
    from evseg.predict.pipeline import PredictOptions, network_probability, probability_to_instances
    from evseg.predict.volume import volume_probability, volume_tile_shape

    options = PredictOptions(precision=precision, tile_size=512, overlap=64, backend="torch")  # new weights each epoch
    params = model.postprocessing
    if params["split_method"] == "radon" and any(item.image.ndim == 3 for item in images):
        params["split_method"] = "watershed"  # Radon splitting is 2D only
    pixel_size = model.pixel_size_nm
    inter = union = tp = fp = fn = n_pred = 0
    model.network.eval()
    for item in images:
        if item.image.ndim == 3:
            tile = volume_tile_shape(model, item.image.shape)
            overlap = [t // 4 if t < s else 0 for t, s in zip(tile, item.image.shape, strict=True)]
            probability = volume_probability(model, item.image, tile_shape=tile, overlap=overlap, precision=precision)
            spacing = item.voxel_size_nm if pixel_size is not None and item.voxel_size_nm is not None else pixel_size
        else:
            probability = network_probability(model, item.image, options=options)
            spacing = pixel_size
        mask = probability[0] > params["threshold"]
        truth = item.labels > 0
        inter += int(np.count_nonzero(mask & truth))
        union += int(np.count_nonzero(mask | truth))
        pred = probability_to_instances(probability, params=params, pixel_size_nm=spacing)
        match = match_instances(item.labels, pred, iou_threshold=0.5)
        tp, fp, fn = tp + match.tp, fp + match.fp, fn + match.fn
        n_pred += int(match.n_pred)
    jaccard = inter / union if union else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"jaccard": float(jaccard), "f1": float(f1), "n_pred": float(n_pred)}


def patch_shape(config: TrainConfig, images: list[TrainingImage]) -> tuple[int, ...]:
    """Training patch shape: ``(P, P)`` in 2D; ``(Pz, P, P)`` in 3D with ``P = config.patch_size``.

    ``Pz`` is ``config.patch_size_z``, else ``P`` but at most the depth of the thinnest volume
    (volumes thinner than a patch would be padded).
    """
    if images[0].image.ndim == 2:
        return (config.patch_size,) * 2
    depth = config.patch_size_z or min(config.patch_size, min(item.image.shape[0] for item in images))
    return (int(depth), config.patch_size, config.patch_size)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.learning_rate / 50
        )
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=5)
    return None


def _autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_model(
    model: SegmentationModel,
    train_images: list[TrainingImage],
    val_images: list[TrainingImage],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on patches of ``train_images``, keep the best by validation score.

    Each epoch draws ``steps_per_epoch`` batches from a generator seeded by (seed, epoch), so a run
    resumed from the checkpoint of epoch k continues exactly as the uninterrupted run would.

    Parameters
    ----------
    model : SegmentationModel
        The model to train (its network is trained in place).
    train_images, val_images : list of TrainingImage
        Normalised images on the model grid. Without validation images the last epoch is kept.
    config : TrainConfig
    out_dir : path-like
        Model folder; created if needed.
    resume : bool
        Continue from ``out_dir/checkpoint_last.pt`` (finished epochs are not repeated).
    progress : bool
        Show a progress bar with the loss and the validation scores.
    extra_config : dict, optional
        More entries for the model's ``config.json`` (e.g. the data split).

    Returns
    -------
    TrainResult
    """
    from evseg.augment import build_augmentation
    from evseg.predict.pipeline import resolve_precision

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(config.precision)
    network = model.network
    spatial_dims = train_images[0].image.ndim
    net_dims = getattr(network, "spatial_dims", spatial_dims)
    if net_dims != spatial_dims or any(t.image.ndim != spatial_dims for t in [*train_images, *val_images]):
        raise ValueError(
            f"The network is {net_dims}D but the training/validation images are "
            f"{sorted({t.image.ndim for t in [*train_images, *val_images]})}D; a 3D model needs (Z, Y, X) "
            "volumes (spatial_dims=3), a 2D model 2D images."
        )
    channels_last = spatial_dims == 2
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    scheduler = _make_scheduler(optimizer, config)

    model.config.update(extra_config or {})
    model.config["train"] = config.to_dict()
    model.config["training_data"] = describe_training_images(train_images)
    model.config.setdefault("postprocessing", {}).update(
        {"threshold": config.threshold, "split_method": config.resolved_split_method,
         "min_diameter_nm": config.min_diameter_nm}
    )
    if spatial_dims == 3:
        voxel = train_images[0].voxel_size_nm
        model.config["voxel_size_nm"] = None if voxel is None else list(voxel)
    with atomic_path(out_dir / "train_config.toml") as tmp:
        tmp.write_text(config_to_toml(config))

    start_epoch, best_score, best_epoch, since_best = 0, -math.inf, 0, 0
    best_metrics: dict[str, float] = {}
    history: list[dict[str, Any]] = []
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"Cannot resume: {checkpoint_path} does not exist.")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_score, best_epoch = state["epoch"], state["best_score"], state["best_epoch"]
        since_best, best_metrics, history = state["since_best"], state["best_metrics"], state["history"]
        logger.info("resuming after epoch %d (best %s = %.4f at epoch %d)", start_epoch,
                    config.select_metric, best_score, best_epoch)

    sampler = PatchSampler(
        [t.image for t in train_images],
        [t.labels for t in train_images],
        patch_shape(config, train_images),
        foreground_bias=config.foreground_bias,
    )
    started = time.monotonic()
    deadline = started + config.time_limit_min * 60 if config.time_limit_min else math.inf
    stop_reason = "epochs"
    epoch_bar = tqdm(range(start_epoch, config.epochs), desc="epochs", disable=not progress, initial=start_epoch,
                     total=config.epochs)
    for epoch in epoch_bar:
        epoch_start = time.monotonic()
        torch.manual_seed(config.seed * 100_003 + epoch)
        rng = np.random.default_rng([config.seed, epoch])
        sampler.augment = build_augmentation(
            config.augment_config(), spatial_dims=spatial_dims, seed=config.seed * 100_003 + epoch
        )
        network.train()
        losses = []
        out_of_time = False
        step_bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
        for _ in step_bar:
            images, targets, weight = _batch(sampler, rng, config)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with _autocast(precision):
                logits = network(images)
            loss = _loss(config, logits, targets, weight)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"training diverged: the loss is {float(loss)} in epoch {epoch + 1}; the best model so far is "
                    f"in {out_dir}. Lower the learning rate, or train with precision 'fp32' (bf16 can overflow)."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step_bar.set_postfix(loss=f"{np.mean(losses):.4f}")
            if time.monotonic() > deadline:
                out_of_time = True
                break
        step_bar.close()
        metrics = validate(model, val_images, precision=precision) if val_images else {}
        score = metrics.get(config.select_metric, -float(np.mean(losses)))
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "val_jaccard": metrics.get("jaccard", ""),
            "val_f1": metrics.get("f1", ""),
            "val_n_pred": metrics.get("n_pred", ""),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.monotonic() - epoch_start,
        }
        history.append(row)
        if score > best_score or not val_images:
            best_score, best_epoch, best_metrics, since_best = score, epoch + 1, metrics, 0
            model.config["validation"] = {**metrics, "epoch": epoch + 1, "n_images": len(val_images)}
            save_model(model, out_dir)
        else:
            since_best += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        elif scheduler is not None:
            scheduler.step()
        epoch_bar.set_postfix(loss=f"{row['train_loss']:.4f}", **{f"val_{k}": f"{v:.3f}" for k, v in metrics.items()
                                                                   if k != "n_pred"})
        logger.info("epoch %d: %s", epoch + 1, row)
        _write_history(out_dir / HISTORY_NAME, history)
        if out_of_time:
            stop_reason = "time limit"
            break
        _save_checkpoint(checkpoint_path, {
            "network": network.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch + 1, "best_score": best_score, "best_epoch": best_epoch, "since_best": since_best,
            "best_metrics": best_metrics, "history": history,
        })
        if config.early_stopping_patience is not None and since_best >= config.early_stopping_patience:
            stop_reason = "early stopping"
            break
    epoch_bar.close()
    _plot_history(out_dir / "training_curves.png", history)
    return TrainResult(out_dir, best_epoch, best_metrics, len(history), stop_reason, history)


def _plot_history(path: Path, history: list[dict[str, Any]]) -> None:
    """Write loss and validation curves to ``path`` if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no training_curves.png (pip install 'evseg[plot]')")
        return
    if not history:
        return
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [row["train_loss"] for row in history])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key in ("val_jaccard", "val_f1"):
        values = [row[key] for row in history]
        if all(isinstance(v, float) for v in values):
            ax_val.plot(epochs, values, label=key)
    ax_val.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    ax_val.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
