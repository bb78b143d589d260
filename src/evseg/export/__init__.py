"""evseg.export: a model as ONNX, TorchScript or a BioImage Model Zoo (bioimage.io) package.

The exporters import their optional dependencies when called: ``pip install "evseg[onnx]"``
(onnx, onnxscript, onnxruntime) and ``pip install "evseg[bioimageio]"`` (bioimageio.spec).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evseg._registry import look_up_option
from evseg.export._common import MissingExtraError

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

__all__ = ["EXPORT_FORMATS", "MissingExtraError", "export_model"]

#: Formats accepted by :func:`export_model` (and ``evseg export --format``).
EXPORT_FORMATS = ("bioimageio", "onnx", "torchscript")


def export_model(
    model: SegmentationModel | str | Path,
    path: str | Path,
    *,
    format: str,
    activation: str | None = "sigmoid",
) -> Path:
    """Export a model in one of :data:`EXPORT_FORMATS`.

    Parameters
    ----------
    model : SegmentationModel, str or path
        A model, a bundled model name (``"sev"``) or a model folder.
    path : path-like
        ``"onnx"``: the ``.onnx`` file; ``"torchscript"``: the ``.pt`` file; ``"bioimageio"``: a
        package folder, or a zipped package when it ends in ``.zip``.
    format : {"bioimageio", "onnx", "torchscript"}
        See :func:`evseg.export.onnx.export_onnx`, :func:`evseg.export.torchscript.export_torchscript`
        and :func:`evseg.export.bioimageio.export_bioimageio`.
    activation : {"sigmoid", None}
        ONNX and TorchScript: output sigmoid probabilities, or logits with ``None``. bioimage.io
        packages always hold logit weights with a sigmoid post-processing step.

    Returns
    -------
    Path
        What was written.

    Raises
    ------
    ValueError
        For an unknown format.
    MissingExtraError
        If the format's optional dependencies are not installed (the message names the extra).
    """
    format = look_up_option(format, EXPORT_FORMATS, what="export format")
    if format == "onnx":
        from evseg.export.onnx import export_onnx

        return export_onnx(model, path, activation=activation)
    if format == "torchscript":
        from evseg.export.torchscript import export_torchscript

        return export_torchscript(model, path, activation=activation)
    from evseg.export.bioimageio import export_bioimageio

    return export_bioimageio(model, path)
