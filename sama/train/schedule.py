"""Learning-rate schedule of the SAMA recipe: linear warm-up from a small start factor, then cosine decay to zero."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """Number of warm-up optimiser steps: ``warmup_ratio`` of ``total_steps`` (at least 1 when the ratio is > 0)."""
    if warmup_ratio <= 0:
        return 0
    return max(1, round(total_steps * warmup_ratio))


def lr_factor(step: int, total_steps: int, warmup_steps: int, start_factor: float) -> float:
    """Multiplier of the base lr for optimiser ``step`` (0-based).

    Mirrors mmengine's ``LinearLR(start_factor, end_factor=1, end=warmup)`` followed by
    ``CosineAnnealingLR(eta_min=0, begin=warmup, end=total)`` (SAMA.md §2, "Schedule").
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, start_factor: float
) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor`; step it once per optimiser step."""
    warmup = warmup_steps_for(total_steps, warmup_ratio)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup, start_factor))
