"""Training settings as one frozen dataclass, readable from and written to a TOML file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from evseg._registry import look_up_option

ARCHS = ("frunet", "unet")
AUGMENT_PRESETS = ("none", "flips", "full")
LOSSES = ("bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice")
OUTPUTS = ("foreground", "foreground+boundary")
SCHEDULES = ("plateau", "cosine", "none")
SELECT_METRICS = ("jaccard", "f1")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained (saved with the model as ``train_config.toml``).

    Attributes
    ----------
    arch : {"frunet", "unet"}
        Network architecture.
    arch_kwargs : dict
        Extra network constructor arguments (``depth``, ``base_filters``, ``dropout``...).
    outputs : {"foreground", "foreground+boundary"}
        Output channels: foreground only, or foreground plus an object-boundary channel used to
        separate touching objects.
    epochs : int
        Maximum number of epochs.
    steps_per_epoch : int
        Optimiser steps (batches) per epoch.
    patch_size : int
        Edge of the square training patches (pixels on the model grid).
    batch_size : int
        Patches per step.
    learning_rate : float
        Adam's initial learning rate.
    lr_schedule : {"plateau", "cosine", "none"}
        Learning-rate schedule (plateau: halve after 5 epochs without improvement).
    loss : {"bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice"}
        Training loss; the weighted ones use the U-Net paper's border weights.
    border_w0, border_sigma_px : float
        Border-weight parameters w0 and sigma (pixels) of the weighted losses.
    augment : {"none", "flips", "full"}
        Augmentation preset.
    foreground_bias : float
        Fraction of patches centred on an object pixel.
    val_fraction, test_fraction : float
        Fractions of images held out (split by image).
    seed : int
        Seed for the split, the patches, augmentation and initialisation.
    pixel_size_nm : float or None
        Pixel size the model works at (images are rescaled to it); ``None``: pixels, no rescaling.
    time_limit_min : float or None
        Stop cleanly when this many minutes are spent, keeping the best model.
    early_stopping_patience : int or None
        Stop after this many epochs without validation improvement.
    select_metric : {"jaccard", "f1"}
        Validation metric that picks the best checkpoint.
    precision : {"auto", "fp32", "bf16"}
        Training precision (``auto``: bf16 autocast where the CPU supports it).
    threshold : float
        Probability threshold stored with the model.
    split_method : {"radon", "watershed", "none"}
        Instance splitting stored with the model (used for validation F1 too).
    min_diameter_nm : float
        Smallest object kept at prediction time.
    """

    arch: str = "frunet"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    outputs: str = "foreground"
    epochs: int = 50
    steps_per_epoch: int = 50
    patch_size: int = 256
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "plateau"
    loss: str = "bce_dice"
    border_w0: float = 10.0
    border_sigma_px: float = 5.0
    augment: str = "full"
    foreground_bias: float = 0.7
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    pixel_size_nm: float | None = 1.56
    time_limit_min: float | None = None
    early_stopping_patience: int | None = 20
    select_metric: str = "jaccard"
    precision: str = "auto"
    threshold: float = 0.5
    split_method: str = "radon"
    min_diameter_nm: float = 30.0

    def __post_init__(self) -> None:
        look_up_option(self.arch, ARCHS, what="architecture")
        look_up_option(self.outputs, OUTPUTS, what="outputs")
        look_up_option(self.loss, LOSSES, what="loss")
        look_up_option(self.augment, AUGMENT_PRESETS, what="augmentation preset")
        look_up_option(self.lr_schedule, SCHEDULES, what="learning-rate schedule")
        look_up_option(self.select_metric, SELECT_METRICS, what="selection metric")
        look_up_option(self.split_method, ("radon", "watershed", "none"), what="split method")
        look_up_option(self.precision, ("auto", "fp32", "bf16"), what="precision")
        for name in ("epochs", "steps_per_epoch", "patch_size", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.patch_size < 16:
            raise ValueError(f"`patch_size` must be >= 16, got {self.patch_size}.")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}.")
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            raise ValueError(f"`time_limit_min` must be positive, got {self.time_limit_min}.")
        if self.pixel_size_nm is not None and self.pixel_size_nm <= 0:
            raise ValueError(f"`pixel_size_nm` must be positive, got {self.pixel_size_nm}.")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def config_from_dict(values: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from a dict, rejecting unknown keys with a helpful message."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        import difflib

        hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, known, 1)) else "")
                 for k in unknown]
        raise ValueError(f"{source}: unknown training setting(s) {', '.join(hints)}.")
    return TrainConfig(**values)


def read_config_toml(path: str | Path) -> TrainConfig:
    """Read a TOML training config (keys as in :class:`TrainConfig`; ``pixel_size_nm = "none"`` for pixels)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"Config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    values = {k: (None if isinstance(v, str) and v.lower() == "none" else v) for k, v in values.items()}
    return config_from_dict(values, source=str(path))


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(config: TrainConfig) -> str:
    """The TOML text of ``config`` (round-trips through :func:`read_config_toml`)."""
    lines = ["# evseg training configuration"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config.to_dict().items()]
    return "\n".join(lines) + "\n"
