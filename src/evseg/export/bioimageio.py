"""Export a model as a BioImage Model Zoo package (bioimage.io spec 0.5): weights, test tensors, docs."""

from __future__ import annotations

import ast
import contextlib
import gc
import json
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evseg import __version__
from evseg._registry import look_up_option
from evseg.export._common import as_segmentation_model, import_extra, modules_installed
from evseg.io.atomic import atomic_path

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

logger = logging.getLogger(__name__)

__all__ = ["WEIGHT_FORMATS", "collect_leaked_files", "export_bioimageio", "network_source"]

#: Weight formats a package can hold; the state dict is always the parent of the others.
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
_EXTRA = "bioimageio"

#: Modules whose source, concatenated, defines the networks without evseg installed (in order).
_SOURCE_MODULES = ("_registry.py", "models/blocks.py", "models/unet.py")
ARCHITECTURE_FILE = "evseg_network.py"
_ARCH_CALLABLES = {"unet": "UNet", "frunet": "FRUNet"}
_ARCH_TITLES = {"unet": "U-Net", "frunet": "FRU-Net"}

#: Halo (pixels) declared by default: what evseg's own tiled prediction discards at tile borders.
DEFAULT_HALO_PX = 32

CITATIONS = (
    (
        "E. Gómez-de-Mariscal, M. Maška, A. Kotrbová, V. Pospíchalová, P. Matula, A. Muñoz-Barrutia. "
        "Deep-Learning-Based Segmentation of Small Extracellular Vesicles in Transmission Electron "
        "Microscopy Images. Scientific Reports 9, 13211 (2019). (FRU-Net)",
        "10.1038/s41598-019-49431-3",
    ),
    (
        "O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation. MICCAI 2015, LNCS 9351, 234-241. (U-Net)",
        "10.1007/978-3-319-24574-4_28",
    ),
)


def network_source() -> str:
    """Python source that defines evseg's ``UNet`` and ``FRUNet`` with only torch installed.

    It concatenates ``evseg/_registry.py``, ``evseg/models/blocks.py`` and ``evseg/models/unet.py``
    of the running evseg, dropping their ``from evseg ...`` imports (the names they import are
    defined earlier in the same file) and hoisting ``from __future__`` imports to the top. It is
    the ``architecture`` source of the package's ``pytorch_state_dict`` weights, so a bioimage.io
    consumer can rebuild the network from the state dict without evseg.

    Returns
    -------
    str
        The module source.
    """
    package = resources.files("evseg")
    parts = []
    for relative in _SOURCE_MODULES:
        text = package.joinpath(relative).read_text(encoding="utf-8")
        lines = text.splitlines()
        drop: set[int] = set()
        for node in ast.parse(text).body:
            if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "__future__" or node.module.split(".")[0] == "evseg"
            ):
                end = node.end_lineno if node.end_lineno is not None else node.lineno
                drop.update(range(node.lineno - 1, end))
        kept = "\n".join(line for i, line in enumerate(lines) if i not in drop)
        parts.append(f"# ---- from evseg/{relative} " + "-" * max(0, 80 - len(relative)) + "\n" + kept.strip())
    header = (
        f'"""evseg {__version__} networks (UNet, FRUNet), self-contained: generated from evseg/'
        + ", evseg/".join(_SOURCE_MODULES)
        + '."""\n\nfrom __future__ import annotations\n'
    )
    source = header + "\n\n" + "\n\n\n".join(parts) + "\n"
    compile(source, ARCHITECTURE_FILE, "exec")  # fail here, not in a consumer, if the join broke it
    return source


def export_bioimageio(
    model: SegmentationModel | str | Path,
    path: str | Path,
    *,
    weight_formats: Sequence[str] | None = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str | Mapping[str, str]] = ({"name": "evseg developers"},),
    license: str = "MIT",
    test_image: np.ndarray | None = None,
    test_size: int = 256,
    halo: int | None = None,
    rng: int | np.random.Generator | None = 0,
) -> Path:
    """Write a BioImage Model Zoo (bioimage.io, spec 0.5) package of a model.

    The package holds the weights as a PyTorch state dict (parent; architecture: a self-contained
    copy of evseg's network code, :func:`network_source`, with the model's ``arch_kwargs``) plus
    TorchScript and ONNX conversions, all returning **logits**; the description adds the
    pre-processing evseg applies (``scale_range``: the 1st–99.8th percentile of each sample to
    [0, 1], per the model's ``normalization``) and a ``sigmoid`` post-processing, so consumers get
    foreground probabilities. Input and output are ``(batch, channel, y, x)`` with spatial axes in
    nanometres (scale = the model's ``pixel_size_nm``; unit-less when the model works in pixels)
    and sizes ``min + n * required_divisor``; the output declares a halo to crop at tile borders.
    Test tensors (``.npy``, sha256 recorded), a cover image, a README (with a Validation section),
    citations (FRU-Net and U-Net papers), license and authors are included.

    Parameters
    ----------
    model : SegmentationModel, str or path
        A model, a bundled model name (``"sev"``) or a model folder.
    path : path-like
        ``*.zip``: a zipped package (what bioimage.io uploads take); otherwise a folder (created; it
        must not exist or be empty) holding ``rdf.yaml`` and the files.
    weight_formats : sequence of {"pytorch_state_dict", "torchscript", "onnx"}, optional
        ``None``: all three, ONNX only when its extra is installed (``pip install "evseg[onnx]"``).
        ``pytorch_state_dict`` is always included.
    name : str, optional
        Package name (letters, digits, spaces, ``_+-()``); default from the model.
    description : str, optional
        One-paragraph description; default from the model.
    authors : sequence of str or dict
        Names, or dicts with ``name`` (and optionally ``affiliation``, ``orcid``).
    license : str
        SPDX license identifier of the weights.
    test_image : ndarray, shape (Y, X), optional
        A raw image on the model's pixel grid for the test tensors and cover; its central
        ``test_size`` square is used. Default: a seeded synthetic TEM image
        (:func:`evseg.data.synthetic.synthetic_tem_image`).
    test_size : int
        Edge (pixels) of the test tensors; rounded up to a valid input size.
    halo : int, optional
        Output pixels a consumer should crop at each tile border. Default: 32 (what
        ``evseg predict`` discards), or the network's receptive-field bound if smaller.
    rng : int, Generator or None
        Seed of the synthetic test image.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MissingExtraError
        If ``bioimageio.spec`` (``pip install "evseg[bioimageio]"``) or, for ``"onnx"`` weights,
        the ONNX exporter (``pip install "evseg[onnx]"``) is missing.
    FileExistsError
        If ``path`` is a non-empty folder or an existing file.
    ValueError
        For an unknown weight format, a bad ``test_image``/``test_size``/``halo``, or if
        ``bioimageio.spec`` rejects the package (the message has its report).
    """
    import_extra("bioimageio.spec", extra=_EXTRA, purpose="bioimage.io export")
    model = as_segmentation_model(model)
    formats = _weight_formats(weight_formats)
    path = Path(path)
    zipped = path.suffix.lower() == ".zip"
    _check_destination(path, zipped=zipped)
    network = model.network.eval()
    if network.spatial_dims != 2:
        raise ValueError(
            "bioimage.io export supports 2D models only (this model is 3D); export it with format 'onnx' or "
            "'torchscript' instead."
        )
    divisor = tuple(int(d) for d in network.required_divisor)
    halos = _halos(network, halo)
    min_sizes = tuple(d * math.ceil((2 * h + d) / d) for d, h in zip(divisor, halos, strict=True))
    size = max(int(test_size), *min_sizes)
    sizes = tuple(d * math.ceil(size / d) for d in divisor)

    description_kw = dict(name=name, description=description, authors=authors, license=license,
                          min_sizes=min_sizes, halos=halos)
    with tempfile.TemporaryDirectory(prefix="evseg-bioimageio-") as tmp, collect_leaked_files():
        files = _write_files(model, Path(tmp), formats, test_image=test_image, sizes=sizes, rng=rng)
        _package_and_validate(model, files, path, zipped=zipped, **description_kw)
    return path


@contextlib.contextmanager
def collect_leaked_files() -> Iterator[None]:
    """Close the files that ``bioimageio.spec`` opens and leaves open, without ``ResourceWarning``.

    ``bioimageio.spec`` (0.5.12) reads package files through readers it never closes; they are
    closed when garbage-collected, which emits a ``ResourceWarning`` wherever that happens (an error
    under warnings-as-errors, and noise otherwise). Call the bioimageio functions in a helper inside
    this block, so that its objects are unreachable when the block ends and collects them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def _package_and_validate(model: SegmentationModel, files: dict[str, Path], path: Path, *, zipped: bool,
                          **description_kw: Any) -> None:
    from bioimageio.spec import InvalidDescr, load_description

    descr = _build_description(model, files, **description_kw)
    _save_package(descr, path, zipped=zipped)
    loaded = load_description(path)
    if isinstance(loaded, InvalidDescr):
        raise ValueError(f"bioimage.io validation of {path} failed:\n{loaded.validation_summary.format()}")


def _weight_formats(weight_formats: Sequence[str] | None) -> tuple[str, ...]:
    if weight_formats is None:
        formats = ["pytorch_state_dict", "torchscript"]
        if modules_installed("onnx", "onnxscript"):
            formats.append("onnx")
        else:
            logger.warning('ONNX weights left out of the package: pip install "evseg[onnx]" to include them.')
        return tuple(formats)
    if isinstance(weight_formats, str):
        weight_formats = [weight_formats]
    formats = [look_up_option(f, WEIGHT_FORMATS, what="weight format") for f in weight_formats]
    return tuple(f for f in WEIGHT_FORMATS if f in formats or f == "pytorch_state_dict")


def _check_destination(path: Path, *, zipped: bool) -> None:
    if zipped:
        if path.is_dir():
            raise FileExistsError(f"{path} is a folder; give a new .zip file name.")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"The folder of {path} does not exist.")
        return
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty folder; give a new folder (or a .zip name).")
    path.parent.mkdir(parents=True, exist_ok=True)


def _halos(network: torch.nn.Module, halo: int | None) -> tuple[int, ...]:
    """Per spatial axis halo (pixels), rounded up so that 2 * halo is a multiple of the divisor."""
    bound = tuple(int(h) for h in network.halo)
    if halo is None:
        wanted = tuple(min(DEFAULT_HALO_PX, b) for b in bound)
    elif isinstance(halo, (int, np.integer)) and not isinstance(halo, bool) and halo >= 1:
        wanted = (int(halo),) * len(bound)
    else:
        raise ValueError(f"`halo` must be a positive integer number of pixels or None, got {halo!r}.")
    out = []
    for h, d in zip(wanted, network.required_divisor, strict=True):
        step = max(1, int(d) // 2)
        out.append(max(1, step * math.ceil(h / step)))
    return tuple(out)


def _test_input(
    model: SegmentationModel, test_image: np.ndarray | None, sizes: tuple[int, ...], rng: Any
) -> np.ndarray:
    """Raw test image ``(1, 1, *sizes)`` float32: the centre of ``test_image`` or a synthetic image."""
    from evseg._validate import check_image

    if test_image is None:
        from evseg.data.synthetic import synthetic_tem_image

        pixel_size = model.pixel_size_nm or 1.56
        image = synthetic_tem_image(tuple(sizes), pixel_size_nm=pixel_size, rng=rng).image
    else:
        image = check_image(test_image, name="test_image", ndim=(2,))
        if any(s < t for s, t in zip(image.shape, sizes, strict=True)):
            raise ValueError(
                f"`test_image` must be at least {sizes} pixels, got {image.shape}; give a larger image "
                "or a smaller test_size."
            )
        starts = [(s - t) // 2 for s, t in zip(image.shape, sizes, strict=True)]
        image = image[tuple(slice(a, a + t) for a, t in zip(starts, sizes, strict=True))]
    return np.asarray(image, dtype=np.float32)[None, None].copy()


def _write_files(
    model: SegmentationModel,
    staging: Path,
    formats: tuple[str, ...],
    *,
    test_image: np.ndarray | None,
    sizes: tuple[int, ...],
    rng: Any,
) -> dict[str, Path]:
    """Write weights, architecture, test tensors, cover and README into ``staging``."""
    import tifffile

    from evseg.data.normalize import normalize_image

    files: dict[str, Path] = {}
    network = model.network
    files["pytorch_state_dict"] = staging / "weights.pt"
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, files["pytorch_state_dict"])
    files["architecture"] = staging / ARCHITECTURE_FILE
    files["architecture"].write_text(network_source(), encoding="utf-8")
    if "torchscript" in formats:
        from evseg.export.torchscript import export_torchscript

        files["torchscript"] = export_torchscript(model, staging / "weights_torchscript.pt", activation=None)
    if "onnx" in formats:
        from evseg.export.onnx import export_onnx

        files["onnx"] = export_onnx(model, staging / "weights.onnx", activation=None)

    raw = _test_input(model, test_image, sizes, rng)
    normalized = normalize_image(raw[0, 0], model.normalization)
    with torch.no_grad():
        logits = network(torch.from_numpy(normalized[None, None]))
    probability = torch.sigmoid(logits).numpy().astype(np.float32)
    files["test_input"] = staging / "test_input.npy"
    files["test_output"] = staging / "test_output.npy"
    np.save(files["test_input"], raw)
    np.save(files["test_output"], probability)
    files["sample_input"] = staging / "sample_input.tif"
    files["sample_output"] = staging / "sample_output.tif"
    tifffile.imwrite(files["sample_input"], raw[0, 0])
    tifffile.imwrite(files["sample_output"], probability[0] if probability.shape[1] > 1 else probability[0, 0])
    files["cover"] = _write_cover(staging / "cover.png", normalized, probability[0, 0])
    files["documentation"] = staging / "README.md"
    files["documentation"].write_text(_readme(model, formats), encoding="utf-8")
    return files


def _write_cover(path: Path, normalized: np.ndarray, probability: np.ndarray) -> Path:
    """A 2:1 PNG: the normalised test input (left) and the foreground probability (right)."""
    from evseg.io.writers import write_png

    def to_uint8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    left = np.repeat(to_uint8(normalized)[..., None], 3, axis=-1)
    p = np.clip(probability, 0.0, 1.0)[..., None]
    # Probability as magenta over black: easy to tell apart from the grey micrograph.
    right = to_uint8(p * np.array([1.0, 0.25, 0.85], dtype=np.float32))
    return write_png(path, np.concatenate([left, right], axis=1))


def _readme(model: SegmentationModel, formats: tuple[str, ...]) -> str:
    network = model.network
    arch = str(model.config.get("arch"))
    px = model.pixel_size_nm
    grid = f"{px:g} nm/pixel" if px is not None else "the pixel grid of the training images (no physical size)"
    norm = model.normalization
    post = model.postprocessing
    n_params = sum(p.numel() for p in network.parameters())
    instances = (
        "watershed from seeds where the foreground is high and the boundary low"
        if len(model.outputs) > 1
        else "threshold, holes filled"
    )
    arch_kwargs = json.dumps(model.config.get("arch_kwargs", {}))
    validation = model.config.get("validation")
    if validation:
        scores = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                           for k, v in validation.items() if not isinstance(v, (dict, list)))
        validation_text = (
            "Scores of this model on its validation images (chosen by image, never used for training), "
            "as recorded by `evseg train`:\n\n| metric | value |\n|---|---|\n" + scores
        )
    else:
        validation_text = "This model folder records no validation scores."
    return f"""# evseg {_ARCH_TITLES.get(arch, arch)}: segmentation of small extracellular vesicles in TEM images

Exported by evseg {__version__} from the model `{model.name}`.

## What it does
The network maps a transmission electron micrograph to per-pixel probabilities of
{", ".join(f"`{o}`" for o in model.outputs)} (channel order). evseg turns them into vesicle instances
({instances}, threshold {post["threshold"]:g}, objects smaller than {post["min_diameter_nm"]:g} nm in
diameter dropped, touching vesicles split by the `{post["split_method"]}` method) and measures them;
those steps are not part of this package.

## Input
- One grey channel, at **{grid}**: rescale images of another pixel size first.
- Pre-processing (in the description): percentile scaling of each image, percentile
  {float(norm.get("low", 1.0)):g} to 0 and percentile {float(norm.get("high", 99.8)):g} to 1 (not clipped).
- Height and width: multiples of {network.required_divisor[0]} pixels (the network down-samples
  {int(math.log2(network.required_divisor[0]))} times); process large images in tiles and crop the
  declared halo from each tile's output.

## Output
Sigmoid probabilities in [0, 1] (the weights return logits; the description's post-processing applies
the sigmoid). Receptive-field bound: {network.halo[0]} pixels; the declared halo is the border evseg
itself discards between tiles.

## Architecture
{_ARCH_TITLES.get(arch, arch)} (`{arch}`, {n_params:,} parameters) with `{arch_kwargs}`.
Weight formats: {", ".join(formats)}. The state-dict weights are rebuilt with `{ARCHITECTURE_FILE}`,
a self-contained copy of evseg's network code (needs only PyTorch).

## Validation
{validation_text}

Validate the model on your own annotated images before relying on it: segment them with
`evseg predict` and score them with `evseg evaluate` (Jaccard, F1 at IoU 0.5, SEG/DET, diameter errors).

## Limitations
Trained for negative-stain TEM images of small EVs; other modalities, stains or pixel sizes need
re-training or fine-tuning (`evseg train --init`).

## Citation
- Gómez-de-Mariscal et al., Scientific Reports 9, 13211 (2019), doi:10.1038/s41598-019-49431-3
- Ronneberger et al., MICCAI 2015, doi:10.1007/978-3-319-24574-4_28
"""


def _build_description(
    model: SegmentationModel,
    files: dict[str, Path],
    *,
    name: str | None,
    description: str | None,
    authors: Sequence[str | Mapping[str, str]],
    license: str,
    min_sizes: tuple[int, ...],
    halos: tuple[int, ...],
) -> Any:
    from bioimageio.spec.model import v0_5 as bio

    network = model.network
    arch = str(model.config.get("arch"))
    px = model.pixel_size_nm
    space = {"unit": "nanometer", "scale": _dyadic(px)} if px is not None else {}
    spatial = ("y", "x")
    input_id = bio.TensorId("raw")
    norm = model.normalization
    inputs = bio.InputTensorDescr(
        id=input_id,
        description="raw grey image (any intensity range) at the model's pixel size",
        axes=[
            bio.BatchAxis(),
            bio.ChannelAxis(channel_names=[bio.Identifier("grey")]),
            *(
                bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=m, step=int(d)), **space)
                for a, m, d in zip(spatial, min_sizes, network.required_divisor, strict=True)
            ),
        ],
        test_tensor=bio.FileDescr(source=files["test_input"]),
        sample_tensor=bio.FileDescr(source=files["sample_input"]),
        data=bio.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[
            bio.ScaleRangeDescr(
                kwargs=bio.ScaleRangeKwargs(
                    axes=[bio.AxisId(a) for a in spatial],
                    min_percentile=float(norm.get("low", 1.0)),
                    max_percentile=float(norm.get("high", 99.8)),
                    eps=1e-6,
                )
            )
        ],
    )
    outputs = bio.OutputTensorDescr(
        id=bio.TensorId("probability"),
        description="sigmoid probability per output channel (channel 0: foreground)",
        axes=[
            bio.BatchAxis(),
            bio.ChannelAxis(channel_names=[bio.Identifier(_identifier(o)) for o in model.outputs]),
            *(
                bio.SpaceOutputAxisWithHalo(
                    id=bio.AxisId(a), size=bio.SizeReference(tensor_id=input_id, axis_id=bio.AxisId(a)), halo=h, **space
                )
                for a, h in zip(spatial, halos, strict=True)
            ),
        ],
        test_tensor=bio.FileDescr(source=files["test_output"]),
        sample_tensor=bio.FileDescr(source=files["sample_output"]),
        data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[bio.SigmoidDescr()],
    )
    torch_version = bio.Version(torch.__version__.split("+")[0])
    weights: dict[str, Any] = {
        "pytorch_state_dict": bio.PytorchStateDictWeightsDescr(
            source=files["pytorch_state_dict"],
            architecture=bio.ArchitectureFromFileDescr(
                source=files["architecture"],
                callable=bio.Identifier(_ARCH_CALLABLES[arch]),
                kwargs=dict(model.config.get("arch_kwargs", {})),
            ),
            pytorch_version=torch_version,
            comment=f"trained with evseg; rebuilt with {ARCHITECTURE_FILE} (a copy of evseg's network code)",
        )
    }
    if "torchscript" in files:
        weights["torchscript"] = bio.TorchscriptWeightsDescr(
            source=files["torchscript"], pytorch_version=torch_version, parent="pytorch_state_dict",
            comment="torch.jit.trace of the network (logits)",
        )
    if "onnx" in files:
        weights["onnx"] = bio.OnnxWeightsDescr(
            source=files["onnx"], opset_version=_onnx_opset(files["onnx"]), parent="pytorch_state_dict",
            comment="torch.onnx.export(dynamo=True) of the network (logits)",
        )
    title = _ARCH_TITLES.get(arch, arch)
    label = "sEV segmentation" if model.path is None else model.name
    default_name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", f"evseg {title} {label}")
    default_description = (
        f"{title} that segments small extracellular vesicles (sEVs, 30-200 nm) in transmission electron "
        f"micrographs{f' at {px:g} nm/pixel' if px is not None else ''}; outputs "
        f"{' and '.join(model.outputs)} probabilities. Exported by evseg {__version__}."
    )
    return bio.ModelDescr(
        name=name or default_name,
        description=description or default_description,
        authors=[bio.Author(**_author(a)) for a in authors],
        cite=[bio.CiteEntry(text=text, doi=bio.Doi(doi)) for text, doi in CITATIONS],
        license=bio.LicenseId(license),
        tags=["segmentation", "instance-segmentation", "electron-microscopy", "tem", "extracellular-vesicles",
              "2d", "pytorch", "unet", arch],
        documentation=bio.FileDescr(source=files["documentation"]),
        covers=[bio.FileDescr(source=files["cover"])],
        inputs=[inputs],
        outputs=[outputs],
        weights=bio.WeightsDescr(**weights),
        version=bio.Version("0.1.0"),
        config={"evseg": {"evseg_version": __version__, **_json_safe(model.config)}},
    )


def _dyadic(pixel_size_nm: float) -> float:
    """``pixel_size_nm`` rounded to a multiple of 2**-24 nm (a relative change below 1e-7).

    bioimage.io tools compute an output axis size as ``int(size * ref_scale / scale)``, which for
    a scale such as 1.56 gives 95 for 96 (``96 * 1.56 / 1.56 == 95.99999999999999``). With a scale of
    few significant bits that product and quotient are exact for any axis size below 2**28.
    """
    return round(float(pixel_size_nm) * 2**24) / 2**24


def _identifier(text: str) -> str:
    ident = re.sub(r"\W", "_", str(text)).strip("_").lower() or "channel"
    return ident if not ident[0].isdigit() else f"c{ident}"


def _author(author: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(author, str):
        return {"name": author}
    if isinstance(author, Mapping) and "name" in author:
        return {k: str(v) for k, v in author.items() if k in ("name", "affiliation", "email", "orcid")}
    raise ValueError(f"Each entry of `authors` must be a name or a dict with a 'name', got {author!r}.")


def _json_safe(config: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config, default=str))


def _onnx_opset(path: Path) -> int:
    onnx = import_extra("onnx", extra="onnx", purpose="ONNX weights")
    proto = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))


def _save_package(descr: Any, path: Path, *, zipped: bool) -> None:
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    if zipped:
        with atomic_path(path) as tmp:
            save_bioimageio_package(descr, output_path=tmp)
        return
    staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
    staging.mkdir()  # (not tempfile.mkdtemp: the package folder keeps the usual permissions)
    try:
        save_bioimageio_package_as_folder(descr, output_path=staging)
        if path.is_dir():
            path.rmdir()  # empty (checked): replaced by the finished folder
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
