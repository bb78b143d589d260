"""Segmentation losses on logits (BCE, soft Dice, border-weighted BCE, 3-class cross-entropy), in float32."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from evseg._registry import look_up_option

#: Loss names accepted by :func:`get_loss`.
LOSS_NAMES = (
    "bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice", "cross_entropy", "weighted_cross_entropy",
)
#: Losses whose third argument, a per-pixel weight map, is required.
WEIGHTED_LOSSES = frozenset({"weighted_bce", "weighted_bce_dice", "weighted_cross_entropy"})


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.dtype != torch.float32 else tensor


def _check_same_shape(logits: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if logits.shape != other.shape:
        raise ValueError(
            f"`{name}` (shape {tuple(other.shape)}) must have the shape of `logits` (shape {tuple(logits.shape)})."
        )


def bce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy on logits, averaged over all elements, optionally weighted per pixel.

    ``mean(w * -(t log s(z) + (1 - t) log(1 - s(z))))`` with ``s`` the sigmoid, computed in float32
    with the numerically stable ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : Tensor, shape (N, K, *spatial)
        Raw network outputs (any float dtype, e.g. bf16 under autocast).
    target : Tensor, same shape
        Targets in [0, 1] (any dtype; converted to float32).
    weight : Tensor or None, same shape
        Per-element weights (e.g. :func:`evseg.train.targets.unet_border_weights`); None = 1.

    Returns
    -------
    Tensor
        Scalar float32 loss.

    Examples
    --------
    >>> import torch
    >>> round(float(bce_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))), 4)  # log 2
    0.6931
    """
    _check_same_shape(logits, target, "target")
    if weight is not None:
        _check_same_shape(logits, weight, "weight")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return F.binary_cross_entropy_with_logits(
            _float32(logits), _float32(target), weight=None if weight is None else _float32(weight)
        )


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on the sigmoid of ``logits``, per sample and channel, then averaged.

    For every sample n and channel k, with ``p = sigmoid(logits)`` summed over the spatial axes:
    ``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``; the result is the mean over n and k.
    ``eps`` smooths the ratio, so an empty target predicted empty gives a loss near 0.

    Parameters
    ----------
    logits : Tensor, shape (N, K, *spatial)
        Raw network outputs.
    target : Tensor, same shape
        Targets in [0, 1].
    eps : float
        Smoothing added to numerator and denominator (> 0).

    Returns
    -------
    Tensor
        Scalar float32 loss in [0, 1].
    """
    _check_same_shape(logits, target, "target")
    if logits.ndim < 3:
        raise ValueError(f"`logits` must be (N, K, *spatial), got shape {tuple(logits.shape)}.")
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps!r}.")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        prob = torch.sigmoid(_float32(logits)).flatten(2)
        tgt = _float32(target).flatten(2)
        intersection = (prob * tgt).sum(-1)
        total = prob.sum(-1) + tgt.sum(-1)
        return (1.0 - (2.0 * intersection + eps) / (total + eps)).mean()


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *, eps: float = 1.0
) -> torch.Tensor:
    """Sum ``bce_loss(logits, target, weight) + dice_loss(logits, target, eps=eps)`` (equal weights).

    Parameters and returns as in :func:`bce_loss`; ``weight`` affects the BCE term only.
    """
    return bce_loss(logits, target, weight) + dice_loss(logits, target, eps=eps)


def weighted_bce_loss(logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor) -> torch.Tensor:
    """Border-weighted BCE of the U-Net paper: :func:`bce_loss` with a required weight map.

    Parameters
    ----------
    logits, target : Tensor, shape (N, K, *spatial)
        As in :func:`bce_loss`.
    weight_map : Tensor, same shape
        Per-pixel weights, e.g. :func:`evseg.train.targets.unet_border_weights` expanded to K.

    Returns
    -------
    Tensor
        Scalar float32 loss, ``mean(weight_map * bce)``.
    """
    if weight_map is None:
        raise ValueError("`weight_map` is required by the weighted BCE loss (see unet_border_weights).")
    return bce_loss(logits, target, weight_map)


def weighted_bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor, *, eps: float = 1.0
) -> torch.Tensor:
    """``weighted_bce_loss(logits, target, weight_map) + dice_loss(logits, target, eps=eps)``."""
    return weighted_bce_loss(logits, target, weight_map) + dice_loss(logits, target, eps=eps)


def cross_entropy_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Multi-class cross-entropy, e.g. for the 3-class target of ``boundary_target``.

    ``mean(w * -log softmax(logits)[target])`` over all pixels, in float32.

    Parameters
    ----------
    logits : Tensor, shape (N, C, *spatial)
        Raw outputs, one channel per class (C = 3 for background / interior / boundary).
    target : Tensor of int, shape (N, *spatial) or (N, 1, *spatial)
        Class index per pixel, in [0, C).
    weight : Tensor or None, shape of ``target``
        Per-pixel weights; None = 1.

    Returns
    -------
    Tensor
        Scalar float32 loss.
    """
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"`target` (shape {tuple(target.shape)}) must be (N, *spatial) class indices matching "
            f"`logits` (shape {tuple(logits.shape)})."
        )
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"`target` must hold integer class indices, got dtype {target.dtype}.")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        per_pixel = F.cross_entropy(_float32(logits), target.long(), reduction="none")
        if weight is None:
            return per_pixel.mean()
        if weight.ndim == logits.ndim and weight.shape[1] == 1:
            weight = weight[:, 0]
        _check_same_shape(per_pixel, weight, "weight")
        return (per_pixel * _float32(weight)).mean()


def weighted_cross_entropy_loss(
    logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor
) -> torch.Tensor:
    """:func:`cross_entropy_loss` with a required per-pixel weight map."""
    if weight_map is None:
        raise ValueError("`weight_map` is required by the weighted cross-entropy loss.")
    return cross_entropy_loss(logits, target, weight_map)


_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "bce": bce_loss,
    "dice": dice_loss,
    "bce_dice": bce_dice_loss,
    "weighted_bce": weighted_bce_loss,
    "weighted_bce_dice": weighted_bce_dice_loss,
    "cross_entropy": cross_entropy_loss,
    "weighted_cross_entropy": weighted_cross_entropy_loss,
}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """Return the loss function called ``name``.

    Every loss is called as ``loss(logits, target)``; the names in ``WEIGHTED_LOSSES`` need a
    third argument, the weight map (``loss(logits, target, weight_map)``); "bce" and "bce_dice"
    accept it optionally; "dice" takes none.

    Parameters
    ----------
    name : {"bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice", "cross_entropy", \
"weighted_cross_entropy"}
        The loss.

    Returns
    -------
    callable
        ``(logits, target[, weight_map]) -> scalar float32 Tensor``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the options).

    Examples
    --------
    >>> get_loss("bce_dice").__name__
    'bce_dice_loss'
    """
    return _LOSSES[look_up_option(name, LOSS_NAMES, what="loss")]
