"""Export a model's network to ONNX (dynamic batch and spatial sizes) and check it against PyTorch."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evseg import __version__
from evseg.export._common import (
    ExportWrapper,
    as_segmentation_model,
    check_activation,
    example_input,
    import_extra,
    max_abs_difference,
    quiet_export,
)
from evseg.io.atomic import atomic_path

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

logger = logging.getLogger(__name__)

__all__ = ["INPUT_NAME", "ONNX_TOLERANCE", "check_onnx", "export_onnx", "onnx_metadata", "onnx_runtime_session"]

#: Name of the ONNX graph's input (``(batch, C, *spatial)`` float32).
INPUT_NAME = "image"
#: Largest absolute difference to PyTorch fp32 that :func:`export_onnx` accepts when checking.
ONNX_TOLERANCE = 1e-4
_EXTRA = "onnx"


def _output_name(activation: str | None) -> str:
    return "probability" if activation == "sigmoid" else "logits"


def onnx_metadata(model: SegmentationModel, *, activation: str | None) -> dict[str, str]:
    """Key/value strings stored in the ONNX file so that it can be used without evseg.

    Keys: ``evseg_version``, ``arch``, ``arch_kwargs`` (JSON), ``required_divisor`` (JSON list,
    one per spatial axis), ``output`` (``"sigmoid probabilities"`` or ``"logits"``),
    ``output_channels`` (JSON list of names), ``pixel_size_nm`` (JSON, ``null`` = pixels),
    ``normalization`` (JSON) and ``halo`` (JSON list, pixels).
    """
    network = model.network
    return {
        "evseg_version": __version__,
        "arch": str(model.config.get("arch")),
        "arch_kwargs": json.dumps(model.config.get("arch_kwargs", {}), sort_keys=True),
        "required_divisor": json.dumps(list(network.required_divisor)),
        "halo": json.dumps(list(network.halo)),
        "output": "sigmoid probabilities" if activation == "sigmoid" else "logits",
        "output_channels": json.dumps(model.outputs),
        "pixel_size_nm": json.dumps(model.pixel_size_nm),
        "normalization": json.dumps(model.normalization, sort_keys=True),
    }


def _dynamic_shapes(network: torch.nn.Module) -> dict[str, dict[int, object]]:
    """Batch free; each spatial size a multiple of the network's divisor (``16*y_blocks`` etc.)."""
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=4096)}
    names = "zyx"[3 - network.spatial_dims :]
    for axis, (name, div) in enumerate(zip(names, network.required_divisor, strict=True), start=2):
        dims[axis] = div * torch.export.Dim(f"{name}_blocks", min=1, max=65536 // div)
    return {"x": dims}


def export_onnx(
    model: SegmentationModel | str | Path,
    path: str | Path,
    *,
    activation: str | None = "sigmoid",
    metadata: dict[str, str] | None = None,
    check: bool = True,
) -> Path:
    """Write the model's network as an ONNX file with a free batch size and free spatial sizes.

    The graph input ``"image"`` is ``(batch, C, *spatial)`` float32, already normalised as the model
    expects (``model.normalization``, percentile scaling) and on the model's pixel grid. **Each
    spatial size must be a multiple of** ``model.network.required_divisor`` (16 for the 4-level
    FRU-Net): the network pads other sizes internally in PyTorch, but that shape-dependent branch
    is not part of the exported graph (the dimension names say it, e.g. ``16*y_blocks``); pad
    (reflect) and crop around it, as :func:`evseg.predict.backends.onnx_predictor` does. The output
    is ``"probability"`` (sigmoid applied, in [0, 1]) or ``"logits"`` with ``activation=None``,
    ``(batch, K, *spatial)`` with channel 0 the foreground. The model's pixel size, normalisation,
    output names and divisor are stored as ONNX metadata (:func:`onnx_metadata`).

    Parameters
    ----------
    model : SegmentationModel, str or path
        A model, a bundled model name (``"sev"``) or a model folder.
    path : path-like
        The ``.onnx`` file to write (atomically; its folder must exist).
    activation : {"sigmoid", None}
        ``"sigmoid"``: probabilities; ``None``: logits.
    metadata : dict of str, optional
        Extra metadata entries (override the defaults).
    check : bool
        Run the file in ONNX Runtime on a random input of another size and batch than the export
        example and compare with PyTorch fp32 (largest absolute difference <= 1e-4).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MissingExtraError
        If ``onnx``/``onnxscript`` (or ``onnxruntime`` for ``check``) are not installed:
        ``pip install "evseg[onnx]"``.
    RuntimeError
        If the check finds a larger difference.
    """
    import_extra("onnxscript", extra=_EXTRA, purpose="ONNX export")
    import_extra("onnx", extra=_EXTRA, purpose="ONNX export")
    if check:
        import_extra("onnxruntime", extra=_EXTRA, purpose="Checking an ONNX export")
    model = as_segmentation_model(model)
    activation = check_activation(activation)
    path = Path(path)
    network = model.network.eval()
    wrapper = ExportWrapper(network, activation).eval()
    x = example_input(network, blocks=2, batch=1)
    with torch.no_grad(), quiet_export():
        program = torch.onnx.export(
            wrapper,
            (x,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[_output_name(activation)],
            dynamic_shapes=_dynamic_shapes(network),
            optimize=True,
            verbose=False,
        )
    if program is None:  # only when `f` is given, which it is not
        raise RuntimeError("torch.onnx.export returned no program")
    program.model.metadata_props.update({**onnx_metadata(model, activation=activation), **(metadata or {})})
    program.model.doc_string = (
        f"evseg {model.config.get('arch')} network; input 'image' (batch, C, *spatial) float32, spatial sizes "
        f"multiples of {list(network.required_divisor)}; output '{_output_name(activation)}'."
    )
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
    if check:
        difference = check_onnx(path, wrapper)
        logger.info("ONNX export checked against PyTorch fp32: max |difference| = %.2g", difference)
    return path


def onnx_runtime_session(path: str | Path, *, threads: int | None = None) -> Any:
    """Open an ONNX Runtime CPU session for ``path``.

    Parameters
    ----------
    path : path-like
        An ``.onnx`` file.
    threads : int or None
        Intra-op threads; ``None`` uses every core available to this process.

    Returns
    -------
    onnxruntime.InferenceSession
        Intra-op threads as asked, one inter-op thread, all graph optimisations, errors-only logging.

    Raises
    ------
    MissingExtraError
        If ``onnxruntime`` is not installed.
    """
    ort = import_extra("onnxruntime", extra=_EXTRA, purpose="The ONNX Runtime backend")
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only, for this session
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def check_onnx(path: str | Path, reference: torch.nn.Module, *, tolerance: float = ONNX_TOLERANCE) -> float:
    """Compare an ONNX file with the PyTorch module it came from on a random input.

    The input has batch 2 and spatial sizes of 3 × the divisor (the export example has batch 1
    and 2 × the divisor), so a graph frozen to the example shape fails.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file.
    reference : nn.Module
        The exported module (an :class:`~evseg.export._common.ExportWrapper`), in eval mode.
    tolerance : float
        Largest accepted absolute difference.

    Returns
    -------
    float
        The largest absolute difference found.

    Raises
    ------
    RuntimeError
        If the difference exceeds ``tolerance`` or the shapes differ.
    """
    network = reference.network if isinstance(reference, ExportWrapper) else reference
    x = example_input(network, blocks=3, batch=2, seed=1)
    session = onnx_runtime_session(path)
    got = session.run(None, {INPUT_NAME: x.numpy()})[0]
    with torch.no_grad():
        want = reference(x)
    difference = max_abs_difference(torch.from_numpy(np.asarray(got)), want)
    if not difference <= tolerance:
        raise RuntimeError(
            f"{path}: ONNX Runtime output differs from PyTorch by up to {difference:.3g} "
            f"(> {tolerance:g}); the export is not faithful."
        )
    return difference
