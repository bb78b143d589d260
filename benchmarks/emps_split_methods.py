"""Does Radon splitting help? Score one trained model's probabilities on EMPS test images with different
instance steps: plain connected components, Radon splitting, distance-transform watershed, and (for models
with a boundary output) the boundary-seeded watershed with and without Radon.

Usage::

    python benchmarks/emps_split_methods.py --model MODEL_DIR --split MODEL_DIR/split.json \\
        --out benchmarks/results/emps_split_methods.md

The network runs once per image; only the instance step changes between rows. The test images are the
``test`` entry of the split file (never used for training or for choosing thresholds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evseg.data.normalize import normalize_image
from evseg.evaluate import image_scores, pool_scores
from evseg.instances import probability_to_labels
from evseg.io import read_image, read_labels
from evseg.models.store import load_model
from evseg.predict.pipeline import PredictOptions, network_probability, probability_to_instances
from evseg.train.data import labels_to_instances

METRICS = ("jaccard", "seg", "det", "f1_0.5", "ap_0.5", "n_pred", "n_gt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/emps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/emps_split_methods.md"))
    args = parser.parse_args()
    model = load_model(args.model)
    stems = json.loads(args.split.read_text())["test"]
    params = model.postprocessing
    min_px = float(params["min_diameter_px"])
    rows: dict[str, list] = {}
    for stem in stems:
        image = read_image(args.data / "images" / f"{stem}.png").data
        truth = labels_to_instances(read_labels(args.data / "labels" / f"{stem}.tif"), source=stem)
        prob = network_probability(model, normalize_image(image, model.normalization), options=PredictOptions())
        variants = {
            f"components (foreground > {params['threshold']})": probability_to_labels(
                prob[0], threshold=params["threshold"], min_diameter_px=min_px, split_method="none"),
            "components + Radon split": probability_to_labels(
                prob[0], threshold=params["threshold"], min_diameter_px=min_px, split_method="radon"),
            "components + distance watershed": probability_to_labels(
                prob[0], threshold=params["threshold"], min_diameter_px=min_px, split_method="watershed"),
        }
        if prob.shape[0] > 1:
            for split in ("none", "radon"):
                name = "boundary-seeded watershed" + (" + Radon split" if split == "radon" else "")
                variants[name] = probability_to_instances(prob, params={**params, "split_method": split},
                                                          pixel_size_nm=None)
        for name, pred in variants.items():
            rows.setdefault(name, []).append(image_scores(truth, pred))
    lines = [f"# Instance step on EMPS test images ({len(stems)} images)", "",
             f"Model: `{args.model}` ({model.config['arch']}, outputs {model.outputs}); command: "
             f"`python benchmarks/emps_split_methods.py --model {args.model} --split {args.split}`.", "",
             "| instance step | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, scores in rows.items():
        pooled = pool_scores(scores).metrics()
        cells = [f"{pooled[m]:.3f}" if isinstance(pooled[m], float) else str(pooled[m]) for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
