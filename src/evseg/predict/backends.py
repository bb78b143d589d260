"""Choose the runtime of a model's network (eager PyTorch, ONNX Runtime or OpenVINO) and build its predictor."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evseg._registry import look_up_option

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "BACKEND_ENV_VAR",
    "available_backends",
    "make_predictor",
    "onnx_cache_path",
    "onnx_predictor",
    "openvino_predictor",
    "resolve_backend",
    "weights_sha256",
]

#: Names accepted by ``backend=``; ``"auto"`` resolves to one of the others (see :func:`resolve_backend`).
BACKENDS = ("auto", "torch", "onnx", "openvino")
#: Environment variable that overrides what ``backend="auto"`` resolves to.
BACKEND_ENV_VAR = "EVSEG_BACKEND"
#: Modules the ONNX Runtime backend needs (export + runtime), installed by ``pip install "evseg[onnx]"``.
_ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")
#: Modules the OpenVINO backend needs (ONNX export + runtime), installed by ``pip install "evseg[openvino]"``.
_OPENVINO_MODULES = ("onnx", "onnxscript", "openvino")
#: Metadata key of a cached ONNX file: the cache key it was exported for.
_CACHE_KEY = "evseg_cache_key"

Predictor = Callable[[np.ndarray], np.ndarray]


def available_backends() -> tuple[str, ...]:
    """The concrete backends usable here: ``"torch"`` always, ``"onnx"`` and ``"openvino"`` when their extras are.

    Returns
    -------
    tuple of str
        E.g. ``("torch", "onnx", "openvino")``.
    """
    from evseg.export._common import modules_installed

    found = ["torch"]
    if modules_installed(*_ONNX_MODULES):
        found.append("onnx")
    if modules_installed(*_OPENVINO_MODULES):
        found.append("openvino")
    return tuple(found)


def resolve_backend(backend: str = "auto", *, precision: str = "auto") -> str:
    """Turn ``backend`` into ``"torch"``, ``"onnx"`` or ``"openvino"``.

    ``"auto"`` picks the fastest runtime installed: OpenVINO (``evseg[openvino]``; bf16 or fp32 as
    ``precision`` says), else ONNX Runtime when the network is to run in fp32 (``precision="fp32"``,
    or ``"auto"`` on a CPU without native bf16), else PyTorch. Measured on a 2-core Zen 4 CPU (AVX-512
    with native bf16), 2048² image, FRU-Net base 16 (``benchmarks/results/speed.md``): OpenVINO fuses
    batch norm and activations into the convolutions and is 2–3× faster than eager PyTorch bf16;
    ONNX Runtime fp32 is 1.5–1.6× faster than PyTorch fp32 and equal to it within 4e-6, but against
    PyTorch bf16 autocast it is a wash that would not repay the first-use export of 10–15 s. bf16
    (either runtime) differs from fp32 by up to ~0.03 in probability at a few pixels on object
    borders (99.9 % of pixels within 0.01). The environment variable ``EVSEG_BACKEND`` (one of the
    concrete names) replaces what ``"auto"`` would pick, e.g. ``EVSEG_BACKEND=torch`` to skip the
    first-use ONNX export in short scripts and tests.

    Parameters
    ----------
    backend : {"auto", "torch", "onnx", "openvino"}
    precision : {"auto", "fp32", "bf16"}
        ONNX Runtime runs fp32 only.

    Returns
    -------
    str
        ``"torch"``, ``"onnx"`` or ``"openvino"``.

    Raises
    ------
    ValueError
        For an unknown name, or ``backend="onnx"`` with ``precision="bf16"``.
    MissingExtraError
        If ``backend`` names a runtime whose extra is not installed (``pip install "evseg[onnx]"``,
        ``"evseg[openvino]"``).
    """
    from evseg.export._common import import_extra
    from evseg.predict.pipeline import resolve_precision

    backend = look_up_option(backend, BACKENDS, what="inference backend")
    precision = look_up_option(precision, ("auto", "fp32", "bf16"), what="precision")
    if backend == "auto" and os.environ.get(BACKEND_ENV_VAR):
        backend = look_up_option(os.environ[BACKEND_ENV_VAR], BACKENDS[1:], what=f"${BACKEND_ENV_VAR} backend")
    if backend == "onnx":
        if precision == "bf16":
            raise ValueError(
                "precision='bf16' is not available with backend='onnx' (ONNX Runtime runs fp32 here); "
                "use precision='fp32' or 'auto', or backend='torch' or 'openvino'."
            )
        for module in _ONNX_MODULES:
            import_extra(module, extra="onnx", purpose="The ONNX Runtime backend")
        return "onnx"
    if backend == "openvino":
        for module in _OPENVINO_MODULES:
            import_extra(module, extra="openvino", purpose="The OpenVINO backend")
        return "openvino"
    if backend == "auto":
        installed = available_backends()
        if "openvino" in installed:
            return "openvino"
        if resolve_precision(precision) == "fp32" and "onnx" in installed:
            return "onnx"
    return "torch"


def make_predictor(
    model: SegmentationModel,
    *,
    backend: str = "auto",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> Predictor:
    """A predictor callable for :func:`evseg.predict.tiling.tiled_predict` running ``model``'s network.

    Parameters
    ----------
    model : SegmentationModel
    backend : {"auto", "torch", "onnx", "openvino"}
        See :func:`resolve_backend`.
    precision : {"auto", "fp32", "bf16"}
        Network precision (``"auto"``: bf16 where the CPU runs it natively); ONNX Runtime is fp32.
    cache_dir : path-like, optional
        ONNX Runtime and OpenVINO: where exported models are cached (see :func:`onnx_cache_path`).
    threads : int, optional
        ONNX Runtime and OpenVINO: threads (default: ``torch.get_num_threads()``, i.e. the cores).

    Returns
    -------
    callable
        ``predictor(batch: ndarray float32 (B, C, *spatial)) -> ndarray float32 (B, K, *spatial)``
        sigmoid probabilities; any spatial size (the ONNX backend pads to the network's divisor as
        the network itself does, and crops back).

    Raises
    ------
    ValueError, MissingExtraError
        See :func:`resolve_backend`.
    """
    from evseg.predict.pipeline import resolve_precision
    from evseg.predict.tiling import torch_predictor

    chosen = resolve_backend(backend, precision=precision)
    if chosen == "onnx":
        logger.debug("network backend: ONNX Runtime (fp32)")
        return onnx_predictor(model, cache_dir=cache_dir, threads=threads)
    resolved = resolve_precision(precision)
    if chosen == "openvino":
        logger.debug("network backend: OpenVINO (%s)", resolved)
        return openvino_predictor(model, precision=resolved, cache_dir=cache_dir, threads=threads)
    logger.debug("network backend: PyTorch (%s)", resolved)
    return torch_predictor(model.network, precision=resolved)


def weights_sha256(model: SegmentationModel) -> str:
    """SHA-256 (hex) of the network's architecture and weights as they are in memory.

    Hashes ``arch``, ``arch_kwargs`` and every state-dict entry (name, dtype, shape, bytes), so
    two models share a hash exactly when they compute the same function.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([model.config.get("arch"), model.config.get("arch_kwargs")], sort_keys=True).encode())
    for name, tensor in sorted(model.network.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _default_cache_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"evseg-onnx-cache-{uid}"


def onnx_cache_path(model: SegmentationModel, *, cache_dir: str | Path | None = None) -> Path:
    """The ONNX file of ``model`` (sigmoid output), exported on first use and cached.

    The file name holds a key made of the weights' SHA-256 (:func:`weights_sha256`) and the
    torch and evseg versions, so a retrained model or an upgrade never reuses a stale export.

    Parameters
    ----------
    model : SegmentationModel
    cache_dir : path-like, optional
        Default: ``<temp dir>/evseg-onnx-cache-<uid>`` (created with mode 0700).

    Returns
    -------
    Path
        An existing ``.onnx`` file.

    Raises
    ------
    MissingExtraError
        If the ONNX exporter is not installed (``pip install "evseg[onnx]"``).
    """
    import torch

    from evseg import __version__
    from evseg.export.onnx import export_onnx

    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_source = f"{weights_sha256(model)}|torch {torch.__version__}|evseg {__version__}|sigmoid"
    key = hashlib.sha256(key_source.encode()).hexdigest()[:32]
    path = folder / f"{model.config.get('arch', 'model')}-{key}.onnx"
    if path.is_file():
        return path
    with _file_lock(path.with_suffix(".lock")):  # parallel workers export once, the others wait
        if not path.is_file():
            logger.info("exporting %s to ONNX for ONNX Runtime (once; cached in %s)", model.name, folder)
            export_onnx(model, path, activation="sigmoid", metadata={_CACHE_KEY: key}, check=True)
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; no lock where it is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent exports only waste time, the atomic write keeps files whole
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _divisor_padding(
    shape: tuple[int, ...], divisor: tuple[int, ...]
) -> tuple[list[tuple[int, int]], str, tuple[slice, ...]] | None:
    """Padding that makes the spatial sizes multiples of ``divisor``, as ``UNet._pad`` does it.

    Returns ``None`` when no padding is needed, else (numpy pad widths for ``(B, C, *spatial)``,
    numpy mode, crop back): centred, ``reflect`` where every axis can be reflected, else ``edge``.
    """
    sizes = shape[2:]
    extra = [(-s) % d for s, d in zip(sizes, divisor, strict=True)]
    if not any(extra):
        return None
    reflectable = all(e - e // 2 < s for e, s in zip(extra, sizes, strict=True))
    widths = [(0, 0), (0, 0), *((e // 2, e - e // 2) for e in extra)]
    crop = (slice(None), slice(None), *(slice(e // 2, e // 2 + s) for e, s in zip(extra, sizes, strict=True)))
    return widths, ("reflect" if reflectable else "edge"), crop


def _padded_predictor(run: Callable[[np.ndarray], np.ndarray], divisor: tuple[int, ...]) -> Predictor:
    """Wrap ``run`` (an exported network on float32 batches) to pad inputs to ``divisor`` and crop outputs back."""

    def predict(batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        padding = _divisor_padding(x.shape, divisor)
        if padding is not None:
            widths, mode, crop = padding
            x = np.pad(x, widths, mode=mode)
        y = run(x)
        if padding is not None:
            y = y[crop]
        return np.ascontiguousarray(y, dtype=np.float32)

    return predict


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int) -> Any:
    """One ``onnxruntime.InferenceSession`` per (file, threads), reused across images."""
    from evseg.export.onnx import onnx_runtime_session

    return onnx_runtime_session(path, threads=threads)


def onnx_predictor(
    model: SegmentationModel, *, cache_dir: str | Path | None = None, threads: int | None = None
) -> Predictor:
    """A predictor running ``model`` in ONNX Runtime (CPU, fp32), exporting it on first use.

    Parameters
    ----------
    model : SegmentationModel
    cache_dir : path-like, optional
        See :func:`onnx_cache_path`.
    threads : int, optional
        Intra-op threads; default ``torch.get_num_threads()`` (all cores, unless a worker pool
        lowered it for its processes).

    Returns
    -------
    callable
        ``predictor(batch (B, C, *spatial) float32) -> (B, K, *spatial) float32`` probabilities,
        equal to PyTorch fp32 within 1e-4 for any spatial size.

    Raises
    ------
    MissingExtraError
        If ``onnx``, ``onnxscript`` or ``onnxruntime`` is missing (``pip install "evseg[onnx]"``).
    """
    import torch

    from evseg.export.onnx import INPUT_NAME

    path = onnx_cache_path(model, cache_dir=cache_dir)
    session = _session(str(path), int(threads) if threads is not None else torch.get_num_threads())
    divisor = tuple(int(d) for d in model.network.required_divisor)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT_NAME: x})[0]

    return _padded_predictor(run, divisor)


@functools.lru_cache(maxsize=2)
def _openvino_compiled(path: str, shape: tuple[int, ...], precision: str, threads: int) -> Any:
    """One OpenVINO CPU model compiled for a fixed input ``shape``, reused across tiles and images.

    Static shapes let OpenVINO pick its fastest kernels. Each compiled shape holds its own
    activation memory (150–300 MB for a 900² tile of the default model), so only two are kept:
    the tiles of an image share one shape (batches run tile by tile), and a new image size costs
    one compilation (~0.3 s).
    """
    import openvino

    core = openvino.Core()
    network = core.read_model(path)
    network.reshape(list(shape))
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",  # explicit: OV defaults to bf16
        "INFERENCE_NUM_THREADS": int(threads),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    return core.compile_model(network, "CPU", config)


def openvino_predictor(
    model: SegmentationModel,
    *,
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> Predictor:
    """A predictor running ``model`` in OpenVINO (CPU), from its cached ONNX export.

    Parameters
    ----------
    model : SegmentationModel
    precision : {"auto", "fp32", "bf16"}
        Inference precision (``"auto"``: bf16 where the CPU runs it natively). fp32 equals PyTorch
        fp32 within 1e-5; bf16 within ~0.03 at a few border pixels.
    cache_dir : path-like, optional
        See :func:`onnx_cache_path`.
    threads : int, optional
        Inference threads; default ``torch.get_num_threads()``.

    Returns
    -------
    callable
        ``predictor(batch (B, C, *spatial) float32) -> (B, K, *spatial) float32`` probabilities for
        any spatial size (padded to the network's divisor and cropped back, as the network does).

    Raises
    ------
    MissingExtraError
        If ``onnx``, ``onnxscript`` or ``openvino`` is missing (``pip install "evseg[openvino]"``).
    """
    import torch

    from evseg.export._common import import_extra
    from evseg.predict.pipeline import resolve_precision

    for module in _OPENVINO_MODULES:
        import_extra(module, extra="openvino", purpose="The OpenVINO backend")
    resolved = resolve_precision(precision)
    path = str(onnx_cache_path(model, cache_dir=cache_dir))
    n_threads = int(threads) if threads is not None else torch.get_num_threads()
    divisor = tuple(int(d) for d in model.network.required_divisor)

    def run(x: np.ndarray) -> np.ndarray:
        compiled = _openvino_compiled(path, (1, *x.shape[1:]), resolved, n_threads)
        return np.concatenate([compiled(x[i : i + 1])[0] for i in range(x.shape[0])])

    return _padded_predictor(run, divisor)
