"""Reproduce the bundled default sEV model (``evseg predict --model sev``).

No annotated sEV TEM data is available to the project, so the model is trained on
(1) synthetic negative-stain TEM vesicle images from ``evseg.data.synthetic`` at 1.56 nm/px (30 % with a
burned-in scale bar and caption, labelled background), and
(2) the real EM particle images of EMPS (``../shared/data/emps``, MIT; instance labels), used on
their own pixel grid (their pixel size is unknown) so that the network also sees real EM texture,
debris, scale bars and both polarities.

Usage::

    python scripts/train_default_model.py --out src/evseg/pretrained/sev --minutes 30

The EMPS images are read at run time from ``--emps``; none of them is copied into the package.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from evseg.data.normalize import normalize_image
from evseg.data.pairs import pair_by_stem, split_indices
from evseg.data.synthetic import synthetic_tem_dataset
from evseg.models.store import create_model, load_model
from evseg.train.config import TrainConfig
from evseg.train.data import TrainingImage, load_training_images
from evseg.train.loop import train_model
from evseg.train.run import tune_saved_model

NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}


def synthetic_set(n: int, seed: int, prefix: str) -> list[TrainingImage]:
    """Synthetic TEM images as training images (normalised, 1.56 nm/px)."""
    samples = synthetic_tem_dataset(n, shape=(512, 512), pixel_size_nm=1.56, rng=seed, annotation_prob=0.3)
    return [TrainingImage(f"{prefix}{i:03d}", normalize_image(s.image, NORMALIZATION), s.labels.astype(np.int32))
            for i, s in enumerate(samples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("src/evseg/pretrained/sev"))
    parser.add_argument("--emps", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/emps")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--n-synthetic", type=int, default=240)
    parser.add_argument("--n-train-emps", type=int, default=400, help="at most this many EMPS training images")
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--n-val-synthetic", type=int, default=12, help="synthetic validation images")
    parser.add_argument("--n-val-emps", type=int, default=24, help="EMPS validation images (validation costs time)")
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--outputs", default="foreground+boundary", choices=("foreground", "foreground+boundary"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, default=None, help="continue from this model folder's weights")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--loss", default="weighted_bce_dice", help="training loss [weighted_bce_dice]")
    parser.add_argument("--augment", default="full", choices=("none", "flips", "full"), help="augmentation [full]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    train = synthetic_set(args.n_synthetic, args.seed + 1, "synthetic_train_")
    val = synthetic_set(args.n_val_synthetic, args.seed + 2, "synthetic_val_")
    if args.emps.is_dir():
        pairs = pair_by_stem(args.emps / "images", args.emps / "labels")
        tr, va, _ = split_indices(len(pairs), val_fraction=0.15, rng=args.seed)
        load = {"model_pixel_size_nm": None, "normalization": NORMALIZATION}
        train += load_training_images([pairs[i] for i in tr[: args.n_train_emps]], **load)
        val += load_training_images([pairs[i] for i in va[: args.n_val_emps]], **load)
    else:
        logging.warning("EMPS not found at %s: training on synthetic images only", args.emps)

    config = TrainConfig(
        arch="frunet", arch_kwargs={"base_filters": args.base_filters, "max_filters": 256, "depth": 4, "dropout": 0.1,
                                     "upsample": "transpose"},
        outputs=args.outputs, epochs=1000, steps_per_epoch=args.steps_per_epoch, patch_size=256, batch_size=8,
        learning_rate=args.learning_rate,
        lr_schedule="plateau", loss=args.loss, augment=args.augment, pixel_size_nm=1.56, seed=args.seed,
        time_limit_min=args.minutes, early_stopping_patience=None, select_metric="f1", split_method="radon",
    )
    outputs = ("foreground", "boundary") if args.outputs == "foreground+boundary" else ("foreground",)
    model = create_model("frunet", config.arch_kwargs, pixel_size_nm=1.56, outputs=outputs,
                         normalization=NORMALIZATION)
    if args.init is not None:
        model.network.load_state_dict(load_model(args.init).network.state_dict())
    model.config["description"] = (
        "Default evseg sEV model: FRU-Net trained on synthetic negative-stain TEM vesicles (1.56 nm/px) mixed "
        "with the real EM particle images of EMPS (Yildirim & Cole 2021, MIT); no annotated sEV TEM data was "
        "available. Reproduce with scripts/train_default_model.py."
    )
    result = train_model(model, train, val, config, args.out, progress=False)
    print(f"best epoch {result.best_epoch}/{result.epochs_run}: {result.best_metrics} ({result.stop_reason})")
    chosen = tune_saved_model(args.out, val)
    print(f"post-processing tuned on the validation images: {chosen}")


if __name__ == "__main__":
    main()
