"""The ``evseg`` command line: a thin layer of subcommands over the Python API."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("evseg")

EXAMPLES = """examples:
  evseg demo --out evseg_demo
  evseg predict micrographs/ --out results/ --pixel-size 1.56
  evseg train --images imgs/ --labels masks/ --out my_model --epochs 30 --time-limit 20
  evseg predict new/ --out results/ --model my_model
  evseg evaluate --pred results/ --gt masks/ --out results/
"""


def _pixel_size(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"pixel size must be a positive number of nm, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_pair_folders(p: argparse.ArgumentParser) -> None:
    """The --images/--labels pair shared by the commands that read annotated data."""
    p.add_argument("--images", required=True, type=Path, help="folder of images")
    p.add_argument("--labels", required=True, type=Path, help="folder of masks or instance labels (same stems)")


def _add_predict(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("predict", parents=[common], help="segment, count and measure objects in images",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Segment every image, write <stem>_prob.tif, <stem>_labels.tif, "
                       "<stem>_overlay.png, <stem>_rois.zip per image and measurements.csv + summary.csv + "
                       "report.html. Images run in parallel worker processes, or on a dask cluster.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", default="sev", help="bundled model name ('sev'), a model folder, or 'classical'")
    p.add_argument("--pixel-size", type=_pixel_size, default=None, metavar="NM",
                   help="pixel size in nm, overriding the files' calibration")
    g = p.add_argument_group("post-processing (default: the model's)")
    g.add_argument("--threshold", type=float, default=None, help="foreground probability threshold")
    g.add_argument("--min-diameter", type=float, default=None, metavar="NM", help="drop smaller objects")
    g.add_argument("--split", default=None, choices=("radon", "watershed", "none"),
                   help="how touching objects are separated")
    g = p.add_argument_group("speed")
    g.add_argument("--tile-size", type=_positive_int, default=1024,
                   help="largest tile edge in pixels (tiles are balanced to cover the image with least overlap)")
    g.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="network precision (auto: bf16 where the CPU supports it)")
    g.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "openvino"),
                   help="network runtime (auto: OpenVINO when evseg[openvino] is installed; else ONNX Runtime when "
                   "evseg[onnx] is installed and the network runs in fp32, i.e. --precision fp32 or a CPU without "
                   "native bf16; else PyTorch; $EVSEG_BACKEND overrides auto)")
    g.add_argument("--block-size", type=_positive_int, default=2048,
                   help="images of more than 4096 x 4096 pixels are segmented in overlapping blocks of this size "
                   "(pixels), which bounds memory on huge micrographs")
    g = p.add_argument_group("outputs")
    g.add_argument("--no-overlay", action="store_true", help="do not write <stem>_overlay.png")
    g.add_argument("--no-prob", action="store_true", help="do not write <stem>_prob.tif")
    g.add_argument("--no-rois", action="store_true", help="do not write <stem>_rois.zip")
    g.add_argument("--no-report", action="store_true", help="do not write report.html")
    g = p.add_argument_group("parallel")
    g.add_argument("--workers", type=_positive_int, default=None,
                   help="local worker processes (default: one per image up to the CPU cores; 1 = in this process)")
    g.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="run on a dask.distributed cluster (e.g. tcp://host:8786; pip install 'evseg[dask]'); "
                   "inputs and --out must be on storage shared with the workers")
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from evseg.predict.batch import OutputOptions, load_segmenter, predict_files
    from evseg.predict.pipeline import PredictOptions

    options = PredictOptions(tile_size=args.tile_size, overlap=args.overlap, precision=args.precision,
                             backend=args.backend, threshold=args.threshold, min_diameter_nm=args.min_diameter,
                             split_method=args.split, progress=not args.quiet, block_size=args.block_size)
    outputs = OutputOptions(probability=not args.no_prob, overlay=not args.no_overlay, rois=not args.no_rois)
    model = load_segmenter(args.model)
    command = " ".join(["evseg predict", *map(shlex.quote, args.inputs)] + [
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {shlex.quote(str(v))}")
        for k, v in vars(args).items() if k not in ("run", "command", "inputs") and v not in (None, False)])
    try:
        outcomes = predict_files(args.inputs, args.out, model, pixel_size_nm=args.pixel_size, options=options,
                                 outputs=outputs, progress=not args.quiet, workers=args.workers,
                                 scheduler=args.dask_scheduler, report=not args.no_report,
                                 run_info={"command line": command})
    except ImportError as exc:  # an optional extra is missing; the message says which
        print(f"evseg: error: {exc}", file=sys.stderr)
        return 1
    done = [o for o in outcomes if o.error is None]
    n_objects = sum(int(o.summary["count"]) for o in done)
    tables = "measurements.csv, summary.csv" + ("" if args.no_report else ", report.html")
    print(f"{len(done)} image(s) segmented, {n_objects} objects; results in {args.out}/ ({tables})")
    if len(done) < len(outcomes):
        print(f"evseg: error: {len(outcomes) - len(done)} image(s) failed (see the messages above)", file=sys.stderr)
        return 1
    return 0


def _add_train(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="train a model on annotated images",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Pair images and labels by file stem, split by image into train/validation "
                       "(and test) sets, train, and keep the best model by validation score in --out. "
                       "Flags override the values of --config.")
    _add_pair_folders(p)
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--config", type=Path, default=None, help="TOML file of training settings")
    p.add_argument("--arch", choices=("frunet", "unet"), default=None, help="architecture [frunet]")
    p.add_argument("--base-filters", type=_positive_int, default=None, help="filters of the first level [32]")
    p.add_argument("--depth", type=_positive_int, default=None, help="number of down-sampling levels [4]")
    p.add_argument("--epochs", type=_positive_int, default=None, help="maximum epochs [50]")
    p.add_argument("--steps-per-epoch", type=_positive_int, default=None, help="batches per epoch [50]")
    p.add_argument("--patch-size", type=_positive_int, default=None, help="patch edge in pixels [256]")
    p.add_argument("--spatial-dims", type=int, choices=(2, 3), default=None,
                   help="2: 2D images; 3: (Z, Y, X) volumes and a 3D U-Net/FRU-Net [2]")
    p.add_argument("--anisotropic-pool", nargs="+", default=None, metavar="auto|none|Z,Y,X",
                   help="3D pooling per level, e.g. 1,2,2 1,2,2 2,2,2; auto: pool z only where its spacing is "
                   "at most 2x the in-plane one [auto]")
    p.add_argument("--patch-size-z", type=_positive_int, default=None,
                   help="z edge of 3D patches in slices [patch size, at most the volume depth]")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="patches per batch [8]")
    p.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate [1e-3]")
    p.add_argument("--loss", default=None, choices=("bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice"),
                   help="loss [bce_dice]")
    p.add_argument("--augment", default=None, choices=("none", "flips", "full"), help="augmentation [full]")
    p.add_argument("--outputs", default=None, choices=("foreground", "foreground+boundary"),
                   help="output channels [foreground]")
    p.add_argument("--pixel-size", type=_pixel_size, default=None, metavar="NM",
                   help="pixel size of the training images (overrides their metadata)")
    p.add_argument("--model-pixel-size", default=None, metavar="NM|none",
                   help="grid the model works on [1.56 when the images have a pixel size, else pixels]")
    p.add_argument("--val-fraction", type=float, default=None, help="fraction of images for validation [0.2]")
    p.add_argument("--test-fraction", type=float, default=None, help="fraction of images held out for testing [0]")
    p.add_argument("--seed", type=int, default=None, help="random seed [0]")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop cleanly after this many minutes, keeping the best model")
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"), help="training precision [auto]")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--init", default=None, metavar="MODEL", help="start from this model's weights (fine-tuning)")
    p.set_defaults(run=_run_train)


def _pool_levels(values: list[str]) -> str | list[list[int]] | None:
    """``--anisotropic-pool`` values: "auto", "none", or one "z,y,x" (or single int) per level."""
    if len(values) == 1 and values[0].lower() in ("auto", "none"):
        return None if values[0].lower() == "none" else "auto"
    try:
        return [[int(v) for v in level.split(",")] for level in values]
    except ValueError:
        raise ValueError(f"--anisotropic-pool: expected auto, none or levels like 1,2,2 2,2,2, got {values}") from None


def _run_train(args: argparse.Namespace) -> int:
    from evseg.train.config import TrainConfig, read_config_toml
    from evseg.train.run import train_from_folders

    config = read_config_toml(args.config) if args.config else TrainConfig()
    flags = {"arch": args.arch, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
             "patch_size": args.patch_size, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "loss": args.loss, "augment": args.augment, "outputs": args.outputs, "val_fraction": args.val_fraction,
             "test_fraction": args.test_fraction, "seed": args.seed, "time_limit_min": args.time_limit,
             "precision": args.precision, "spatial_dims": args.spatial_dims, "patch_size_z": args.patch_size_z}
    changes = {k: v for k, v in flags.items() if v is not None}
    if args.anisotropic_pool is not None:
        changes["anisotropic_pool"] = _pool_levels(args.anisotropic_pool)
    arch_kwargs = dict(config.arch_kwargs)
    if args.base_filters is not None:
        arch_kwargs["base_filters"] = args.base_filters
    if args.depth is not None:
        arch_kwargs["depth"] = args.depth
    changes["arch_kwargs"] = arch_kwargs
    if args.model_pixel_size is not None:
        changes["pixel_size_nm"] = None if args.model_pixel_size.lower() == "none" else float(args.model_pixel_size)
    config = config.replace(**changes)
    result = train_from_folders(args.images, args.labels, args.out, config, pixel_size_nm=args.pixel_size,
                                init=args.init, resume=args.resume, progress=not args.quiet)
    scores = ", ".join(f"{k} {v:.3f}" for k, v in result.best_metrics.items() if k != "n_pred")
    print(f"model saved in {result.model_dir}/ (best epoch {result.best_epoch} of {result.epochs_run}, "
          f"stopped by {result.stop_reason}; validation {scores or 'n/a'})")
    return 0


def _add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="run the whole pipeline on synthetic TEM images and score it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("evseg_demo"), help="output folder")
    p.add_argument("--n-images", type=_positive_int, default=4, help="number of synthetic images")
    p.add_argument("--seed", type=int, default=2019, help="seed of the synthetic images")
    p.add_argument("--model", default="sev", help="model to run")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from evseg.demo import run_demo

    r = run_demo(args.out, n_images=args.n_images, seed=args.seed, model=args.model, progress=not args.quiet)
    print(f"synthetic images: {r.out_dir / 'images'}\nground truth:     {r.out_dir / 'ground_truth'}\n"
          f"predictions:      {r.out_dir / 'predictions'} (measurements.csv, summary.csv, overlays)\n"
          f"evaluation:       {r.out_dir / 'evaluation.csv'}\n"
          f"vesicles found: {r.n_objects} (true: {r.n_true_objects}) in {r.n_images} images; "
          f"mean diameter {r.mean_diameter_nm:.1f} nm; F1@0.5 = {r.f1:.3f}; Jaccard = {r.jaccard:.3f}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="score predicted label images against ground truth",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Pair label images by stem (a prediction may end in _labels) and report "
                       "Jaccard, Dice, CTC SEG and DET, diameter/roundness dissimilarity and F1/AP at IoU 0.5.")
    p.add_argument("--pred", required=True, type=Path, help="folder of predicted label images")
    p.add_argument("--gt", required=True, type=Path, help="folder of ground-truth label images")
    p.add_argument("--out", type=Path, default=None, help="folder for evaluation.csv (default: --pred)")
    p.add_argument("--pixel-size", type=_pixel_size, default=None, metavar="NM",
                   help="pixel size (nm); the scores are unit-free, it is recorded only")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from evseg.evaluate.folders import evaluate_folders, format_table, write_evaluation_csv

    rows = evaluate_folders(args.pred, args.gt, progress=not args.quiet)
    out = args.out or args.pred
    out.mkdir(parents=True, exist_ok=True)
    write_evaluation_csv(rows, out / "evaluation.csv")
    print(format_table(rows))
    print(f"written: {out / 'evaluation.csv'}")
    return 0


def _add_split(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("split", parents=[common],
                       help="turn binary masks into instance labels, splitting touching objects",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="MASK_OR_DIR", help="mask files and/or folders")
    p.add_argument("--out", required=True, type=Path, help="output folder for <stem>_labels.tif")
    p.add_argument("--method", default="radon", choices=("radon", "watershed", "none"), help="split method")
    p.add_argument("--min-diameter", type=float, default=0.0, metavar="PX", help="drop smaller objects (pixels)")
    p.set_defaults(run=_run_split)


def _run_split(args: argparse.Namespace) -> int:
    from evseg.instances.files import split_mask_files

    written = split_mask_files(args.inputs, args.out, method=args.method, min_diameter_px=args.min_diameter)
    print(f"{len(written)} label image(s) written to {args.out}/")
    return 0


def _add_augment_preview(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("augment-preview", parents=[common], help="show what training augmentation does",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Write augment_preview.png: a grid of augmented image/label pairs with the label "
                       "outlines drawn over the images, so you can see what training sees.")
    _add_pair_folders(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--augment", default="full", choices=("none", "flips", "full"), help="augmentation preset")
    p.add_argument("--n-images", type=_positive_int, default=4, help="pairs shown")
    p.add_argument("--n-per-image", type=_positive_int, default=4, help="augmented versions per pair")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(run=_run_augment_preview)


def _run_augment_preview(args: argparse.Namespace) -> int:
    from evseg.augment import AugmentConfig
    from evseg.augment.preview import write_augment_preview

    path = write_augment_preview(args.images, args.labels, args.out, config=AugmentConfig.preset(args.augment),
                                 n_images=args.n_images, n_per_image=args.n_per_image, seed=args.seed)
    print(f"written: {path}")
    return 0


def _add_compare(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compare", parents=[common], help="compare methods side by side on one train/val/test split",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Split the pairs by image; train each learned method (frunet, unet) alike on "
                       "the train set; run every method on the test images; write comparison.md/.html/.csv, "
                       "per_image.csv, size_histograms.png, examples/ and models/ into --out.")
    _add_pair_folders(p)
    p.add_argument("--models", required=True, nargs="+", metavar="METHOD",
                   help="frunet, unet (trained here), classical, a bundled model name (sev) or a model folder")
    p.add_argument("--out", type=Path, default=Path("compare_report"), help="report folder")
    p.add_argument("--train-fraction", type=float, default=0.6, help="fraction of images for training")
    p.add_argument("--val-fraction", type=float, default=None, help="fraction of images for validation [0.2]")
    p.add_argument("--config", type=Path, default=None, help="TOML file of training settings (as evseg train)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="maximum epochs per learned method [50]")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="training time limit per learned method")
    p.add_argument("--seed", type=int, default=None, help="seed of the split and the training [0]")
    p.add_argument("--pixel-size", type=_pixel_size, default=None, metavar="NM",
                   help="pixel size of all images (overrides their metadata)")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from evseg.evaluate.compare import compare_methods
    from evseg.evaluate.report import comparison_table_markdown
    from evseg.train.config import TrainConfig, read_config_toml

    config = read_config_toml(args.config) if args.config else TrainConfig()
    flags = {"epochs": args.epochs, "time_limit_min": args.time_limit, "seed": args.seed,
             "val_fraction": args.val_fraction}
    config = config.replace(**{k: v for k, v in flags.items() if v is not None})
    result = compare_methods(args.images, args.labels, args.models, out_dir=args.out, config=config,
                             train_fraction=args.train_fraction, pixel_size_nm=args.pixel_size,
                             progress=not args.quiet)
    print(comparison_table_markdown(result.table()))
    print(f"report: {args.out / 'comparison.md'} (also .html, .csv, per_image.csv, size_histograms.png)")
    return 0


def _add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export a model to bioimage.io, ONNX or TorchScript",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="bioimageio: a BioImage Model Zoo package (a folder, or a zip when --out ends "
                       "in .zip; pip install 'evseg[bioimageio]'); onnx: an .onnx file (pip install 'evseg[onnx]'); "
                       "torchscript: a traced .pt file (deepImageJ). ONNX/TorchScript inputs are normalised images "
                       "whose height and width are multiples of the network's divisor (16 for a 4-level net).")
    p.add_argument("model", metavar="MODEL", help="bundled model name ('sev') or a model folder")
    p.add_argument("--format", required=True, choices=("bioimageio", "onnx", "torchscript"), help="export format")
    p.add_argument("--out", required=True, type=Path, help="file, package folder or .zip to write")
    p.add_argument("--logits", action="store_true", help="onnx/torchscript: output logits, not sigmoid probabilities")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from evseg.export import export_model

    path = export_model(args.model, args.out, format=args.format, activation=None if args.logits else "sigmoid")
    print(f"written: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``evseg`` command (all subcommands)."""
    from evseg import __version__

    parser = argparse.ArgumentParser(
        prog="evseg", description="Segment, count and measure extracellular vesicles (and other objects) in "
        "microscopy images with deep learning (FRU-Net / U-Net).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evseg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_predict, _add_train, _add_evaluate, _add_split, _add_demo, _add_augment_preview, _add_compare,
                _add_export):
        add(sub, common)
    return parser


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool, verbose: bool) -> Iterator[None]:
    """Send evseg's log records to stderr as ``evseg: message`` while a command runs, then restore."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("evseg: %(message)s"))
    root = logging.getLogger("evseg")
    saved = (root.handlers[:], root.level, root.propagate)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    try:
        yield
    finally:
        root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


def main(argv: list[str] | None = None) -> int:
    """Run the ``evseg`` command line; returns the exit status (0 = success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _logging_to_stderr(args.quiet, args.verbose), warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return int(args.run(args))
    except KeyboardInterrupt:
        print("evseg: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, RuntimeError, ImportError) as exc:
        print(f"evseg: error: {exc}", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"evseg: warning: {message}", file=sys.stderr)
