"""Shared pieces of the exporters: optional-extra imports, model loading, the export wrapper, quiet tracing."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import nn

from evseg._registry import look_up_option

if TYPE_CHECKING:
    from evseg.models.store import SegmentationModel

#: Activations an exported network may end with (``None``: the raw logits).
ACTIVATIONS = ("sigmoid",)

# Loggers of torch's ONNX exporter that report, at WARNING level, things irrelevant to evseg's
# networks (e.g. "torchvision is not installed. Skipping torchvision::nms").
_NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration",)


class MissingExtraError(ImportError, RuntimeError):
    """An optional dependency is not installed; the message names the pip extra that brings it.

    It is an :class:`ImportError` (what it is) and a :class:`RuntimeError` (so that the command
    line reports it as a clean error message).
    """


def import_extra(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import the optional dependency ``module``, or raise an error that says how to install it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"onnxruntime"``.
    extra : str
        The evseg extra that installs it, e.g. ``"onnx"`` for ``pip install "evseg[onnx]"``.
    purpose : str
        What needs it, for the message (e.g. ``"ONNX export"``).

    Returns
    -------
    module

    Raises
    ------
    MissingExtraError
        If ``module`` cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the optional package {module!r}, which is not installed. "
            f'Install it with: pip install "evseg[{extra}]"',
            name=module,
        ) from exc


def modules_installed(*modules: str) -> bool:
    """Whether every module in ``modules`` can be imported (checked without importing it)."""
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
            return False
    return True


def as_segmentation_model(model: SegmentationModel | str | Path) -> SegmentationModel:
    """Return ``model`` itself, or load it (a bundled model name or a model folder)."""
    from evseg.models.store import SegmentationModel, load_model

    if isinstance(model, SegmentationModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    raise TypeError(
        f"`model` must be a SegmentationModel, a bundled model name or a model folder, got {type(model).__name__}."
    )


def check_activation(activation: str | None) -> str | None:
    """Return ``activation`` if it is ``None`` or one of :data:`ACTIVATIONS`, else raise."""
    if activation is None:
        return None
    return look_up_option(activation, ACTIVATIONS, what="activation (or None for logits)")


class ExportWrapper(nn.Module):
    """The network, optionally followed by a sigmoid: what the exporters trace.

    Parameters
    ----------
    network : nn.Module
        An evseg U-Net/FRU-Net returning logits ``(B, K, *spatial)``.
    activation : {"sigmoid", None}
        ``"sigmoid"``: the wrapper returns probabilities in [0, 1]; ``None``: logits.
    """

    def __init__(self, network: nn.Module, activation: str | None) -> None:
        super().__init__()
        self.network = network
        self.activation = check_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits or probabilities ``(B, K, *spatial)`` for ``x`` ``(B, C, *spatial)``."""
        y = self.network(x)
        return torch.sigmoid(y) if self.activation == "sigmoid" else y


def example_input(network: nn.Module, *, blocks: int = 2, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random float32 input ``(batch, C, *spatial)`` whose sizes are ``blocks`` times the divisor."""
    divisor = tuple(network.required_divisor)
    in_channels = int(network.config["in_channels"])
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((batch, in_channels, *(blocks * d for d in divisor)), generator=gen)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the warnings and log lines that torch's exporters emit about themselves.

    torch's tracing and export machinery raises ``DeprecationWarning``/``FutureWarning`` about its
    own internals (e.g. ``torch.jit.trace`` is deprecated in torch 2.13, pytree ``LeafSpec``) and
    ``TracerWarning`` for the network's shape checks (harmless here: the exported graph is checked
    against eager PyTorch afterwards). They say nothing actionable to an evseg user, and under
    warnings-as-errors they would abort the export, so they are ignored inside this block only.
    The exporter's WARNING log lines about unrelated optional packages are muted for the same span.
    """
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute element-wise difference of two tensors of the same shape."""
    if a.shape != b.shape:
        raise RuntimeError(f"exported model returned shape {tuple(a.shape)}, PyTorch {tuple(b.shape)}")
    return float((a.float() - b.float()).abs().max())
