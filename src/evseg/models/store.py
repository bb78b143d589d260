"""A model is a folder: ``config.json`` (architecture, pixel size, normalisation, thresholds) + ``weights.pt``."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from evseg import __version__
from evseg._registry import look_up_option
from evseg.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Version of the model folder layout; bumped when ``config.json`` changes incompatibly.
SCHEMA_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.pt"

#: Models shipped inside the package (folder names under ``evseg/pretrained``).
BUNDLED_MODELS = ("sev",)

#: Post-processing defaults used when a model folder does not say otherwise.
DEFAULT_POSTPROCESSING: dict[str, Any] = {
    "threshold": 0.5,
    "boundary_threshold": 0.5,
    "min_diameter_nm": 30.0,
    "max_hole_area_nm2": 2000.0,
    "split_method": "radon",
    "min_diameter_px": 5.0,
    "max_hole_area_px": 20.0,
}
# The ``*_px`` sizes apply to models that work in pixels (no pixel size); the ``*_nm`` ones otherwise.


@dataclass
class SegmentationModel:
    """A trained network with everything needed to apply it.

    Attributes
    ----------
    network : torch.nn.Module
        Returns logits ``(B, out_channels, *spatial)``; channel 0 is the foreground.
    config : dict
        The content of ``config.json``: ``arch``, ``arch_kwargs``, ``pixel_size_nm`` (the grid the
        network works on, ``None`` = pixels), ``normalization``, ``outputs``, ``postprocessing``,
        ``train`` and ``validation``.
    path : Path or None
        The folder it was loaded from.
    """

    network: torch.nn.Module
    config: dict[str, Any]
    path: Path | None = field(default=None)

    @property
    def pixel_size_nm(self) -> float | None:
        """Pixel size (nm) of the grid the network was trained on, or ``None`` for 'pixels'."""
        value = self.config.get("pixel_size_nm")
        return None if value is None else float(value)

    @property
    def postprocessing(self) -> dict[str, Any]:
        """Post-processing parameters (threshold, min diameter, split method...), defaults filled in."""
        return {**DEFAULT_POSTPROCESSING, **self.config.get("postprocessing", {})}

    @property
    def normalization(self) -> dict[str, Any]:
        """Normalisation spec applied before the network (see ``evseg.data.normalize``)."""
        return self.config.get("normalization", {"method": "percentile", "low": 1.0, "high": 99.8})

    @property
    def outputs(self) -> list[str]:
        """Meaning of the output channels, e.g. ``["foreground"]`` or ``["foreground", "boundary"]``."""
        return list(self.config.get("outputs", ["foreground"]))

    @property
    def name(self) -> str:
        """A short name for reports: the folder name, or the architecture."""
        return self.path.name if self.path is not None else str(self.config.get("arch", "model"))


def create_model(
    arch: str,
    arch_kwargs: dict[str, Any] | None = None,
    *,
    pixel_size_nm: float | None,
    outputs: tuple[str, ...] = ("foreground",),
    normalization: dict[str, Any] | None = None,
    postprocessing: dict[str, Any] | None = None,
) -> SegmentationModel:
    """Build an untrained :class:`SegmentationModel` with a fresh network.

    Parameters
    ----------
    arch : {"frunet", "unet"}
        Network architecture.
    arch_kwargs : dict, optional
        Constructor arguments of the network (``out_channels`` is set from ``outputs``).
    pixel_size_nm : float or None
        Pixel size (nm) of the grid the model works on; ``None`` when the training data carry none.
    outputs : tuple of str
        Meaning of each output channel.
    normalization, postprocessing : dict, optional
        Override the defaults.
    """
    from evseg.models.registry import build_model

    kwargs = dict(arch_kwargs or {})
    kwargs["out_channels"] = len(outputs)
    network = build_model(arch, **kwargs)
    config = {
        "schema_version": SCHEMA_VERSION,
        "evseg_version": __version__,
        "arch": arch,
        "arch_kwargs": kwargs,
        "pixel_size_nm": pixel_size_nm,
        "outputs": list(outputs),
        "normalization": normalization or {"method": "percentile", "low": 1.0, "high": 99.8},
        "postprocessing": {**DEFAULT_POSTPROCESSING, **(postprocessing or {})},
    }
    return SegmentationModel(network=network, config=config)


def save_model(model: SegmentationModel, folder: str | Path) -> Path:
    """Write ``config.json`` and ``weights.pt`` into ``folder`` (created if needed), atomically.

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.config)
    config["schema_version"] = SCHEMA_VERSION
    config["evseg_version"] = __version__
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.network.state_dict().items()}, tmp)
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
    return folder


def bundled_model_path(name: str) -> Path:
    """Folder of the bundled model ``name`` inside the installed package."""
    look_up_option(name, BUNDLED_MODELS, what="bundled model")
    return Path(str(resources.files("evseg") / "pretrained" / name))


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an evseg model folder: {CONFIG_NAME} is missing "
            f"(bundled models: {', '.join(BUNDLED_MODELS)}, or 'classical')."
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path} is not valid JSON: {exc}") from exc
    version = config.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{config_path} has model schema_version {version!r}, but this evseg "
            f"({__version__}) reads version {SCHEMA_VERSION}. Re-train or re-export the model "
            "with a matching evseg version."
        )
    for key in ("arch", "arch_kwargs"):
        if key not in config:
            raise ValueError(f"{config_path} lacks the required key {key!r}.")
    return config


def load_model(name_or_folder: str | Path) -> SegmentationModel:
    """Load a model from a folder, or a bundled model by name (``"sev"``).

    Parameters
    ----------
    name_or_folder : str or path-like
        A bundled model name or a folder holding ``config.json`` and ``weights.pt``.

    Returns
    -------
    SegmentationModel
        With the network in eval mode on the CPU.

    Raises
    ------
    FileNotFoundError
        If the folder or its files do not exist.
    ValueError
        If the folder was written by an incompatible evseg version or is malformed.
    """
    from evseg.models.registry import build_model

    text = str(name_or_folder)
    folder = Path(text)
    if text in BUNDLED_MODELS and not folder.exists():
        folder = bundled_model_path(text)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Model {text!r} not found: give a model folder or one of the bundled models "
            f"({', '.join(BUNDLED_MODELS)}, or 'classical')."
        )
    config = _read_config(folder)
    network = build_model(config["arch"], **config["arch_kwargs"])
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}.")
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{weights_path} does not fit the architecture in {CONFIG_NAME}: {exc}") from exc
    network.eval()
    return SegmentationModel(network=network, config=config, path=folder)
