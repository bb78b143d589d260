"""Export a model's network to TorchScript (``torch.jit.trace``), the format deepImageJ runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evseg.export._common import (
    ExportWrapper,
    as_segmentation_model,
    check_activation,
    example_input,
    max_abs_difference,
    quiet_export,
)
from evseg.io.atomic import atomic_path

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

logger = logging.getLogger(__name__)

__all__ = ["TORCHSCRIPT_TOLERANCE", "export_torchscript", "load_torchscript"]

#: Largest absolute difference to eager PyTorch that :func:`export_torchscript` accepts.
TORCHSCRIPT_TOLERANCE = 1e-5


def export_torchscript(
    model: SegmentationModel | str | Path,
    path: str | Path,
    *,
    activation: str | None = "sigmoid",
    check: bool = True,
) -> Path:
    """Write the model's network as a traced TorchScript module (``torch.jit.save``).

    TorchScript is deprecated in PyTorch 2.10+ but is still what deepImageJ (and bioimage.io's
    ``torchscript`` weights) run, so it is produced with ``torch.jit.trace``; torch's deprecation
    and tracer warnings are silenced during the trace only. The traced module takes
    ``(B, C, *spatial)`` float32 (normalised, on the model's grid) of any batch size and **spatial
    sizes that are multiples of** ``model.network.required_divisor``: the network's internal
    padding for other sizes is a shape-dependent branch that tracing freezes to "no padding".
    It returns sigmoid probabilities (``activation="sigmoid"``) or logits (``None``),
    ``(B, K, *spatial)``.

    Parameters
    ----------
    model : SegmentationModel, str or path
        A model, a bundled model name (``"sev"``) or a model folder.
    path : path-like
        The file to write (``.pt``; atomically, its folder must exist).
    activation : {"sigmoid", None}
        ``"sigmoid"``: probabilities; ``None``: logits.
    check : bool
        Reload the file and compare it with eager PyTorch on an input of another size and batch
        than the trace example (largest absolute difference <= 1e-5).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    RuntimeError
        If the check finds a larger difference.
    """
    model = as_segmentation_model(model)
    activation = check_activation(activation)
    path = Path(path)
    wrapper = ExportWrapper(model.network.eval(), activation).eval()
    x = example_input(model.network, blocks=2, batch=1)
    with torch.no_grad(), quiet_export():
        traced = torch.jit.trace(wrapper, (x,), check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
    if check:
        reloaded = load_torchscript(path)
        x2 = example_input(model.network, blocks=3, batch=2, seed=1)
        with torch.no_grad():
            difference = max_abs_difference(reloaded(x2), wrapper(x2))
        if not difference <= TORCHSCRIPT_TOLERANCE:
            raise RuntimeError(
                f"{path}: the traced TorchScript module differs from PyTorch by up to {difference:.3g} "
                f"(> {TORCHSCRIPT_TOLERANCE:g}); the export is not faithful."
            )
        logger.info("TorchScript export checked against PyTorch: max |difference| = %.2g", difference)
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file on the CPU, in eval mode (torch's deprecation warning silenced)."""
    with quiet_export():
        module = torch.jit.load(str(path), map_location="cpu")
    return module.eval()
