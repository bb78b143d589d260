"""Short 3D FRU-Net benchmark on the one-volume ``nuclei3d`` set: train/val/test blocks along Y, F1@0.5 on test.

The data (``../shared/data/nuclei3d``, StarDist's synthetic nuclei, BSD-3) is ONE volume (Z, Y, X) =
(31, 61, 57) with 51 labelled nuclei, so the three sets are blocks of it cut along Y (the longest
axis), at gaps between nuclei where possible (counts are of nucleus centroids):

- train: y in [0, 33)   (26 centroids)
- val:   y in [33, 43)  (12 centroids; picks the checkpoint and the split method)
- test:  y in [43, 61)  (13 centroids; touched only once, at the end)

Each block is treated as its own volume (normalised on its own, nuclei cut by a block edge are
partial objects in that block, in the ground truth and in the prediction alike). Nuclei cut by the
train/test cut are partly seen in training: F1 is also reported without the objects that touch the
cut faces. The voxel size is unknown (StarDist gives none), so the model works in voxels with
isotropic pooling.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/nuclei3d.py --minutes 10   # writes benchmarks/results/nuclei3d.md

On a CPU shared with other torch jobs use one thread: with 2 threads per process on 2 busy cores a
step took ~20x longer (thread oversubscription), 0.25 s/step with one thread.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evseg.data.normalize import normalize_image
from evseg.evaluate.metrics import match_instances
from evseg.instances import label_components, relabel_sequential, remove_small_objects_by_diameter, split_watershed
from evseg.io.readers import read_image, read_labels
from evseg.models.store import create_model, load_model
from evseg.predict.pipeline import PredictOptions
from evseg.predict.volume import segment_volume
from evseg.train.config import TrainConfig
from evseg.train.data import TrainingImage, labels_to_instances
from evseg.train.loop import train_model

REPO = Path(__file__).resolve().parents[1]
BLOCKS = {"train": (0, 33), "val": (33, 43), "test": (43, 61)}  # along Y
NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}


def cut_faces_free(labels: np.ndarray, block: tuple[int, int], size: int) -> np.ndarray:
    """``labels`` without the objects touching a Y face of the block that is a cut (not the volume edge)."""
    out = labels.copy()
    faces = []
    if block[0] > 0:
        faces.append(out[:, 0, :])
    if block[1] < size:
        faces.append(out[:, -1, :])
    for face in faces:
        out[np.isin(out, np.unique(face[face > 0]))] = 0
    return relabel_sequential(out)


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """F1/precision/recall at IoU 0.5, counts and foreground Jaccard."""
    match = match_instances(truth, pred, iou_threshold=0.5)
    inter = np.count_nonzero((truth > 0) & (pred > 0))
    union = np.count_nonzero((truth > 0) | (pred > 0))
    return {"f1": match.f1, "precision": match.precision, "recall": match.recall, "n_gt": match.n_gt,
            "n_pred": match.n_pred, "tp": match.tp, "jaccard": inter / union if union else 1.0}


def classical(volume: np.ndarray) -> np.ndarray:
    """No-learning reference: Gaussian smoothing, Otsu threshold, components, distance watershed."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(volume.astype(np.float32), 1.0)
    labels = label_components(smooth > threshold_otsu(smooth))
    labels = split_watershed(labels, h_px=2.0, min_distance_px=4)
    return relabel_sequential(remove_small_objects_by_diameter(labels, min_diameter_px=5.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nuclei3d")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time limit")
    parser.add_argument("--model-dir", type=Path, default=None, help="where to keep the model (default: temp)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "nuclei3d.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    volume = read_image(args.data / "images" / "img3d.tif").data
    truth = labels_to_instances(read_labels(args.data / "labels" / "img3d.tif"), source="nuclei3d labels")
    blocks = {name: (volume[:, a:b], relabel_sequential(truth[:, a:b])) for name, (a, b) in BLOCKS.items()}
    items = {name: TrainingImage(name, normalize_image(v.astype(np.float32), NORMALIZATION), lab)
             for name, (v, lab) in blocks.items()}

    config = TrainConfig(
        arch="frunet", arch_kwargs={"base_filters": 8, "depth": 3}, spatial_dims=3, anisotropic_pool="auto",
        outputs="foreground+boundary", epochs=1000, steps_per_epoch=20, patch_size=32, patch_size_z=16,
        batch_size=4, learning_rate=5e-4, lr_schedule="plateau", loss="bce_dice", augment="full",
        seed=args.seed, pixel_size_nm=None, time_limit_min=args.minutes, early_stopping_patience=None,
        select_metric="f1", split_method="auto", precision="fp32",  # bf16 overflowed (inf gradients) in 3D
    )
    torch.manual_seed(args.seed)
    model = create_model(config.arch, config.network_kwargs(None), pixel_size_nm=None,
                         outputs=("foreground", "boundary"), normalization=NORMALIZATION)
    n_params = sum(p.numel() for p in model.network.parameters())
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="nuclei3d_"))
    start = time.monotonic()
    result = train_model(model, [items["train"]], [items["val"]], config, model_dir, progress=False)
    train_minutes = (time.monotonic() - start) / 60
    best = load_model(model_dir)

    def run(name: str, split: str) -> np.ndarray:
        options = PredictOptions(precision="fp32", split_method=split)
        return segment_volume(best, blocks[name][0], voxel_size_nm=None, options=options, source=name).labels

    val_f1 = {split: scores(blocks["val"][1], run("val", split))["f1"] for split in ("none", "watershed")}
    split = max(val_f1, key=val_f1.get)
    size = volume.shape[1]
    test_truth = blocks["test"][1]
    test_pred = run("test", split)
    test = scores(test_truth, test_pred)
    inner = scores(cut_faces_free(test_truth, BLOCKS["test"], size), cut_faces_free(test_pred, BLOCKS["test"], size))
    base = scores(test_truth, classical(blocks["test"][0]))
    base_inner = scores(cut_faces_free(test_truth, BLOCKS["test"], size),
                        cut_faces_free(classical(blocks["test"][0]), BLOCKS["test"], size))

    def row(label: str, s: dict) -> str:
        return (f"| {label} | {s['f1']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['n_gt']} | "
                f"{s['n_pred']} | {s['jaccard']:.3f} |")

    last = result.history[-1] if result.history else {}
    n_nuclei = int(np.count_nonzero(np.bincount(truth.ravel())[1:]))
    text = f"""# 3D FRU-Net on nuclei3d (one volume, block split)

Script: `benchmarks/nuclei3d.py --minutes {args.minutes:g} --seed {args.seed}` (CPU: {platform.processor() or
platform.machine()}, {torch.get_num_threads()} torch threads, shared with other jobs).

**Data**: `../shared/data/nuclei3d` — StarDist's *synthetic* nuclei volume (Z, Y, X) = {volume.shape}, uint16,
{n_nuclei} nuclei, voxel size unknown (worked in voxels, isotropic pooling). ONE volume, so the sets are
blocks along Y: train y ∈ [0, 33), val y ∈ [33, 43), test y ∈ [43, 61); each block is normalised and
segmented as its own volume. Nuclei crossing a block edge are partial objects in both blocks (in the
ground truth and in the prediction alike), and those crossing the train/test cut are partly seen in
training; the "interior" rows drop, from truth and prediction, every object touching a cut face.

**Model**: 3D FRU-Net, depth {config.arch_kwargs['depth']}, base filters {config.arch_kwargs['base_filters']}
({n_params:,} parameters), outputs foreground + boundary, patches {16}×{32}×{32}, batch {config.batch_size},
Adam {config.learning_rate:g}, fp32, BCE+Dice, 3D augmentation "full"; checkpoint chosen by validation F1@0.5.
Trained {train_minutes:.1f} min ({result.epochs_run} epochs × {config.steps_per_epoch} steps, stopped by
{result.stop_reason}); best epoch {result.best_epoch}: val F1 {result.best_metrics.get('f1', float('nan')):.3f},
val Jaccard {result.best_metrics.get('jaccard', float('nan')):.3f}; last train loss
{last.get('train_loss', float('nan')):.4f}.
Split method chosen on val: `{split}` (val F1: none {val_f1['none']:.3f}, watershed {val_f1['watershed']:.3f}),
applied after the boundary-seeded watershed.

**Test block** (F1, precision, recall at IoU 0.5 with Hungarian matching, `evseg.evaluate.match_instances`;
foreground Jaccard):

| method | F1@0.5 | precision | recall | true | predicted | Jaccard |
|---|---|---|---|---|---|---|
{row("3D FRU-Net", test)}
{row("3D FRU-Net, interior", inner)}
{row("classical (Otsu + watershed)", base)}
{row("classical, interior", base_inner)}

Caveats: one synthetic volume, a test block of {test['n_gt']} (partial) nuclei, a short CPU run — a smoke
benchmark of the 3D code path (training, 3D tiled prediction, 3D instances), not a performance claim.
"""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
