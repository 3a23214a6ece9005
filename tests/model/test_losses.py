"""Loss tests: answer-only CE, uncertainty point sampling counts, Dice/BCE behaviour."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sama.config import LossConfig
from sama.model.losses import answer_cross_entropy, dice_loss, mask_losses, point_sample, uncertain_points


def test_ce_uses_only_labelled_tokens() -> None:
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100]])
    expected = F.cross_entropy(logits[0, 1:3], torch.tensor([3, 4]))
    assert torch.allclose(answer_cross_entropy(logits, labels), expected)
    assert answer_cross_entropy(logits, torch.full((1, 5), -100)) == 0


def test_point_sampling_counts_and_uncertainty() -> None:
    logits = torch.full((2, 1, 16, 16), 10.0)
    logits[:, :, :, 8:] = 0.0  # right half is uncertain
    coords = uncertain_points(logits, num_points=100, oversample_ratio=3.0, importance_ratio=0.75)
    assert coords.shape == (2, 100, 2)
    important = coords[:, :75]
    assert (important[..., 0] > 0.45).float().mean() > 0.9
    assert torch.allclose(point_sample(torch.ones(1, 1, 4, 4), 0.25 + 0.5 * torch.rand(1, 5, 2)), torch.ones(1, 5))


def test_dice_and_bce() -> None:
    target = torch.zeros(1, 100)
    target[:, :50] = 1
    perfect = (target * 2 - 1) * 50
    assert dice_loss(perfect, target) < 0.01
    assert dice_loss(-perfect, target) > 0.9
    config = LossConfig(num_points=64)
    good_bce, _ = mask_losses(torch.full((2, 8, 8), -20.0), torch.zeros(2, 16, 16), config)
    bad_bce, _ = mask_losses(torch.full((2, 8, 8), 20.0), torch.zeros(2, 16, 16), config)
    assert good_bce < 1e-3 < bad_bce
    zero_bce, zero_dice = mask_losses(torch.zeros(0, 8, 8), torch.zeros(0, 8, 8), config)
    assert zero_bce == 0 and zero_dice == 0
