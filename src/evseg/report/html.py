"""A self-contained HTML report of a predict run: counts, size and shape histograms, thumbnails, settings, failures."""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg._validate import check_image, check_labels, check_same_shape
from evseg.io.atomic import atomic_path

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel
    from evseg.predict.batch import ImageOutcome
    from evseg.predict.pipeline import PredictOptions

logger = logging.getLogger(__name__)

__all__ = [
    "PLOT_INSTALL_HINT",
    "REPORT_NAME",
    "THUMBNAIL_WIDTH",
    "describe_model",
    "describe_parameters",
    "make_thumbnail",
    "thumbnail_width_for",
    "write_report",
]

REPORT_NAME = "report.html"
#: Default longest side of the thumbnails (pixels): 8-17 kB of JPEG per TEM image (measured on real and
#: synthetic micrographs). :func:`thumbnail_width_for` shrinks it for long runs.
THUMBNAIL_WIDTH = 256
#: Runs up to this many images get full-size thumbnails; longer runs keep about the same total.
_FULL_SIZE_IMAGES = 200
_MIN_THUMBNAIL_WIDTH = 128
PLOT_INSTALL_HINT = 'pip install "evseg[plot]"'
#: Above this many images the counts are shown as a histogram instead of one bar per image.
_MAX_BARS = 40

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;
min-width:9em}.card b{display:block;font-size:1.5em}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots img{border:1px solid #eee;max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}
.error{color:#a00000}.warn{color:#8a5a00;font-size:.88em}
img.thumb{display:block;max-width:256px;height:auto}
code{font-size:.9em;word-break:break-all}
@media print{body{max-width:none}a{color:inherit;text-decoration:none}}
"""


def make_thumbnail(
    image: np.ndarray, labels: np.ndarray, *, width: int = THUMBNAIL_WIDTH, quality: int = 50
) -> bytes:
    """A small JPEG of the image with the object outlines drawn at thumbnail scale.

    The image is reduced with anti-aliasing and the labels with nearest-neighbour sampling
    before the outlines are drawn, so they stay one pixel wide and visible.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        Grey image, any real dtype.
    labels : ndarray of int, shape (Y, X)
        Instance labels, 0 = background.
    width : int
        Longest side of the thumbnail in pixels (the width of a landscape image; a portrait image
        is bounded to this height); smaller images are not enlarged.
    quality : int
        JPEG quality, 1..95 (no chroma subsampling, so that thin coloured outlines stay visible).

    Returns
    -------
    bytes
        JPEG file content (RGB, longest side at most ``width`` pixels, aspect ratio kept).

    Raises
    ------
    ValueError
        If the shapes differ, ``width < 16`` or ``quality`` is outside 1..95.
    """
    from PIL import Image as PILImage
    from skimage.transform import resize

    from evseg.io.overlay import render_overlay

    image = check_image(image, ndim=(2,))
    labels = check_labels(labels, ndim=(2,))
    check_same_shape(image, labels, names=("image", "labels"))
    if width < 16:
        raise ValueError(f"`width` must be >= 16 pixels, got {width}.")
    if not 1 <= quality <= 95:
        raise ValueError(f"`quality` must be in 1..95, got {quality}.")
    step = max(1, max(image.shape) // (4 * width))  # huge images: subsample first, so memory stays small
    if step > 1:
        image, labels = image[::step, ::step], labels[::step, ::step]
    scale = width / max(image.shape)
    if scale < 1:
        shape = tuple(max(1, round(n * scale)) for n in image.shape)
        image = resize(image.astype(np.float32), shape, order=1, anti_aliasing=True, preserve_range=True)
        labels = resize(labels, shape, order=0, anti_aliasing=False, preserve_range=True).astype(np.int32)
    rgb = render_overlay(image, labels, draw_ids=False)
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


def thumbnail_width_for(n_images: int) -> int:
    """Thumbnail width for a run of ``n_images``: full size up to 200 images, then smaller.

    Beyond 200 images the width shrinks as ``256 * sqrt(200 / n_images)`` (so the thumbnails'
    total area stays that of 200 full-size ones), down to 128 pixels: a 500-image run of 1024 x 1024
    TEM images gets 161-pixel thumbnails, about 5 MB of report.

    Examples
    --------
    >>> thumbnail_width_for(10), thumbnail_width_for(500), thumbnail_width_for(100_000)
    (256, 161, 128)
    """
    if n_images <= _FULL_SIZE_IMAGES:
        return THUMBNAIL_WIDTH
    return max(_MIN_THUMBNAIL_WIDTH, int(THUMBNAIL_WIDTH * math.sqrt(_FULL_SIZE_IMAGES / n_images)))


def write_report(
    out_dir: str | Path,
    outcomes: Sequence[ImageOutcome],
    *,
    model_description: Mapping[str, Any],
    parameters: Mapping[str, Any],
) -> Path:
    """Write ``report.html`` into ``out_dir``: one self-contained page for a lab notebook.

    The page holds the number of images and objects, histograms of the equivalent diameter
    (nm when known, else pixels) and the roundness, the objects per image, a table of images with
    their overlay thumbnails, the model and parameters, and the images that failed with their
    errors. Plots and thumbnails are embedded (base64), nothing is loaded from elsewhere; the
    only links are to the run's own files in the same folder. Without matplotlib
    (``pip install "evseg[plot]"``) the page has the tables but no plots, and says so.

    Parameters
    ----------
    out_dir : path-like
        Existing output folder of the run.
    outcomes : sequence of ImageOutcome
        One per input image, in input order (see :func:`evseg.predict.batch.predict_files`).
    model_description : mapping of str to Any
        Rows of the "Model" table (name, folder, architecture, pixel size...).
    parameters : mapping of str to Any
        Rows of the "Parameters" table (threshold, split method, min diameter, command line...).
        The evseg version and the date are added.

    Returns
    -------
    Path
        ``out_dir / "report.html"``.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` does not exist.
    """
    from evseg import __version__

    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"`out_dir` {out} is not an existing folder.")
    now = datetime.now(timezone.utc).astimezone()
    done = [o for o in outcomes if o.error is None]
    failed = [o for o in outcomes if o.error is not None]
    diameters, diameter_unit, excluded = _diameters(done)
    roundness = _column(done, "roundness")
    counts = [int(o.summary["count"]) for o in done]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>evseg report: {_e(out.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>evseg report: {_e(out.name)}</h1>",
        f'<p class="sub">{_e(now.strftime("%Y-%m-%d %H:%M %Z"))} &middot; evseg {_e(__version__)} &middot; '
        f"model {_e(model_description.get('name', 'unknown'))}</p>",
        _cards(len(outcomes), len(done), len(failed), counts, diameters, diameter_unit, roundness),
    ]
    if failed:
        parts.append(f'<p class="note error">{len(failed)} image(s) failed; see <a href="#failed">Failed '
                     "images</a>. They are not in the tables or plots.</p>")
    parts.append(_plots_section(counts, [o.path.name for o in done], diameters, diameter_unit, excluded, roundness))
    parts.append(_images_section(outcomes, out))
    if failed:
        parts.append(_failed_section(failed))
    parts.append("<h2>Model</h2>" + _key_value_table(model_description))
    run_rows = {**parameters, "evseg version": __version__, "date": now.isoformat(timespec="seconds")}
    parts.append("<h2>Parameters</h2>" + _key_value_table(run_rows))
    parts.append(_files_section(out))
    parts.append("</body></html>")
    path = out / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def describe_model(model: SegmentationModel | str) -> dict[str, Any]:
    """Rows of the report's "Model" table: name, folder, architecture, pixel size, normalisation...

    Parameters
    ----------
    model : SegmentationModel or "classical"

    Returns
    -------
    dict
        Row name -> value, for ``write_report(model_description=...)``.
    """
    from evseg.models.store import SegmentationModel

    if not isinstance(model, SegmentationModel):
        return {"name": f"{model} (no learning)",
                "method": "edge detection, hole filling, splitting of touching objects, size filter "
                          "(evseg.baselines.classical)"}
    config = model.config
    return {
        "name": model.name,
        "folder": str(model.path) if model.path is not None else "(in memory, not saved)",
        "architecture": config.get("arch"),
        "architecture settings": dict(config.get("arch_kwargs", {})),
        "model pixel size (nm)": model.pixel_size_nm if model.pixel_size_nm is not None else "none (pixels)",
        "output channels": ", ".join(model.outputs),
        "normalisation": dict(model.normalization),
        "written by evseg": config.get("evseg_version"),
        "validation scores": dict(config.get("validation") or {}) or None,
    }


def describe_parameters(
    model: SegmentationModel | str, *, options: PredictOptions, pixel_size_nm: float | None, workers: int | str
) -> dict[str, Any]:
    """Rows of the report's "Parameters" table: post-processing in force, pixel size, tiling, workers.

    Parameters
    ----------
    model : SegmentationModel or "classical"
    options : PredictOptions
        The options of the run (their ``None`` post-processing fields take the model's values).
    pixel_size_nm : float or None
        The pixel size given for all images (``None``: each file's own).
    workers : int or str
        Number of local processes, or a description of the cluster.

    Returns
    -------
    dict
        Row name -> value, for ``write_report(parameters=...)``; sizes in nm, or px for a model
        that works in pixels.
    """
    from evseg.models.store import SegmentationModel
    from evseg.predict.pipeline import postprocessing_parameters

    params = postprocessing_parameters(model, options)
    if not isinstance(model, SegmentationModel):  # the classical baseline uses only the minimum diameter
        return {"pixel size (nm)": pixel_size_nm if pixel_size_nm is not None else "from each file",
                "min diameter (nm)": params["min_diameter_nm"], "workers": workers}
    in_pixels = model.pixel_size_nm is None
    rows: dict[str, Any] = {
        "pixel size (nm)": pixel_size_nm if pixel_size_nm is not None else "from each file",
        "threshold": params["threshold"],
        "split method": params["split_method"],
    }
    if in_pixels:
        rows["min diameter (px)"] = params["min_diameter_px"]
        rows["max hole area (px)"] = params["max_hole_area_px"]
    else:
        rows["min diameter (nm)"] = params["min_diameter_nm"]
        rows["max hole area (nm\u00b2)"] = params["max_hole_area_nm2"]
    rows.update({"tile size (px)": options.tile_size, "tile overlap (px)": options.overlap,
                 "precision": options.precision, "workers": workers})
    return rows


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 1) -> str:
    """Numbers for tables: NaN/None as an en dash, floats with ``digits`` decimals."""
    if value is None:
        return "&ndash;"
    if isinstance(value, (bool, np.bool_)):
        return _e(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    if isinstance(value, (float, np.floating)):
        return "&ndash;" if not math.isfinite(float(value)) else f"{float(value):.{digits}f}"
    return _e(value)


def _column(done: Sequence[ImageOutcome], name: str) -> np.ndarray:
    values = [np.asarray(o.table[name], dtype=np.float64) for o in done if o.table is not None and name in o.table]
    merged = np.concatenate(values) if values else np.zeros(0)
    return merged[np.isfinite(merged)]


def _diameters(done: Sequence[ImageOutcome]) -> tuple[np.ndarray, str, int]:
    """Equivalent diameters in nm when any image has a pixel size (others excluded), else in px."""
    nm = _column(done, "equivalent_diameter_nm")
    if nm.size:
        return nm, "nm", int(_column(done, "equivalent_diameter_px").size - nm.size)
    return _column(done, "equivalent_diameter_px"), "px", 0


def _cards(n_images: int, n_done: int, n_failed: int, counts: list[int], diameters: np.ndarray, unit: str,
           roundness: np.ndarray) -> str:
    def card(title: str, value: str, detail: str = "") -> str:
        extra = f"<small>{detail}</small>" if detail else ""
        return f'<div class="card">{_e(title)}<b>{value}</b>{extra}</div>'

    items = [card("images", f"{n_done}", f"of {n_images}" + (f", {n_failed} failed" if n_failed else "")),
             card("objects", f"{sum(counts)}", f"{np.mean(counts):.1f} per image" if counts else "")]
    if diameters.size:
        sd = f" &plusmn; {np.std(diameters, ddof=1):.1f}" if diameters.size > 1 else ""
        items.append(card(f"mean diameter ({unit})", f"{np.mean(diameters):.1f}{sd}",
                          f"median {np.median(diameters):.1f} {unit}"))
    if roundness.size:
        items.append(card("mean roundness", f"{np.mean(roundness):.2f}", f"median {np.median(roundness):.2f}"))
    return f'<div class="cards">{"".join(items)}</div>'


def _plots_section(counts: list[int], names: list[str], diameters: np.ndarray, unit: str, excluded: int,
                   roundness: np.ndarray) -> str:
    head = "<h2>Size and shape</h2>"
    if not counts:
        return head + "<p>No image was segmented, so there is nothing to plot.</p>"
    try:
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return head + (f'<p class="note">Plots need matplotlib, which is not installed ({_e(PLOT_INSTALL_HINT)}); '
                       "the tables below hold the numbers.</p>")
    images = [_histogram(diameters, f"equivalent diameter ({unit})", "Object diameters"),
              _histogram(roundness, "roundness (4\u03c0\u00b7area / perimeter\u00b2)", "Object roundness",
                         value_range=(0.0, 1.0)),
              _counts_plot(counts, names)]
    note = (f'<p class="note">{excluded} object(s) from images without a pixel size are not in the diameter '
            "histogram (their diameters are in pixels only).</p>") if excluded else ""
    tags = "".join(f'<img src="data:image/png;base64,{b}" alt="{_e(alt)}">' for b, alt in images if b)
    return head + note + f'<div class="plots">{tags}</div>'


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _histogram(values: np.ndarray, xlabel: str, title: str,
               value_range: tuple[float, float] | None = None) -> tuple[str, str]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if values.size:
        ax.hist(values, bins=min(40, max(5, int(np.sqrt(values.size)) + 1)), range=value_range,
                color="#3b6ea8", edgecolor="white", linewidth=0.5)
    else:
        ax.text(0.5, 0.5, "no objects", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel=xlabel, ylabel="objects", title=f"{title} (n = {values.size})")
    return _figure_png(fig), title


def _counts_plot(counts: list[int], names: list[str]) -> tuple[str, str]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if len(counts) <= _MAX_BARS:
        ax.bar(np.arange(len(counts)), counts, color="#3b6ea8")
        ax.set(xlabel="image (in input order)", ylabel="objects")
        if len(counts) <= 12:
            ax.set_xticks(np.arange(len(counts)), [n if len(n) <= 12 else n[:11] + "\u2026" for n in names],
                          rotation=45, ha="right", fontsize=7)
    else:
        ax.hist(counts, bins=min(40, int(np.sqrt(len(counts))) + 1), color="#3b6ea8", edgecolor="white")
        ax.set(xlabel="objects per image", ylabel="images")
    ax.set_title(f"Objects per image (n = {len(counts)} images)")
    return _figure_png(fig), "Objects per image"


def _images_section(outcomes: Sequence[ImageOutcome], out: Path) -> str:
    rows = []
    for o in outcomes:
        name = o.path.name
        if o.error is not None:
            rows.append(f'<tr><td></td><td>{_e(name)}</td><td colspan="5" class="error">failed: '
                        f"{_e(_first_line(o.error))}</td></tr>")
            continue
        thumb = ""
        if o.thumbnail:
            img = (f'<img class="thumb" loading="lazy" alt="{_e(name)} overlay" '
                   f'src="data:image/jpeg;base64,{base64.b64encode(o.thumbnail).decode("ascii")}">')
            overlay = out / f"{o.path.stem}_overlay.png"
            thumb = f'<a href="{_e(overlay.name)}">{img}</a>' if overlay.is_file() else img
        s = o.summary or {}
        unit = "nm" if math.isfinite(float(s.get("mean_diameter_nm", float("nan")))) else "px"
        mean, sd, median = (s.get(f"{k}_diameter_{unit}") for k in ("mean", "sd", "median"))
        spread = f" &plusmn; {_fmt(sd)}" if sd is not None and math.isfinite(float(sd)) else ""
        diameter = f"{_fmt(mean)}{spread} {unit}" if mean is not None and math.isfinite(float(mean)) else _fmt(mean)
        median_text = f"{_fmt(median)} {unit}" if median is not None and math.isfinite(float(median)) else _fmt(median)
        notes = "".join(f'<div class="warn">{_e(w)}</div>' for w in o.warnings)
        rows.append(
            f"<tr><td>{thumb}</td><td>{_e(name)}{notes}</td><td class=num>{_fmt(o.pixel_size_nm, 3)}</td>"
            f"<td class=num>{_fmt(s.get('count'))}</td><td class=num>{diameter}</td>"
            f"<td class=num>{median_text}</td><td class=num>{o.seconds:.1f}</td></tr>")
    head = ("<tr><th>overlay</th><th>image</th><th>pixel size (nm)</th><th>objects</th>"
            "<th>diameter, mean &plusmn; SD</th><th>median diameter</th><th>time (s)</th></tr>")
    return f"<h2>Images</h2><table>{head}{''.join(rows)}</table>"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 300 else line[:299] + "\u2026"


def _failed_section(failed: Sequence[ImageOutcome]) -> str:
    rows = "".join(f"<tr><td><code>{_e(o.path)}</code></td><td class=error>{_e(o.error)}</td></tr>" for o in failed)
    head = f'<h2 id="failed">Failed images ({len(failed)})</h2>'
    return f"{head}<table><tr><th>file</th><th>error</th></tr>{rows}</table>"


def _key_value_table(rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_value_cell(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _value_cell(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{_e(k)}={_e(v)}" for k, v in value.items())
    if isinstance(value, (Path, str)) and ("/" in str(value) or "\\" in str(value) or len(str(value)) > 60):
        return f"<code>{_e(value)}</code>"
    return _e(value)


def _files_section(out: Path) -> str:
    from evseg.predict.batch import MEASUREMENTS_NAME, SUMMARY_NAME

    links = [f'<a href="{name}">{name}</a>' for name in (MEASUREMENTS_NAME, SUMMARY_NAME) if (out / name).is_file()]
    text = ", ".join(links) if links else "none"
    return (f"<h2>Files</h2><p>Tables: {text} (in <code>{_e(out.resolve())}</code>). Per image: "
            "<code>&lt;stem&gt;_labels.tif</code> and, unless turned off, <code>_prob.tif</code>, "
            "<code>_overlay.png</code>, <code>_rois.zip</code>.</p>")
