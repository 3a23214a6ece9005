"""SAMA's training losses (SAMA.md §1.7): answer-token cross-entropy, and sigmoid BCE + Dice on uncertainty-sampled
points (Mask2Former style), weighted by the config."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sama.config import LossConfig
from sama.model.processing import IGNORE_INDEX


def answer_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token CE over labelled (answer) positions; labels (B, L) hold −100 elsewhere.

    ``logits`` are (B, L, V) for every position, or (B, P, V) for the sequence ``positions`` only (the LM head is then
    evaluated only where a next token is labelled, see :func:`labelled_positions`).
    """
    if positions is None:
        shift_logits = logits[:, :-1]
        shift_labels = labels[:, 1:]
    else:
        shift_logits, shift_labels = logits, labels[:, positions + 1]
    shift_logits = shift_logits.reshape(-1, logits.shape[-1]).float()
    shift_labels = shift_labels.reshape(-1)
    if (shift_labels != IGNORE_INDEX).sum() == 0:
        return shift_logits.sum() * 0.0
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)


def labelled_positions(labels: torch.Tensor) -> torch.Tensor | None:
    """Sequence positions whose next token is labelled in any sample (None when nothing is labelled): the only
    positions whose logits the CE needs. Skipping the rest saves most of the LM-head cost (a 49k-row head)."""
    positions = (labels[:, 1:] != IGNORE_INDEX).any(0).nonzero(as_tuple=True)[0]
    return positions if positions.numel() else None


def point_sample(inputs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear values of (N, 1, H, W) maps at (N, P, 2) points in [0, 1]² (x, y) → (N, P)."""
    grid = 2.0 * coords.unsqueeze(2) - 1.0  # (N, P, 1, 2) in [-1, 1]
    return F.grid_sample(inputs, grid, mode="bilinear", align_corners=False)[:, 0, :, 0]


def uncertain_points(logits: torch.Tensor, num_points: int, oversample_ratio: float, importance_ratio: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask2Former point selection: draw ``oversample·P`` random points, keep the ``importance·P`` most uncertain
    (−|logit|), add ``(1−importance)·P`` uniform points. logits (N, 1, H, W) → coords (N, P, 2)."""
    n = logits.shape[0]
    sampled = max(int(num_points * oversample_ratio), 1)
    coords = torch.rand(n, sampled, 2, device=logits.device, generator=generator)
    uncertainty = -point_sample(logits.detach(), coords).abs()
    num_uncertain = int(importance_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = uncertainty.topk(num_uncertain, dim=1).indices
    chosen = torch.gather(coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        extra = torch.rand(n, num_random, 2, device=logits.device, generator=generator)
        chosen = torch.cat([chosen, extra], dim=1)
    return chosen


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Naive Dice per mask, mean over masks: 1 − (2·Σpt + eps) / (Σp + Σt + eps); logits/targets (N, P)."""
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1) + eps
    denominator = probs.sum(-1) + targets.sum(-1) + eps
    return (1 - numerator / denominator).mean()


def mask_losses(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and Dice (unweighted) of mask logits (N, h, w) against bool targets (N, H, W) on sampled points.

    Targets are resized (nearest) to the prediction size first (SAMA.md §1.6), then both are point-sampled.
    """
    if logits.shape[0] == 0:
        zero = logits.sum() * 0.0
        return zero, zero
    logits = logits.float().unsqueeze(1)
    target = targets.float().unsqueeze(1)
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="nearest")
    coords = uncertain_points(logits, config.num_points, config.oversample_ratio, config.importance_sample_ratio,
                              generator)
    point_logits = point_sample(logits, coords)
    point_targets = point_sample(target, coords)
    bce = F.binary_cross_entropy_with_logits(point_logits, point_targets, reduction="none").mean(1).mean()
    return bce, dice_loss(point_logits, point_targets, config.dice_eps)
