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
#: Fields that may be ``None``; TOML has no null, so the string "none" stands for it.
_OPTIONAL_FIELDS = ("pixel_size_nm", "time_limit_min", "early_stopping_patience", "anisotropic_pool", "patch_size_z")
SPLIT_CHOICES = ("auto", "radon", "watershed", "none")
#: An axis is down-sampled at an encoder level only while its spacing is at most this many times the
#: finest spacing at that level (see :func:`derive_anisotropic_pool`).
ANISOTROPY_LIMIT = 2.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained (saved with the model as ``train_config.toml``).

    Attributes
    ----------
    arch : {"frunet", "unet"}
        Network architecture.
    arch_kwargs : dict
        Extra network constructor arguments (``depth``, ``base_filters``, ``dropout``...).
    spatial_dims : {2, 3}
        2: 2D images ``(Y, X)`` and a 2D network; 3: volumes ``(Z, Y, X)`` and a 3D network
        (3D U-Net / FRU-Net, Çiçek et al. 2016), trained on 3D patches.
    anisotropic_pool : "auto", None or list
        Pooling factors of a 3D network, one ``[z, y, x]`` per encoder level (``depth`` entries).
        ``"auto"`` derives them from the voxel size of the training volumes on the model grid with
        :func:`derive_anisotropic_pool` (pool z only where it is not much coarser than y/x);
        ``None``: 2 along every axis. Ignored in 2D unless given as a list.
    outputs : {"foreground", "foreground+boundary"}
        Output channels: foreground only, or foreground plus an object-boundary channel used to
        separate touching objects.
    epochs : int
        Maximum number of epochs.
    steps_per_epoch : int
        Optimiser steps (batches) per epoch.
    patch_size : int
        Edge of the square training patches (pixels on the model grid); in 3D the Y and X edges.
    patch_size_z : int or None
        Z edge of 3D training patches (slices). ``None``: ``patch_size``, but no more than the
        depth of the thinnest training volume.
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
    tune_postprocessing : bool
        After training, choose the foreground (and boundary) probability thresholds and the minimum
        object diameter (1, 1.5 or 2 times ``min_diameter_nm``, or the 5 px default of a model
        that works in pixels) that maximise F1@0.5 on the validation images
        (:func:`evseg.train.tune.tune_postprocessing`, 2D only).
    border_class_balance : bool
        Add the U-Net paper's class-balancing term w_c (computed per patch) to the border weights.
        Off by default: with sparse objects it weights foreground pixels up to ~30x more than
        background, which pushes every probability up (on EMPS the network marked 80–90 % of
        images with 3–15 % particles as foreground after 300 steps); the Dice term already
        balances the classes.
    augment : {"none", "flips", "full"}
        Augmentation preset.
    augment_options : dict
        Overrides of single augmentation settings on top of the preset, e.g.
        ``{"elastic_prob": 0.0, "rotate_max_deg": 10}`` (fields of :class:`evseg.augment.AugmentConfig`).
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
    split_method : {"auto", "radon", "watershed", "none"}
        Instance splitting stored with the model (used for validation F1 too). ``"auto"``: the
        Radon splitting of FRU-Net in 2D, the distance-transform watershed in 3D (``"radon"`` is
        2D only).
    min_diameter_nm : float
        Smallest object kept at prediction time.
    """

    arch: str = "frunet"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int = 2
    anisotropic_pool: str | list[list[int]] | None = "auto"
    outputs: str = "foreground"
    epochs: int = 50
    steps_per_epoch: int = 50
    patch_size: int = 256
    patch_size_z: int | None = None
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "plateau"
    loss: str = "bce_dice"
    border_w0: float = 10.0
    border_sigma_px: float = 5.0
    border_class_balance: bool = False
    tune_postprocessing: bool = True
    augment: str = "full"
    augment_options: dict[str, Any] = field(default_factory=dict)
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
    split_method: str = "auto"
    min_diameter_nm: float = 30.0

    def __post_init__(self) -> None:
        look_up_option(self.arch, ARCHS, what="architecture")
        look_up_option(self.outputs, OUTPUTS, what="outputs")
        look_up_option(self.loss, LOSSES, what="loss")
        look_up_option(self.augment, AUGMENT_PRESETS, what="augmentation preset")
        look_up_option(self.lr_schedule, SCHEDULES, what="learning-rate schedule")
        look_up_option(self.select_metric, SELECT_METRICS, what="selection metric")
        look_up_option(self.split_method, SPLIT_CHOICES, what="split method")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {self.spatial_dims!r}.")
        if self.spatial_dims == 3 and self.split_method == "radon":
            raise ValueError(
                "split_method='radon' works on 2D images only; with spatial_dims=3 use 'watershed' "
                "(or 'auto', which picks it) or 'none'."
            )
        if "spatial_dims" in self.arch_kwargs and self.arch_kwargs["spatial_dims"] != self.spatial_dims:
            raise ValueError(
                f"arch_kwargs['spatial_dims'] = {self.arch_kwargs['spatial_dims']!r} contradicts "
                f"spatial_dims = {self.spatial_dims}; set only `spatial_dims`."
            )
        if self.anisotropic_pool is not None and not isinstance(self.anisotropic_pool, str):
            levels = [[int(f)] * self.spatial_dims if isinstance(f, int | float) else [int(v) for v in f]
                      for f in self.anisotropic_pool]
            object.__setattr__(self, "anisotropic_pool", levels)  # lists, so the TOML round trip is exact
        elif self.anisotropic_pool is not None and self.anisotropic_pool != "auto":
            raise ValueError(
                f"`anisotropic_pool` must be 'auto', None or a list of per-level factors such as "
                f"[[1, 2, 2], [2, 2, 2]], got {self.anisotropic_pool!r}."
            )
        if self.patch_size_z is not None and int(self.patch_size_z) < 1:
            raise ValueError(f"`patch_size_z` must be >= 1, got {self.patch_size_z}.")
        look_up_option(self.precision, ("auto", "fp32", "bf16"), what="precision")
        for name in ("epochs", "steps_per_epoch", "patch_size", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        self.augment_config()  # validates augment_options
        if self.patch_size < 16:
            raise ValueError(f"`patch_size` must be >= 16, got {self.patch_size}.")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}.")
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            raise ValueError(f"`time_limit_min` must be positive, got {self.time_limit_min}.")
        if self.pixel_size_nm is not None and self.pixel_size_nm <= 0:
            raise ValueError(f"`pixel_size_nm` must be positive, got {self.pixel_size_nm}.")

    def augment_config(self):  # noqa: ANN201 - evseg.augment.AugmentConfig, imported lazily
        """The :class:`evseg.augment.AugmentConfig` in force: the preset with ``augment_options`` applied."""
        from evseg.augment import AugmentConfig

        return AugmentConfig.from_dict({**AugmentConfig.preset(self.augment).to_dict(), **self.augment_options})

    @property
    def resolved_split_method(self) -> str:
        """The split method in force: ``"auto"`` becomes ``"radon"`` in 2D and ``"watershed"`` in 3D."""
        if self.split_method == "auto":
            return "radon" if self.spatial_dims == 2 else "watershed"
        return self.split_method

    def network_kwargs(self, voxel_size_nm: tuple[float, ...] | None = None) -> dict[str, Any]:
        """Constructor arguments of the network: ``arch_kwargs`` plus the spatial dims and pooling.

        Parameters
        ----------
        voxel_size_nm : tuple of float or None
            ``(z, y, x)`` spacing of the training volumes on the model grid (nm, or any common
            unit), used when ``anisotropic_pool == "auto"``; ``None``: unknown, taken as isotropic.

        Returns
        -------
        dict
            For 2D, ``arch_kwargs`` (plus an explicit ``anisotropic_pool`` list, if given). For 3D
            also ``spatial_dims = 3`` and the pooling factors (none when every factor is 2).
        """
        kwargs = dict(self.arch_kwargs)
        pool = self.anisotropic_pool
        if self.spatial_dims == 2:
            if isinstance(pool, list):
                kwargs["anisotropic_pool"] = pool
            return kwargs
        kwargs["spatial_dims"] = 3
        if pool == "auto" and "anisotropic_pool" in kwargs:  # given explicitly in arch_kwargs
            return kwargs
        if pool == "auto":
            depth = int(kwargs.get("depth", _default_depth(self.arch)))
            pool = derive_anisotropic_pool(voxel_size_nm, depth=depth)
        if pool is not None:
            kwargs["anisotropic_pool"] = pool
        return kwargs

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _default_depth(arch: str) -> int:
    """The ``depth`` default of the network class of ``arch``."""
    import inspect

    from evseg.models.unet import FRUNet, UNet

    cls = {"frunet": FRUNet, "unet": UNet}[look_up_option(arch, ARCHS, what="architecture")]
    return int(inspect.signature(cls).parameters["depth"].default)


def derive_anisotropic_pool(
    voxel_size_nm: tuple[float, ...] | None, *, depth: int, limit: float = ANISOTROPY_LIMIT
) -> list[list[int]] | None:
    """Per-level pooling factors of a 3D network for voxels of ``voxel_size_nm``.

    The rule (as nnU-Net's): at each encoder level, an axis is down-sampled by 2 only if its current
    spacing is at most ``limit`` (2) times the finest current spacing; otherwise it keeps its
    resolution (factor 1) at that level. The spacings double where pooled, so a coarse z axis is
    first kept while y and x are pooled, until the in-plane spacing has caught up to within 2x.

    Parameters
    ----------
    voxel_size_nm : (float, float, float) or None
        ``(z, y, x)`` spacing (nm or any common unit); only the ratios matter. ``None``: unknown,
        treated as isotropic.
    depth : int
        Number of encoder levels.
    limit : float
        The anisotropy ratio above which an axis is not pooled.

    Returns
    -------
    list of [int, int, int] or None
        ``depth`` factors ``[z, y, x]``; ``None`` where every factor is 2 (isotropic pooling, the
        network's default).

    Examples
    --------
    >>> derive_anisotropic_pool((50.0, 4.6, 4.6), depth=4)  # ssTEM: z kept for 3 levels
    [[1, 2, 2], [1, 2, 2], [1, 2, 2], [2, 2, 2]]
    >>> derive_anisotropic_pool((2.0, 1.0, 1.0), depth=2) is None  # 2x is not coarse enough
    True
    """
    if voxel_size_nm is None:
        return None
    spacing = [float(v) for v in voxel_size_nm]
    if len(spacing) != 3 or not all(v > 0 for v in spacing):
        raise ValueError(f"`voxel_size_nm` must be 3 positive numbers (z, y, x), got {voxel_size_nm!r}.")
    levels = []
    for _ in range(int(depth)):
        finest = min(spacing)
        factors = [2 if v <= limit * finest * (1 + 1e-9) else 1 for v in spacing]
        spacing = [v * f for v, f in zip(spacing, factors, strict=True)]
        levels.append(factors)
    return None if all(f == [2, 2, 2] for f in levels) else levels


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
    values = {k: (None if k in _OPTIONAL_FIELDS and isinstance(v, str) and v.lower() == "none" else v)
              for k, v in values.items()}
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
