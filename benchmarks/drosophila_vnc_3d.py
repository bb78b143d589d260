"""Short anisotropic 3D FRU-Net run on the ssTEM ``drosophila_vnc`` stack: membrane Jaccard on a held-out z-block.

The data (``../shared/data/drosophila_vnc``, Gerhard et al. 2013, CC BY-NC-SA 3.0) is one stack of
20 sections (Z, Y, X) = (20, 1024, 1024) at 50 x 4.6 x 4.6 nm (not stored in the file; given here)
with binary membrane labels. Sets are blocks along Z (sections are physically ordered):

- train: z in [0, 12)
- val:   z in [12, 15), centre 256 x 256 crop (picks the checkpoint; kept small for speed)
- test:  z in [15, 20), centre 512 x 512 crop (touched once, at the end)

The network pools by the rule of :func:`evseg.train.config.derive_anisotropic_pool`: with 50 / 4.6
nm voxels and depth 4 the factors are (1, 2, 2) for three levels, then (2, 2, 2), so z keeps its
resolution until the in-plane spacing has caught up. The score is the foreground (membrane) voxel
Jaccard of ``probability > 0.5``; the reference is a smoothed-intensity threshold tuned on the
training block.

Usage::

    python benchmarks/drosophila_vnc_3d.py --minutes 7   # writes benchmarks/results/drosophila_vnc_3d.md
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from evseg.data.normalize import normalize_image
from evseg.io.readers import read_image
from evseg.models.store import create_model, load_model
from evseg.predict.pipeline import PredictOptions
from evseg.predict.volume import segment_volume
from evseg.train.config import TrainConfig
from evseg.train.data import TrainingImage
from evseg.train.loop import train_model

REPO = Path(__file__).resolve().parents[1]
VOXEL_NM = (50.0, 4.6, 4.6)
NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}


def centre_crop(volume: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size x size`` in-plane crop of a (Z, Y, X) volume."""
    y0, x0 = (volume.shape[1] - size) // 2, (volume.shape[2] - size) // 2
    return volume[:, y0 : y0 + size, x0 : x0 + size]


def jaccard(truth: np.ndarray, pred: np.ndarray) -> float:
    """Foreground voxel Jaccard index."""
    union = np.count_nonzero(truth | pred)
    return np.count_nonzero(truth & pred) / union if union else 1.0


def threshold_baseline(train: np.ndarray, train_truth: np.ndarray, test: np.ndarray) -> tuple[float, np.ndarray]:
    """Membranes are dark: in-plane Gaussian (1 px), then the threshold maximising the train Jaccard."""
    def smooth(v: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(normalize_image(v.astype(np.float32), NORMALIZATION), (0, 1, 1))

    s_train = smooth(train)
    candidates = np.quantile(s_train, np.linspace(0.05, 0.5, 19))
    best = max(candidates, key=lambda t: jaccard(train_truth, s_train < t))
    return float(best), smooth(test) < best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "drosophila_vnc")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time limit")
    parser.add_argument("--model-dir", type=Path, default=None, help="where to keep the model (default: temp)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "drosophila_vnc_3d.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    volume = read_image(args.data / "images" / "stack1.tif").data
    truth = read_image(args.data / "labels" / "stack1.tif").data > 0
    train_v, train_t = volume[:12], truth[:12]
    val_v, val_t = centre_crop(volume[12:15], 256), centre_crop(truth[12:15], 256)
    test_v, test_t = centre_crop(volume[15:], 512), centre_crop(truth[15:], 512)

    def item(name: str, v: np.ndarray, t: np.ndarray) -> TrainingImage:
        return TrainingImage(name, normalize_image(v.astype(np.float32), NORMALIZATION), t.astype(np.int32), VOXEL_NM)

    config = TrainConfig(
        arch="frunet", arch_kwargs={"base_filters": 16, "depth": 4}, spatial_dims=3, anisotropic_pool="auto",
        outputs="foreground", epochs=1000, steps_per_epoch=20, patch_size=96, patch_size_z=8, batch_size=2,
        learning_rate=5e-4, loss="bce_dice", augment="flips", seed=args.seed, pixel_size_nm=None,
        time_limit_min=args.minutes, early_stopping_patience=None, select_metric="jaccard", split_method="none",
    )
    kwargs = config.network_kwargs(VOXEL_NM)
    torch.manual_seed(args.seed)
    model = create_model(config.arch, kwargs, pixel_size_nm=None, normalization=NORMALIZATION)
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="vnc3d_"))
    start = time.monotonic()
    result = train_model(model, [item("train", train_v, train_t)], [item("val", val_v, val_t)], config, model_dir,
                         progress=False)
    train_minutes = (time.monotonic() - start) / 60
    best = load_model(model_dir)
    start = time.monotonic()
    seg = segment_volume(best, test_v, voxel_size_nm=VOXEL_NM, options=PredictOptions(precision="fp32",
                                                                                       split_method="none"))
    predict_seconds = time.monotonic() - start
    net_j = jaccard(test_t, seg.probability > 0.5)
    per_slice = [jaccard(t, p > 0.5) for t, p in zip(test_t, seg.probability, strict=True)]
    threshold, base = threshold_baseline(train_v, train_t, test_v)
    base_j = jaccard(test_t, base)
    text = f"""# Anisotropic 3D FRU-Net on drosophila_vnc (ssTEM, 50 × 4.6 × 4.6 nm)

Script: `benchmarks/drosophila_vnc_3d.py --minutes {args.minutes:g} --seed {args.seed}` (CPU,
{torch.get_num_threads()} torch threads, shared with other jobs).

**Data**: `../shared/data/drosophila_vnc` stack 1, (Z, Y, X) = {volume.shape}, binary membrane labels
({truth.mean():.1%} of voxels). Blocks along Z: train z ∈ [0, 12) (whole sections), val z ∈ [12, 15)
(centre 256²), test z ∈ [15, 20) (centre 512², used once at the end).

**Model**: 3D FRU-Net depth 4, base filters 16, pooling from the voxel size by
`derive_anisotropic_pool((50, 4.6, 4.6), depth=4)` = `{kwargs.get('anisotropic_pool')}` (z kept at the first
three levels; divisor {tuple(best.network.required_divisor)}), patches 8 × 96 × 96, batch 2, BCE+Dice, flips.
Trained {train_minutes:.1f} min ({result.epochs_run} epochs × {config.steps_per_epoch} steps, stopped by
{result.stop_reason}); best epoch {result.best_epoch}, val Jaccard
{result.best_metrics.get('jaccard', float('nan')):.3f}. Prediction of the 5 × 512 × 512 test block (3D tiles
{tuple(min(t, s) for t, s in zip((32, 128, 128), test_v.shape, strict=True))}): {predict_seconds:.1f} s.

**Test block, membrane voxel Jaccard**:

| method | Jaccard |
|---|---|
| 3D FRU-Net, anisotropic pooling (p > 0.5) | {net_j:.3f} |
| per test section | {", ".join(f"{j:.3f}" for j in per_slice)} |
| smoothed-intensity threshold (tuned on train, t = {threshold:.3f}) | {base_j:.3f} |
| all foreground | {jaccard(test_t, np.ones_like(test_t)):.3f} |

Caveat: a few minutes of CPU training on 12 sections; this shows that the anisotropic 3D path trains
and predicts on a real ssTEM stack, not a tuned membrane-segmentation result.
"""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
