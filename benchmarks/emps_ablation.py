"""Does the paper's training recipe pay? Full augmentation + border-weighted loss vs flips + BCE on EMPS.

Both arms are the same network (``benchmarks/configs/emps_ablation.toml``: a U-Net, the architecture that learned
fastest on EMPS within a CPU budget), trained on the same EMPS train split for the same time budget with the same
seed; only ``augment`` and ``loss`` differ:

- ``full + weighted_bce_dice``: every augmentation of the ``full`` preset, BCE weighted by the U-Net
  border weights (w0 = 10, sigma = 5 px) + Dice;
- ``flips + bce``: flips and 90° rotations only, plain BCE.

Both are scored on the held-back test images of the split (never seen in training or for choosing a
checkpoint), with the model's own instance step, pooled over all objects.

Usage::

    python benchmarks/emps_ablation.py --minutes 18 --out benchmarks/results/emps_ablation.md
    # reuse an arm trained already (same config, split and seed; checked):
    python benchmarks/emps_ablation.py --full-model emps_ablation_runs/full --minutes 18

Run it alone on the machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from common import instance_scores

from evseg.models.store import load_model
from evseg.train.config import read_config_toml
from evseg.train.run import train_from_folders

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "emps"
METRICS = ("jaccard", "seg", "det", "f1_0.5", "ap_0.5", "delta_d", "n_pred", "n_gt")
ARMS = {"full + weighted_bce_dice": {"augment": "full", "loss": "weighted_bce_dice"},
        "flips + bce": {"augment": "flips", "loss": "bce"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--config", type=Path, default=HERE / "configs" / "emps_ablation.toml")
    parser.add_argument("--minutes", type=float, default=18.0, help="training budget per arm")
    parser.add_argument("--work", type=Path, default=Path("emps_ablation_runs"), help="model folders go here")
    parser.add_argument("--full-model", type=Path, default=None, help="an already trained 'full' arm to reuse")
    parser.add_argument("--flips-model", type=Path, default=None, help="an already trained 'flips' arm to reuse")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "emps_ablation.md")
    args = parser.parse_args()
    base = read_config_toml(args.config).replace(time_limit_min=args.minutes, val_fraction=0.1, test_fraction=0.3)
    given = {"full + weighted_bce_dice": args.full_model, "flips + bce": args.flips_model}
    rows, splits = {}, {}
    for name, overrides in ARMS.items():
        folder = given[name] or args.work / overrides["augment"]
        if given[name] is None:
            train_from_folders(args.data / "images", args.data / "labels", folder, base.replace(**overrides),
                               progress=True)
        trained = load_model(folder).config["train"]
        for key, value in overrides.items():
            if trained[key] != value:
                raise SystemExit(f"{folder} was trained with {key}={trained[key]!r}, not {value!r}")
        splits[name] = json.loads((folder / "split.json").read_text())
        history = (folder / "history.csv").read_text().strip().splitlines()
        scores = instance_scores(load_model(folder), args.data, splits[name]["test"])
        rows[name] = {**scores, "epochs": len(history) - 1, "minutes": trained.get("time_limit_min")}
    first, second = splits.values()
    if first["test"] != second["test"] or first["train"] != second["train"]:
        raise SystemExit("the two arms were trained on different splits: use the same config, fractions and seed")
    lines = [
        "# EMPS ablation: full augmentation + border-weighted loss vs flips + BCE",
        "",
        f"Command: `python benchmarks/emps_ablation.py --minutes {args.minutes:g}` ({platform.processor() or 'CPU'}, "
        f"2 cores). Same network ({base.arch} {base.arch_kwargs}), split ({len(first['train'])} train / "
        f"{len(first['val'])} validation / "
        f"{len(first['test'])} test images, seed {base.seed}), budget ({args.minutes:g} min each) and seed; "
        "scores pooled over all objects of the test images.",
        "",
        "| training | epochs | " + " | ".join(METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for name, row in rows.items():
        cells = [f"{row[m]:.3f}" if isinstance(row[m], float) else str(row[m]) for m in METRICS]
        lines.append(f"| {name} | {row['epochs']} | " + " | ".join(cells) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
