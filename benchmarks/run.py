"""Speed benchmark of ``evseg predict`` against the references a user would otherwise run; writes ``speed.md``.

One command, one run, the same inputs for every method::

    python benchmarks/run.py                    # ~15 min on 2 cores; writes benchmarks/results/speed.md
    python benchmarks/run.py --quick            # smaller images and fewer repeats, for trying it out

What it measures (each part in its own child process, so peak memory is that part's alone):

1. ``folder``: the full ``evseg predict`` path (read -> rescale -> tiles -> network -> threshold ->
   instances -> measurements -> files) through :func:`evseg.predict.batch.predict_files` with its
   defaults (process pool over the cores, every output file), on folders of 2 and 8 synthetic TEM
   images at the model's pixel size (2048² and 4096²). Seconds per image = the marginal time of one
   more image, (T(8) - T(2)) / 6; start-up, model loading and the first-use ONNX export are reported apart.
2. ``stages``: the same steps one by one on one image in one process (all threads), median of repeats,
   for each network backend installed (OpenVINO bf16/fp32, ONNX Runtime fp32, PyTorch bf16/fp32), with
   probability differences and F1@0.5 on the synthetic ground truth, so a faster path is also shown
   to give the same answer.
3. References on the same 2048² image, network only: the paper-configuration FRU-Net (32...512 filters,
   6.5 M parameters) in plain PyTorch fp32 NCHW, one whole-image pass; MONAI ``BasicUNet`` (default
   features) with ``monai.inferers.sliding_window_inference`` (roi 512, overlap 0.25, gaussian), fp32.
   Their weights are random: they are timed, not scored (no trained copies exist here).
4. The machine's 3×3 convolution throughput (bf16 and fp32, channels-last) and the default network's
   achieved GFLOP/s as a fraction of it.
5. Training throughput of the default model (patches/s through ``evseg.train``, batch 8, 256²).
6. A 16384² image through ``predict_files`` (one worker): peak resident memory.

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PIXEL_SIZE_NM = 1.56


# ----------------------------------------------------------------------------------------------- inputs
def write_inputs(folder: Path, size: int, n: int, seed: int) -> list[Path]:
    """``n`` synthetic TEM images of ``size``² at 1.56 nm/px (uint16 TIFF) and their labels, in ``folder``."""
    from evseg.data.synthetic import synthetic_tem_image
    from evseg.io import write_labels, write_tiff

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"tem_{size}_{i:02d}.tif"
        if not path.exists():
            sample = synthetic_tem_image((size, size), pixel_size_nm=PIXEL_SIZE_NM, rng=seed + i)
            image = np.round(sample.image * 60000).astype(np.uint16)  # intensities in [0, 1] -> 16-bit
            write_tiff(path, image, pixel_size_nm=PIXEL_SIZE_NM)
            write_labels(folder / f"tem_{size}_{i:02d}_gt.tif", sample.labels, pixel_size_nm=PIXEL_SIZE_NM)
        paths.append(path)
    return paths


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mib() -> float:
    """Peak resident memory of the largest finished child process, MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------- children
def child_folder(args: dict[str, Any]) -> dict[str, Any]:
    """Time ``predict_files`` on a folder (as ``evseg predict`` runs it) after loading the model."""
    from evseg.predict.batch import load_segmenter, predict_files

    started = time.perf_counter()
    model = load_segmenter(args["model"])
    load_s = time.perf_counter() - started
    out = Path(args["out"])
    started = time.perf_counter()
    predict_files([Path(p) for p in args["paths"]], out, model, progress=False, report=True,
                  workers=args.get("workers"))
    total_s = time.perf_counter() - started
    return {"load_s": load_s, "total_s": total_s, "peak_mib": max(peak_rss_mib(), children_peak_rss_mib())}


def child_stages(args: dict[str, Any]) -> dict[str, Any]:
    """Stage times of one image in one process, per backend, with accuracy against fp32 and the GT."""
    import torch

    from evseg.evaluate.scores import image_scores
    from evseg.io import read_labels
    from evseg.predict.backends import available_backends, make_predictor
    from evseg.predict.batch import load_segmenter
    from evseg.predict.pipeline import PredictOptions

    torch.set_num_threads(args["threads"])
    model = load_segmenter(args["model"])
    path = Path(args["path"])
    gt = np.asarray(read_labels(path.with_name(path.stem + "_gt.tif")))
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    repeats = args["repeats"]
    variants = [("torch", "fp32"), ("torch", "bf16")]
    if "onnx" in available_backends():
        variants.append(("onnx", "fp32"))
    if "openvino" in available_backends():
        variants += [("openvino", "fp32"), ("openvino", "bf16")]
    results: dict[str, Any] = {"variants": {}}
    reference = None
    for backend, precision in variants:
        options = PredictOptions(backend=backend, precision=precision)
        started = time.perf_counter()
        make_predictor(model, backend=backend, precision=precision)  # export/compile once (cached)
        setup_s = time.perf_counter() - started
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            probability, labels = run_stages_once(model, path, options, out, times)
        medians = {stage: statistics.median(values) for stage, values in times.items()}
        scores = image_scores(gt, labels).metrics()
        entry = {"setup_s": setup_s, "stages_s": medians, "total_s": sum(medians.values()),
                 "f1_0.5": float(scores["f1_0.5"]), "n_pred": int(scores["n_pred"]), "n_gt": int(scores["n_gt"])}
        if reference is None:
            reference = probability[0]
        else:
            diff = np.abs(probability[0] - reference)
            entry["max_abs_diff_vs_torch_fp32"] = float(diff.max())
            entry["p999_abs_diff_vs_torch_fp32"] = float(np.percentile(diff, 99.9))
        results["variants"][f"{backend} {precision}"] = entry
    results["network_gflop"] = network_gflop(model, gt.shape, PredictOptions())
    results["peak_mib"] = peak_rss_mib()
    return results


def _timed(times: dict[str, list[float]], stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)``, appending its wall time (s) to ``times[stage]``."""
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    times.setdefault(stage, []).append(time.perf_counter() - started)
    return value


def run_stages_once(
    model: Any, path: Path, options: Any, out: Path, times: dict[str, list[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """The steps of ``evseg predict`` on one file, each timed into ``times``; returns (probability, labels)."""
    from evseg.data.normalize import normalize_image
    from evseg.data.rescale import rescale_image, resize_probability
    from evseg.io import (
        read_image,
        render_overlay,
        write_imagej_rois,
        write_labels,
        write_png,
        write_probability,
    )
    from evseg.measure import measure_instances
    from evseg.predict.pipeline import (
        network_probability,
        postprocessing_parameters,
        probability_to_instances,
        working_grid,
    )

    image = _timed(times, "read", read_image, path)
    working_px, factor = working_grid(model, image.pixel_size_nm, path.name)
    scaled = _timed(times, "rescale", rescale_image, image.data, factor)
    normalized = _timed(times, "normalise", normalize_image, scaled, model.normalization)
    on_grid = _timed(times, "network (tiles)", network_probability, model, normalized, options=options)
    probability = _timed(times, "back to input grid", np.stack,
                         [resize_probability(p, image.data.shape) for p in on_grid])
    params = postprocessing_parameters(model, options)
    labels = _timed(times, "threshold + instances", probability_to_instances, probability, params=params,
                    pixel_size_nm=working_px)
    _timed(times, "measurements", measure_instances, labels, image.data, pixel_size_nm=image.pixel_size_nm)
    _timed(times, "write labels", write_labels, out / "l.tif", labels, pixel_size_nm=PIXEL_SIZE_NM)
    _timed(times, "write probability", write_probability, out / "p.tif", probability[0], pixel_size_nm=PIXEL_SIZE_NM)
    overlay = _timed(times, "render overlay", render_overlay, image.data, labels)
    _timed(times, "write overlay", write_png, out / "o.png", overlay)
    _timed(times, "write ROIs", write_imagej_rois, out / "r.zip", labels)
    return probability, labels


def network_gflop(model: Any, shape: tuple[int, int], options: Any) -> float:
    """GFLOP (2 per multiply-add) of the convolutions the tiled prediction of a ``shape`` image runs."""
    import torch

    from evseg.predict.tiling import _starts

    tile = tuple(min(options.tile_size, s) for s in shape)
    n_tiles = np.prod([len(_starts(s, t, options.overlap)) for s, t in zip(shape, tile, strict=True)])
    flops = [0.0]

    def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, torch.nn.ConvTranspose2d):  # every input pixel scatters a kernel
            flops[0] += 2.0 * inputs[0].numel() * module.out_channels * kernel / module.groups
        else:
            flops[0] += 2.0 * output.numel() * module.in_channels * kernel / module.groups

    handles = [m.register_forward_hook(hook) for m in model.network.modules()
               if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    with torch.no_grad():
        model.network.eval()(torch.zeros((1, 1, *tile)))
    for handle in handles:
        handle.remove()
    return float(flops[0] * n_tiles / 1e9)


def child_reference(args: dict[str, Any]) -> dict[str, Any]:
    """Network-only time of a reference implementation on one image (fp32, as a user would run it)."""
    import torch

    from evseg.data.normalize import normalize_image
    from evseg.io import read_image

    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    image = read_image(Path(args["path"]))
    x = torch.from_numpy(normalize_image(image.data, {"method": "percentile", "low": 1.0, "high": 99.8}))[None, None]
    if args["which"] == "paper_frunet":
        from evseg.models import FRUNet

        net = FRUNet(in_channels=1, out_channels=1).eval()

        def run() -> torch.Tensor:
            return torch.sigmoid(net(x))
    else:
        from monai.inferers import sliding_window_inference
        from monai.networks.nets import BasicUNet

        net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1).eval()

        def run() -> torch.Tensor:
            return torch.sigmoid(sliding_window_inference(x, roi_size=(512, 512), sw_batch_size=1, predictor=net,
                                                          overlap=0.25, mode="gaussian"))
    with torch.no_grad():
        net(torch.zeros(1, 1, 64, 64))  # warm-up of the kernels
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "parameters": sum(p.numel() for p in net.parameters()), "peak_mib": peak_rss_mib()}


def child_conv_peak(args: dict[str, Any]) -> dict[str, Any]:
    """Best 3×3 convolution throughput (GFLOP/s) of this machine, channels-last, bf16 and fp32."""
    import torch

    torch.set_num_threads(args["threads"])
    best: dict[str, float] = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for channels, size in ((16, 512), (32, 512), (64, 256), (128, 128)):
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
            x = torch.randn(4, channels, size, size).to(memory_format=torch.channels_last)
            flop = 2.0 * 4 * channels * channels * 9 * size * size
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is torch.bfloat16):
                conv(x)
                runs = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    conv(x)
                    runs.append(time.perf_counter() - t0)
            best[dtype_name] = max(best.get(dtype_name, 0.0), flop / min(runs) / 1e9)
    return best


def child_training(args: dict[str, Any]) -> dict[str, Any]:
    """Training throughput (patches/s) of the default model's architecture through ``evseg.train``."""
    import torch

    from evseg.data.normalize import normalize_image
    from evseg.data.synthetic import synthetic_tem_dataset
    from evseg.models.store import create_model, load_model
    from evseg.train.config import TrainConfig
    from evseg.train.data import TrainingImage
    from evseg.train.loop import train_model

    torch.set_num_threads(args["threads"])
    default = load_model(args["model"])
    samples = synthetic_tem_dataset(4, shape=(512, 512), pixel_size_nm=PIXEL_SIZE_NM, rng=0)
    images = [TrainingImage(f"s{i}", normalize_image(s.image, default.normalization), s.labels.astype(np.int32))
              for i, s in enumerate(samples)]
    results = {}
    for loss in ("bce_dice", "weighted_bce_dice"):
        config = TrainConfig(arch=default.config["arch"], arch_kwargs=default.config["train"]["arch_kwargs"],
                             outputs="+".join(default.outputs), epochs=2, steps_per_epoch=args["steps"],
                             patch_size=256, batch_size=8, loss=loss, augment="full", pixel_size_nm=PIXEL_SIZE_NM)
        model = create_model(config.arch, config.arch_kwargs, pixel_size_nm=PIXEL_SIZE_NM, outputs=default.outputs,
                             normalization=default.normalization)
        with tempfile.TemporaryDirectory() as tmp:
            result = train_model(model, images, [], config, Path(tmp) / "m", progress=False)
        seconds = result.history[-1]["seconds"]  # second epoch: warm
        results[loss] = config.steps_per_epoch * config.batch_size / seconds
    return results


CHILDREN = {"folder": child_folder, "stages": child_stages, "reference": child_reference,
            "conv_peak": child_conv_peak, "training": child_training}


def run_child(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh Python process and return its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(args)]
    print(f"  ... {kind} {args.get('which', '')} {Path(args.get('path', '')).name}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark part {kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- report
def fmt(value: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals."""
    return f"{value:.{digits}f}"


def render(results: dict[str, Any], command: str) -> str:
    """The Markdown report of one benchmark run."""
    r = results
    size = r["sizes"][0]
    folder = r["folder"][str(size)]
    stages = r["stages"]["variants"]
    auto = r["auto_variant"]
    net_s = stages[auto]["stages_s"]["network (tiles)"]
    gflop = r["stages"]["network_gflop"]
    lines = [
        "# Speed: `evseg predict` on 2 CPU cores, against the references",
        "",
        f"Command: `{command}` ({r['date']}, {r['machine']}, {r['threads']} threads, torch {r['torch']}).",
        "",
        "Inputs: synthetic TEM images (evseg.data.synthetic) at the model's pixel size, 1.56 nm/px; model: "
        f"`{r['model']}` (the default). Every number below comes from this one run.",
        "",
        "## Full `evseg predict` path (folder run, default settings, all output files)",
        "",
        "Seconds per image = marginal time of one more image: (T(8 images) − T(2 images)) / 6. Start-up, model "
        "loading and the first-use export are separate.",
        "",
        "| image | s / image | megapixels / s | T(2) s | T(8) s | model load s | peak memory (MiB, largest process) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["sizes"]:
        f = r["folder"][str(s)]
        lines.append(f"| {s}² | **{fmt(f['per_image_s'])}** | {fmt(s * s / 1e6 / f['per_image_s'], 1)} | "
                     f"{fmt(f['t2'])} | {fmt(f['t8'])} | {fmt(f['load_s'])} | {f['peak_mib']:.0f} |")
    lines += ["", f"First-use ONNX export + OpenVINO compile of the model (cached afterwards): "
              f"{fmt(r['first_use_s'], 1)} s.", ""]
    lines += [
        f"## Stage breakdown, one {size}² image in one process ({r['threads']} threads, median of "
        f"{r['repeats']})",
        "",
        "| backend | " + " | ".join(next(iter(stages.values()))["stages_s"]) + " | total s | F1@0.5 | "
        "max \\|Δp\\| vs torch fp32 | 99.9 % \\|Δp\\| |",
        "|---|" + "---:|" * (len(next(iter(stages.values()))["stages_s"]) + 4),
    ]
    for name, v in stages.items():
        mark = " (auto)" if name == auto else ""
        cells = " | ".join(fmt(t) for t in v["stages_s"].values())
        lines.append(f"| {name}{mark} | {cells} | **{fmt(v['total_s'])}** | {fmt(v['f1_0.5'], 3)} | "
                     f"{fmt(v.get('max_abs_diff_vs_torch_fp32', 0.0), 4)} | "
                     f"{fmt(v.get('p999_abs_diff_vs_torch_fp32', 0.0), 4)} |")
    ref_paper = r["references"]["paper_frunet"]
    ref_monai = r["references"]["monai_basicunet"]
    per_image = folder["per_image_s"]
    lines += [
        "",
        f"## References on the same {size}² image (network only, fp32, as a user would run them)",
        "",
        "| method | parameters | seconds | evseg full path is faster by | peak memory MiB |",
        "|---|---:|---:|---:|---:|",
        f"| evseg default, full predict path (per image, folder run) | {r['default_parameters']:,} | "
        f"{fmt(per_image)} | 1× | {folder['peak_mib']:.0f} |",
        f"| evseg default, network only ({auto}) | {r['default_parameters']:,} | {fmt(net_s)} | – | – |",
        f"| paper-configuration FRU-Net, plain PyTorch fp32 NCHW, whole image | {ref_paper['parameters']:,} | "
        f"{fmt(ref_paper['seconds'])} | **{fmt(ref_paper['seconds'] / per_image, 1)}×** | "
        f"{ref_paper['peak_mib']:.0f} |",
        f"| MONAI BasicUNet + sliding_window_inference (roi 512, overlap 0.25, gaussian) | "
        f"{ref_monai['parameters']:,} | {fmt(ref_monai['seconds'])} | "
        f"**{fmt(ref_monai['seconds'] / per_image, 1)}×** | {ref_monai['peak_mib']:.0f} |",
        "",
        "The references run with random weights: they are timed, not scored (no trained copies of them exist "
        "here). The evseg rows' accuracy is in the stage table (F1@0.5 against the synthetic ground truth).",
        "",
        "## Convolution throughput",
        "",
        f"Machine peak, 3×3 convolution, channels-last: {fmt(r['conv_peak']['bf16'], 0)} GFLOP/s bf16, "
        f"{fmt(r['conv_peak']['fp32'], 0)} GFLOP/s fp32 (best of 4 layer sizes).",
        f"Default network on a {size}² image ({auto}): {fmt(gflop, 0)} GFLOP in {fmt(net_s)} s = "
        f"{fmt(gflop / net_s, 0)} GFLOP/s = **{100 * gflop / net_s / r['conv_peak']['bf16']:.0f} %** of the "
        "bf16 peak.",
        "",
        "## Training throughput (default architecture, batch 8, 256² patches, full augmentation)",
        "",
        "| loss | patches / s |",
        "|---|---:|",
    ]
    for loss, rate in r["training"].items():
        lines.append(f"| {loss} | {fmt(rate, 1)} |")
    if "huge" in r:
        h = r["huge"]
        lines += ["", f"## A {h['size']}² image (one worker)", "",
                  f"Time {fmt(h['total_s'], 1)} s, peak resident memory **{h['peak_mib'] / 1024:.2f} GiB** "
                  f"(input {h['input_mib']:.0f} MiB as uint16)."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--model", default="sev", help="model to benchmark [sev]")
    parser.add_argument("--quick", action="store_true", help="1024² and 2048², 1 repeat, no 16384² image")
    parser.add_argument("--huge", type=int, default=16384, help="edge of the memory test image (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for inputs and outputs [temporary]")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed.md")
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child[0]](json.loads(args.child[1]))
        print(json.dumps(result))
        return

    import torch

    from evseg.models.store import load_model
    from evseg.predict.backends import available_backends, make_predictor, resolve_backend
    from evseg.predict.pipeline import resolve_precision

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sizes = [1024, 2048] if args.quick else [2048, 4096]
    repeats = 1 if args.quick else args.repeats
    work = args.work or Path(tempfile.mkdtemp(prefix="evseg-bench-"))
    model = load_model(args.model)
    print(f"benchmark in {work}", flush=True)
    started = time.perf_counter()
    make_predictor(model)  # first-use export and compile (cached for every later process)
    first_use_s = time.perf_counter() - started
    backend = resolve_backend("auto")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}",
        "threads": threads, "torch": torch.__version__, "model": args.model, "sizes": sizes, "repeats": repeats,
        "first_use_s": first_use_s, "backends": available_backends(),
        "auto_variant": f"{backend} {'fp32' if backend == 'onnx' else resolve_precision('auto')}",
        "default_parameters": sum(p.numel() for p in model.network.parameters()),
    }
    results["folder"] = {}
    for size in sizes:
        paths = write_inputs(work / f"in_{size}", size, 8, seed=100)
        t2 = run_child("folder", {"model": args.model, "paths": [str(p) for p in paths[:2]],
                                  "out": str(work / f"out_{size}_2")})
        t8 = run_child("folder", {"model": args.model, "paths": [str(p) for p in paths],
                                  "out": str(work / f"out_{size}_8")})
        results["folder"][str(size)] = {"t2": t2["total_s"], "t8": t8["total_s"], "load_s": t8["load_s"],
                                        "per_image_s": (t8["total_s"] - t2["total_s"]) / 6,
                                        "peak_mib": max(t2["peak_mib"], t8["peak_mib"])}
    first = write_inputs(work / f"in_{sizes[0]}", sizes[0], 8, seed=100)[0]
    results["stages"] = run_child("stages", {"model": args.model, "path": str(first), "threads": threads,
                                             "repeats": repeats, "out": str(work / "stages")})
    results["references"] = {
        "paper_frunet": run_child("reference", {"which": "paper_frunet", "path": str(first), "threads": threads}),
        "monai_basicunet": run_child("reference", {"which": "monai", "path": str(first), "threads": threads}),
    }
    results["conv_peak"] = run_child("conv_peak", {"threads": threads})
    results["training"] = run_child("training", {"model": args.model, "threads": threads,
                                                 "steps": 5 if args.quick else 20})
    if args.huge and not args.quick:
        huge = work / f"huge_{args.huge}.tif"
        if not huge.exists():
            from evseg.io import read_image, write_tiff

            tile = read_image(first).data
            reps = -(-args.huge // tile.shape[0])
            write_tiff(huge, np.tile(tile, (reps, reps))[: args.huge, : args.huge], pixel_size_nm=PIXEL_SIZE_NM)
        h = run_child("folder", {"model": args.model, "paths": [str(huge)], "out": str(work / "out_huge"),
                                 "workers": 1})
        results["huge"] = {"size": args.huge, "total_s": h["total_s"], "peak_mib": h["peak_mib"],
                           "input_mib": args.huge**2 * 2 / 2**20}
    (work / "results.json").write_text(json.dumps(results, indent=1))
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    report = render(results, command)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
