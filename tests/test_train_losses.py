"""Tests for evseg.train.losses: hand-computed values, torch references, registry and bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evseg.train.losses import (
    LOSS_NAMES,
    WEIGHTED_LOSSES,
    bce_dice_loss,
    bce_loss,
    cross_entropy_loss,
    dice_loss,
    get_loss,
    weighted_bce_dice_loss,
    weighted_bce_loss,
)

LOGITS = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])  # (1, 1, 2, 2)
TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
WEIGHT = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _hand_bce(z: float, t: float) -> float:
    s = _sigmoid(z)
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


def test_bce_matches_hand_formula_and_torch():
    terms = [_hand_bce(z, t) for z, t in zip(LOGITS.flatten().tolist(), TARGET.flatten().tolist(), strict=True)]
    assert float(bce_loss(LOGITS, TARGET)) == pytest.approx(sum(terms) / 4, rel=1e-6)
    weighted = sum(w * x for w, x in zip(WEIGHT.flatten().tolist(), terms, strict=True)) / 4
    assert float(bce_loss(LOGITS, TARGET, WEIGHT)) == pytest.approx(weighted, rel=1e-6)
    assert float(weighted_bce_loss(LOGITS, TARGET, WEIGHT)) == pytest.approx(weighted, rel=1e-6)
    ref = F.binary_cross_entropy(torch.sigmoid(LOGITS), TARGET, weight=WEIGHT)
    assert float(bce_loss(LOGITS, TARGET, WEIGHT)) == pytest.approx(float(ref), rel=1e-5)


def test_dice_matches_hand_formula():
    # p = 0.5 everywhere, two of four target pixels: 1 - (2 * 1 + 1) / (2 + 2 + 1) = 0.4
    logits = torch.zeros(1, 1, 2, 2)
    assert float(dice_loss(logits, TARGET, eps=1.0)) == pytest.approx(0.4, rel=1e-6)
    p = [_sigmoid(z) for z in LOGITS.flatten().tolist()]
    t = TARGET.flatten().tolist()
    inter = sum(a * b for a, b in zip(p, t, strict=True))
    expected = 1 - (2 * inter + 0.5) / (sum(p) + sum(t) + 0.5)
    assert float(dice_loss(LOGITS, TARGET, eps=0.5)) == pytest.approx(expected, rel=1e-6)


def test_dice_is_zero_for_a_perfect_prediction_and_averaged_per_sample():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 3:7] = 1
    perfect = 40.0 * (2 * target - 1)
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(bce_loss(perfect, target)) < 1e-12
    wrong = perfect.clone()
    wrong[1] = -wrong[1]  # sample 1 fully wrong: its Dice loss is 1 - 1 / (48 + 16 + 1)
    assert float(dice_loss(wrong, target)) == pytest.approx((0.0 + 1 - 1 / 65) / 2, rel=1e-5)


def test_combined_losses_are_sums():
    assert float(bce_dice_loss(LOGITS, TARGET)) == pytest.approx(
        float(bce_loss(LOGITS, TARGET) + dice_loss(LOGITS, TARGET)), rel=1e-6
    )
    assert float(weighted_bce_dice_loss(LOGITS, TARGET, WEIGHT, eps=2.0)) == pytest.approx(
        float(bce_loss(LOGITS, TARGET, WEIGHT) + dice_loss(LOGITS, TARGET, eps=2.0)), rel=1e-6
    )


def test_cross_entropy_matches_hand_formula_and_torch():
    logits = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]], [[-1.0, 0.5]]]])  # (1, 3, 1, 2)
    target = torch.tensor([[[0, 2]]])  # (1, 1, 2)
    hand = [
        -math.log(math.exp(1.0) / (math.exp(1.0) + 1.0 + math.exp(-1.0))),
        -math.log(math.exp(0.5) / (1.0 + math.exp(2.0) + math.exp(0.5))),
    ]
    assert float(cross_entropy_loss(logits, target)) == pytest.approx(sum(hand) / 2, rel=1e-6)
    assert float(cross_entropy_loss(logits, target[:, None])) == pytest.approx(sum(hand) / 2, rel=1e-6)
    assert float(cross_entropy_loss(logits, target)) == pytest.approx(float(F.cross_entropy(logits, target)))
    weight = torch.tensor([[[2.0, 5.0]]])
    expected = (2.0 * hand[0] + 5.0 * hand[1]) / 2
    assert float(get_loss("weighted_cross_entropy")(logits, target, weight)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TypeError, match="integer class"):
        cross_entropy_loss(logits, target.float())


def test_losses_under_bf16_autocast_are_float32_and_differentiable():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.randn(2, 1, 16, 16)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    weight = torch.rand(2, 1, 16, 16) + 0.5
    for name in ("bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice"):
        conv.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = conv(x)
            assert logits.dtype == torch.bfloat16
            args = (logits, target, weight) if name in WEIGHTED_LOSSES else (logits, target)
            loss = get_loss(name)(*args)
        assert loss.dtype == torch.float32
        reference = get_loss(name)(*((logits.detach().float(),) + args[1:]))
        assert float(loss.detach()) == pytest.approx(float(reference), rel=1e-6)
        loss.backward()
        assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_registry_and_errors():
    assert set(LOSS_NAMES) >= {"bce", "dice", "bce_dice", "weighted_bce", "weighted_bce_dice"}
    assert get_loss("weighted_bce") is weighted_bce_loss
    with pytest.raises(ValueError, match="Did you mean 'bce_dice'"):
        get_loss("bce_dic")
    with pytest.raises(ValueError, match="weight_map"):
        weighted_bce_loss(LOGITS, TARGET, None)
    with pytest.raises(ValueError, match="target"):
        bce_loss(LOGITS, TARGET[..., :1])
    with pytest.raises(ValueError, match="weight"):
        bce_loss(LOGITS, TARGET, WEIGHT[0])
    with pytest.raises(ValueError, match="eps"):
        dice_loss(LOGITS, TARGET, eps=0.0)
