"""Render a method comparison: Markdown/HTML tables like the FRU-Net paper's Table 1, CSVs, histograms, overlays."""

from __future__ import annotations

import html
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg.evaluate.compare import COMPARISON_COLUMNS, GROUND_TRUTH, MODELS_DIR, PER_IMAGE_COLUMNS, SPLIT_NAME

if TYPE_CHECKING:
    from evseg.evaluate.compare import ComparisonResult, ExampleImage

logger = logging.getLogger(__name__)

#: Columns of the comparison table: (key of :meth:`MethodRow.as_dict`, header). ``n_pred`` shows "n_pred / n_gt".
TABLE_COLUMNS = (
    ("method", "Method"),
    ("jaccard", "Jaccard"),
    ("seg", "SEG"),
    ("det", "DET"),
    ("delta_d", "δd"),
    ("delta_r", "δr"),
    ("f1_0.5", "F1@0.5"),
    ("ap_0.5", "AP@0.5"),
    ("seconds_per_image", "s/image"),
    ("n_pred", "n_pred / n_gt"),
)
#: Table columns where higher is better, and where lower is better (the best value is set in bold).
HIGHER_IS_BETTER = ("jaccard", "seg", "det", "f1_0.5", "ap_0.5")
LOWER_IS_BETTER = ("delta_d", "delta_r", "seconds_per_image")

REPORT_FILES = ("comparison.md", "comparison.html", "comparison.csv", "per_image.csv", "size_histograms.png")
#: Longest side (pixels) of an example panel; larger images are shrunk (labels by nearest neighbour).
EXAMPLE_PANEL_MAX = 768
_GT_COLOR = (0, 200, 0)
_PRED_COLOR = (255, 64, 0)


def _cell(key: str, row: dict[str, Any]) -> str:
    value = row[key]
    if key == "n_pred":
        return f"{row['n_pred']} / {row['n_gt']}"
    if key == "seconds_per_image":
        return f"{value:.3g}" if math.isfinite(value) else "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else "n/a"
    return str(value)


def _best(rows: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Indices of the rows with the best value of each scored column (ties all count)."""
    best: dict[str, set[int]] = {}
    for key in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        values = [float(r[key]) for r in rows]
        finite = [v for v in values if math.isfinite(v)]
        if len(rows) < 2 or not finite:
            continue
        target = max(finite) if key in HIGHER_IS_BETTER else min(finite)
        best[key] = {i for i, v in enumerate(values) if v == target}
    return best


def comparison_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table in Markdown: one row per method, the columns :data:`TABLE_COLUMNS`.

    Parameters
    ----------
    rows : list of dict
        Rows with the keys :data:`evseg.evaluate.compare.COMPARISON_COLUMNS`
        (:meth:`ComparisonResult.table`).

    Returns
    -------
    str
        Header, alignment line and one line per method; the best value of each scored column is
        in bold (when there are two methods or more); NaN is written ``n/a``.
    """
    best = _best(rows)
    lines = ["| " + " | ".join(header for _, header in TABLE_COLUMNS) + " |",
             "|" + "|".join(":---" if key == "method" else "---:" for key, _ in TABLE_COLUMNS) + "|"]
    for i, row in enumerate(rows):
        cells = [f"**{_cell(k, row)}**" if i in best.get(k, ()) else _cell(k, row) for k, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _training_rows(result: ComparisonResult) -> list[dict[str, str]]:
    out = []
    for row in result.rows:
        t = row.training
        if t is None:
            continue
        val = t.validation
        out.append({
            "Method": row.name, "epochs run": str(t.epochs_run), "best epoch": str(t.best_epoch),
            "stopped by": t.stop_reason, "minutes": f"{t.minutes:.1f}",
            "val Jaccard": f"{val['jaccard']:.3f}" if "jaccard" in val else "n/a",
            "val F1@0.5": f"{val['f1']:.3f}" if "f1" in val else "n/a",
            "model folder": f"{MODELS_DIR}/{row.name}/",
        })
    return out


_SHARED_SETTINGS = ("epochs", "steps_per_epoch", "patch_size", "batch_size", "learning_rate", "loss", "augment",
                    "outputs", "arch_kwargs", "time_limit_min", "early_stopping_patience", "select_metric", "seed",
                    "pixel_size_nm", "precision")


def _context(result: ComparisonResult) -> dict[str, Any]:
    """Facts shown above and below the table, shared by the Markdown and HTML renderings."""
    n = {k: len(v) for k, v in result.split.items()}
    return {
        "data": f"images {result.images_dir}, labels {result.labels_dir}",
        "split": (f"{sum(n.values())} image pairs split by image (seed {result.config.seed}): {n['train']} train, "
                  f"{n['val']} validation, {n['test']} test ({SPLIT_NAME})"),
        "pooling": (f"Scores are pooled over all objects of the {n['test']} test images (evseg.evaluate.pool_scores); "
                    "s/image is the mean time of segment_image per test image, training excluded."),
        "legend": ("Higher is better for Jaccard, SEG, DET, F1@0.5 and AP@0.5; lower is better for δd and δr "
                   "(relative diameter and roundness dissimilarity of matched objects) and s/image. "
                   "The best value of each column is in bold."),
        "settings": ", ".join(f"{k} = {result.config.to_dict()[k]}" for k in _SHARED_SETTINGS),
        "pixel_size": ("pixel size from the files" if result.pixel_size_nm is None
                       else f"pixel size {result.pixel_size_nm:g} nm (given)"),
    }


def format_comparison_markdown(result: ComparisonResult, *, histogram: str | None, examples: list[str]) -> str:
    """The whole ``comparison.md``: data and split, the table, training details, figures.

    Parameters
    ----------
    result : ComparisonResult
    histogram : str or None
        Relative path of the size histogram figure (``None``: not written).
    examples : list of str
        Relative paths of the example figures.
    """
    c = _context(result)
    lines = ["# Method comparison", "", f"Data: {c['data']} ({c['pixel_size']}).", "",
             f"Split: {c['split']}.", "", c["pooling"], "", comparison_table_markdown(result.table()), "",
             c["legend"], "", "Per-image scores: `per_image.csv`; the same numbers as the table: `comparison.csv`.", ""]
    training = _training_rows(result)
    if training:
        headers = list(training[0])
        lines += ["## Training", "", f"Shared settings (only the architecture differs): {c['settings']}.", "",
                  "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r[h] for h in headers) + " |" for r in training]
        lines.append("")
    if histogram:
        lines += ["## Size distributions", "",
                  f"Equivalent diameter ({result.diameter_unit}) of the test objects, ground truth vs each method.",
                  "", f"![size histograms]({histogram})", ""]
    if examples:
        lines += ["## Examples", "", "Image | ground truth (green) | each method (orange), in table order.", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in examples]
        lines.append("")
    return "\n".join(lines)


def format_comparison_html(result: ComparisonResult, *, histogram: str | None, examples: list[str]) -> str:
    """The whole ``comparison.html``: as :func:`format_comparison_markdown`, a standalone page linking the figures."""
    e = html.escape
    c = _context(result)
    rows = result.table()
    best = _best(rows)
    head = "".join(f"<th>{e(h)}</th>" for _, h in TABLE_COLUMNS)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for key, _ in TABLE_COLUMNS:
            text = e(_cell(key, row))
            cells.append(f"<td><b>{text}</b></td>" if i in best.get(key, ()) else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>evseg method comparison</title>',
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
        "th,td{border:1px solid #999;padding:4px 8px}td{text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
        "<h1>Method comparison</h1>", f"<p>Data: {e(c['data'])} ({e(c['pixel_size'])}).</p>",
        f"<p>Split: {e(c['split'])}.</p>", f"<p>{e(c['pooling'])}</p>",
        f'<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>',
        f"<p>{e(c['legend'])}</p>",
        '<p>Per-image scores: <a href="per_image.csv">per_image.csv</a>; the table as CSV: '
        '<a href="comparison.csv">comparison.csv</a>.</p>',
    ]
    training = _training_rows(result)
    if training:
        headers = list(training[0])
        parts += ["<h2>Training</h2>", f"<p>Shared settings (only the architecture differs): {e(c['settings'])}.</p>",
                  "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"
                  + "".join("<tr>" + "".join(f"<td>{e(r[h])}</td>" for h in headers) + "</tr>" for r in training)
                  + "</table>"]
    if histogram:
        parts += ["<h2>Size distributions</h2>",
                  f"<p>Equivalent diameter ({e(result.diameter_unit)}) of the test objects, ground truth vs each "
                  f'method.</p><img src="{e(histogram)}" alt="size histograms">']
    if examples:
        parts += ["<h2>Examples</h2>", "<p>Image | ground truth (green) | each method (orange), in table order.</p>"]
        parts += [f'<p><img src="{e(p)}" alt="{e(Path(p).stem)}"></p>' for p in examples]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def plot_size_histograms(result: ComparisonResult, path: str | os.PathLike) -> Path | None:
    """Histograms of the objects' equivalent diameters: ground truth vs each method, one panel per method.

    Parameters
    ----------
    result : ComparisonResult
    path : path-like
        PNG file to write.

    Returns
    -------
    Path or None
        ``path``; ``None`` when matplotlib is not installed (a warning says how to install it) or
        there is no object at all.
    """
    from evseg.io.atomic import atomic_path

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: size_histograms.png not written "
                       "(pip install 'evseg[plot]' or pip install matplotlib)")
        return None
    values = np.concatenate(list(result.diameters.values()))
    if values.size == 0:
        logger.info("no object in the ground truth or any prediction: no size histogram")
        return None
    bins = np.histogram_bin_edges(values, bins=30)
    gt = result.diameters[GROUND_TRUTH]
    names = [row.name for row in result.rows]
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, sharex=True)
    for ax, name in zip(axes.ravel(), names, strict=False):
        pred = result.diameters[name]
        ax.hist(gt, bins=bins, color="0.7", label=f"ground truth (n={gt.size})")
        ax.hist(pred, bins=bins, histtype="step", linewidth=1.5, color="tab:red", label=f"{name} (n={pred.size})")
        ax.set(title=name, xlabel=f"equivalent diameter ({result.diameter_unit})", ylabel="objects")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` (Y, X, 3) uint8 with a white strip above it holding ``title``."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    size = int(np.clip(panel.shape[1] // 24, 10, 28))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    strip = PILImage.new("RGB", (panel.shape[1], size + 8), (255, 255, 255))
    ImageDraw.Draw(strip).text((4, 3), title, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(strip), panel], axis=0)


def render_example(example: ExampleImage, methods: list[str]) -> np.ndarray:
    """Side-by-side panels: the image | ground-truth outlines | each method's outlines.

    Parameters
    ----------
    example : ExampleImage
    methods : list of str
        Method names (keys of ``example.predictions``), in panel order.

    Returns
    -------
    ndarray of uint8, shape (Y', X', 3)
        Titled panels separated by white gaps; images with a side longer than
        :data:`EXAMPLE_PANEL_MAX` are shrunk first (outlines are drawn after shrinking).
    """
    from evseg.data.rescale import rescale_image, resize_labels
    from evseg.io import render_overlay

    image = example.image.astype(np.float32)
    factor = min(1.0, EXAMPLE_PANEL_MAX / max(image.shape))
    small = rescale_image(image, factor) if factor < 1 else image

    def fit(labels: np.ndarray) -> np.ndarray:
        return resize_labels(labels, small.shape) if factor < 1 else labels

    empty = np.zeros(small.shape, np.int32)
    panels = [_titled(render_overlay(small, empty, draw_ids=False), example.stem),
              _titled(render_overlay(small, fit(example.ground_truth), draw_ids=False, color=_GT_COLOR),
                      f"ground truth ({int(np.unique(example.ground_truth).size - 1)})")]
    for name in methods:
        labels = example.predictions[name]
        n = int(np.unique(labels).size - 1)
        panels.append(_titled(render_overlay(small, fit(labels), draw_ids=False, color=_PRED_COLOR), f"{name} ({n})"))
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)


def write_comparison_report(result: ComparisonResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the comparison report files into ``out_dir`` (created).

    Files: ``comparison.md`` and ``comparison.html`` (the table, rows = methods, columns
    :data:`TABLE_COLUMNS`, with the data, split and training details), ``comparison.csv``
    (:data:`evseg.evaluate.compare.COMPARISON_COLUMNS`), ``per_image.csv``
    (:data:`evseg.evaluate.compare.PER_IMAGE_COLUMNS`), ``size_histograms.png`` (needs matplotlib)
    and ``examples/<stem>.png``. The split (``split.json``) and the models (``models/``) are
    written by :func:`evseg.evaluate.compare.compare_methods`.

    Parameters
    ----------
    result : ComparisonResult
    out_dir : path-like

    Returns
    -------
    dict of str to Path
        The files written, by name (``"examples/<stem>.png"`` for the examples).
    """
    from evseg.io import write_csv, write_png
    from evseg.io.atomic import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["comparison.csv"] = write_csv(out / "comparison.csv", result.table(), columns=COMPARISON_COLUMNS)
    written["per_image.csv"] = write_csv(out / "per_image.csv", list(result.per_image), columns=PER_IMAGE_COLUMNS)
    histogram = plot_size_histograms(result, out / "size_histograms.png")
    if histogram is not None:
        written["size_histograms.png"] = histogram
    examples = []
    methods = [row.name for row in result.rows]
    for example in result.examples:
        name = f"examples/{example.stem}.png"
        (out / "examples").mkdir(exist_ok=True)
        written[name] = write_png(out / name, render_example(example, methods))
        examples.append(name)
    hist_name = "size_histograms.png" if histogram is not None else None
    for name, text in (("comparison.md", format_comparison_markdown(result, histogram=hist_name, examples=examples)),
                       ("comparison.html", format_comparison_html(result, histogram=hist_name, examples=examples))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written[name] = out / name
    return written
