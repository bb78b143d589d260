"""Train and evaluate evseg on real annotated EM/light-microscopy sets, one command per set.

- ``isbi2012`` — the U-Net paper's ssTEM membrane set (30 slices, 512²): k-fold over the slices
  (default 3 folds of 10 consecutive test slices; each fold trains on the other 20, 2 of them for
  validation).
  Reports pixel error (fraction of pixels whose class at threshold 0.5 differs from the label) and the
  Jaccard index of the labelled class (cell interior) and of the membranes, on the test slices of
  every fold, next to the U-Net paper's pixel error on the challenge test set.
- ``dsb2018`` — DSB2018 nuclei (400 images, instance labels): one split by image (60 % train, 10 %
  validation, 30 % test); AP@0.5 (StarDist's tp / (tp + fp + fn)), F1, SEG, DET on the test images,
  also per image category (fluorescence, colour H&E, bright-field), next to the published numbers.
- ``epfl_vesicles`` — synaptic vesicles in FIB-SEM (27 slices, binary masks, instances = connected
  components): one split by image (60 / 10 / 30 %), the same instance metrics.

Every set is trained in its own pixels (no rescaling), with ``benchmarks/configs/real_data.toml``
plus the per-set overrides below, on 2 CPU cores for ``--minutes`` of training in all (split evenly
over the folds for isbi2012). Tuning and scoring come on top (a few minutes).

Usage::

    python benchmarks/real_data.py isbi2012 --minutes 15      # -> benchmarks/results/isbi2012.md
    python benchmarks/real_data.py dsb2018 --minutes 15       # -> benchmarks/results/dsb2018.md
    python benchmarks/real_data.py epfl_vesicles --minutes 15 # -> benchmarks/results/epfl_vesicles.md

Run it alone on the machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from common import file_by_stem, instance_scores, markdown_row, probability_of, stems_of, train_on_stems

from evseg.baselines.classical import segment_classical
from evseg.evaluate import image_scores, pool_scores
from evseg.io import read_image, read_labels
from evseg.models.store import load_model
from evseg.train.config import TrainConfig, read_config_toml
from evseg.train.data import labels_to_instances
from evseg.train.run import train_from_folders

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
INSTANCE_METRICS = ("n_gt", "n_pred", "jaccard", "seg", "det", "precision_0.5", "recall_0.5", "f1_0.5", "ap_0.5")

# Per-set settings on top of configs/real_data.toml (why: see each entry).
OVERRIDES = {
    # Semantic task (membranes vs interior): one output, no instance tuning; 20 training slices.
    "isbi2012": {"outputs": "foreground", "tune_postprocessing": False, "loss": "bce_dice"},
    # Touching nuclei: a boundary output for the boundary-seeded watershed; many images.
    "dsb2018": {"outputs": "foreground+boundary", "loss": "weighted_bce_dice"},
    # Small (~10 px) touching vesicles: boundary output, small border sigma.
    "epfl_vesicles": {"outputs": "foreground+boundary", "loss": "weighted_bce_dice", "border_sigma_px": 2.0},
}
# Object diameters (px) given to the classical baseline, as a user would set them for these images.
CLASSICAL_DIAMETERS_PX = {"dsb2018": (5.0, 120.0), "epfl_vesicles": (4.0, 30.0)}
# Published reference numbers (different test images: context, not a same-input comparison).
REFERENCES = {
    "isbi2012": "U-Net paper (Ronneberger et al. 2015, Table 1), ISBI 2012 challenge test set (30 slices with "
                "hidden labels): pixel error 0.0611.",
    "dsb2018": "StarDist paper (Schmidt et al. 2018, MICCAI, Table 1), DSB2018 fluorescence subset, 50 test images: "
               "AP@0.5 = 0.864 (StarDist), 0.832 (Mask R-CNN).",
    "epfl_vesicles": "No published vesicle-instance numbers on these third-party labels.",
}


def fold_config(base: TrainConfig, dataset: str, minutes: float) -> TrainConfig:
    """The training settings of ``dataset`` with a budget of ``minutes``."""
    return base.replace(**OVERRIDES[dataset], time_limit_min=minutes)


def isbi_pixel_scores(model, data: Path, stems: list[str]) -> dict[str, float]:
    """Pixel error and Jaccard (interior, membrane) at threshold 0.5, summed over the slices ``stems``."""
    wrong = total = inter_fg = union_fg = inter_bg = union_bg = 0
    for stem in stems:
        truth = np.asarray(read_labels(file_by_stem(data / "labels", stem))) > 0
        pred = probability_of(model, file_by_stem(data / "images", stem))[0] > 0.5
        wrong += int(np.count_nonzero(pred != truth))
        total += truth.size
        inter_fg += int(np.count_nonzero(pred & truth))
        union_fg += int(np.count_nonzero(pred | truth))
        inter_bg += int(np.count_nonzero(~pred & ~truth))
        union_bg += int(np.count_nonzero(~pred | ~truth))
    return {"pixel_error": wrong / total, "jaccard_interior": inter_fg / union_fg,
            "jaccard_membrane": inter_bg / union_bg}


def run_isbi2012(args: argparse.Namespace, base: TrainConfig) -> list[str]:
    """k-fold training and pixel scores on isbi2012; returns the Markdown lines."""
    stems = sorted(stems_of(args.data / "images"), key=int)
    # Contiguous blocks of slices: neighbouring serial sections look alike, so interleaved folds would leak.
    folds = [list(block) for block in np.array_split(stems, args.folds)]
    config = fold_config(base, "isbi2012", args.minutes / args.folds)
    rows = []
    for k, test in enumerate(folds):
        train = [s for s in stems if s not in test]
        model = train_on_stems(args.data, train, args.work / f"isbi2012_fold{k}", config.replace(val_fraction=0.1))
        rows.append({"fold": k, "test slices": f"{test[0]}–{test[-1]}", **isbi_pixel_scores(model, args.data, test)})
    keys = ("pixel_error", "jaccard_interior", "jaccard_membrane")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    lines = ["| fold | test slices | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    lines += [markdown_row(str(r["fold"]), [r["test slices"], *(r[key] for key in keys)]) for r in rows]
    lines.append(markdown_row("**mean**", ["all 30", *(mean[key] for key in keys)]))
    return lines


def run_instances(args: argparse.Namespace, base: TrainConfig) -> list[str]:
    """One split by image, instance metrics on the test images; returns the Markdown lines."""
    config = fold_config(base, args.dataset, args.minutes).replace(val_fraction=0.1, test_fraction=0.3)
    out = args.work / args.dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # colour DSB images become grey, with a warning each
        train_from_folders(args.data / "images", args.data / "labels", out, config, progress=True)
        model = load_model(out)
        test = json.loads((out / "split.json").read_text())["test"]
        groups = {"all test images": test}
        meta = args.data / "meta.csv"
        if meta.is_file():
            with meta.open() as f:
                category = {row["id"]: row["category"] for row in csv.DictReader(f)}
            for name in sorted({category[s] for s in test}):
                groups[name] = [s for s in test if category[s] == name]
        rows = {f"{name} ({len(members)})": instance_scores(model, args.data, members)
                for name, members in groups.items()}
    lines = ["| test images | " + " | ".join(INSTANCE_METRICS) + " |", "|---|" + "---:|" * len(INSTANCE_METRICS)]
    lines += [markdown_row(name, [row[m] for m in INSTANCE_METRICS]) for name, row in rows.items()]
    lines += ["", "Baseline without learning on the same test images (`evseg predict --model classical`):", ""]
    lines += ["| method | " + " | ".join(INSTANCE_METRICS) + " |", "|---|" + "---:|" * len(INSTANCE_METRICS)]
    classical = classical_scores(args.data, test, CLASSICAL_DIAMETERS_PX[args.dataset])
    lines.append(markdown_row("classical", [classical[m] for m in INSTANCE_METRICS]))
    return lines


def classical_scores(data: Path, stems: list[str], diameters_px: tuple[float, float]) -> dict:
    """Pooled metrics of the classical (non-learning) baseline on ``stems`` (object diameters in px)."""
    scores = []
    for stem in stems:
        truth = labels_to_instances(read_labels(file_by_stem(data / "labels", stem)), source=stem)
        image = read_image(file_by_stem(data / "images", stem)).data
        labels = segment_classical(image, min_diameter_px=diameters_px[0], max_diameter_px=diameters_px[1])
        scores.append(image_scores(truth, labels))
    return pool_scores(scores).metrics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(OVERRIDES))
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget in all (default 15)")
    parser.add_argument("--folds", type=int, default=3, help="isbi2012 only: number of folds (default 3)")
    parser.add_argument("--config", type=Path, default=HERE / "configs" / "real_data.toml")
    parser.add_argument("--work", type=Path, default=Path("real_data_runs"), help="model folders go here")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<dataset>.md")
    args = parser.parse_args()
    args.data = SHARED / args.dataset
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} not found (see ../shared/data/README.md)")
    out = args.out or HERE / "results" / f"{args.dataset}.md"
    base = read_config_toml(args.config)
    start = time.perf_counter()
    table = run_isbi2012(args, base) if args.dataset == "isbi2012" else run_instances(args, base)
    minutes_wall = (time.perf_counter() - start) / 60
    config = fold_config(base, args.dataset, args.minutes)
    lines = [
        f"# {args.dataset}: evseg trained and tested on real annotated data",
        "",
        f"Command: `python benchmarks/real_data.py {args.dataset} --minutes {args.minutes:g}` "
        f"({platform.processor() or 'CPU'}, 2 cores; {minutes_wall:.0f} min wall in all, of which "
        f"{args.minutes:g} min training). Network: {config.arch} {config.arch_kwargs}, outputs {config.outputs}, "
        f"loss {config.loss}, augmentation `{config.augment}`, batch {config.batch_size} × {config.patch_size}², "
        f"seed {config.seed}; trained in the images' own pixels.",
        "",
        *table,
        "",
        f"Published reference: {REFERENCES[args.dataset]}",
    ]
    args.out = out
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
