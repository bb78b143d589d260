"""Build networks by architecture name and get their JSON-serialisable configuration back."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from torch import nn

from evseg._registry import look_up_option
from evseg.models.unet import FRUNet, UNet

__all__ = ["build_model", "list_models", "model_config"]

_ARCHS: MappingProxyType[str, type[nn.Module]] = MappingProxyType({"unet": UNet, "frunet": FRUNet})


def list_models() -> list[str]:
    """Return the architecture names accepted by :func:`build_model`.

    Examples
    --------
    >>> list_models()
    ['frunet', 'unet']
    """
    return sorted(_ARCHS)


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build the network ``arch`` from its constructor keyword arguments.

    Parameters
    ----------
    arch : str
        One of :func:`list_models` (``"unet"``, ``"frunet"``).
    **kwargs
        Constructor keyword arguments of the architecture (e.g. ``depth=3``); missing ones take
        the architecture's defaults.

    Returns
    -------
    nn.Module
        A freshly initialised network (training mode).

    Raises
    ------
    ValueError
        If ``arch`` is unknown (the message lists the options and the closest match).
    TypeError
        If a keyword is not a constructor argument of ``arch``.

    Examples
    --------
    >>> build_model("unet", depth=2, base_filters=4).config["depth"]
    2
    """
    arch = look_up_option(arch, list_models(), what="model architecture")
    return _ARCHS[arch](**kwargs)


def model_config(model: nn.Module) -> dict[str, Any]:
    """Return ``{"arch": name, "kwargs": constructor kwargs}`` for a network built here.

    The result survives ``json.dumps``/``json.loads`` and
    ``build_model(cfg["arch"], **cfg["kwargs"])`` rebuilds the same architecture.

    Parameters
    ----------
    model : nn.Module
        A :class:`~evseg.models.UNet` or :class:`~evseg.models.FRUNet`.

    Returns
    -------
    dict
        ``{"arch": str, "kwargs": dict}``.

    Raises
    ------
    TypeError
        If ``model`` is not one of the registered architectures.
    """
    for name, cls in _ARCHS.items():
        if type(model) is cls:
            return {"arch": name, "kwargs": model.config}
    raise TypeError(
        f"`model` must be one of the evseg architectures ({', '.join(list_models())}), "
        f"got {type(model).__name__}."
    )
