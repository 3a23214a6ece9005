"""The SAMA learning-rate schedule and optimiser constants (SAMA.md §2)."""

from __future__ import annotations

import math

import pytest
import torch

from sama.train import config as train_config
from sama.train.schedule import build_scheduler, lr_factor, warmup_steps_for


def test_recipe_constants_match_sama_md() -> None:
    opt = train_config.OptimConfig()
    assert opt.lr == 4e-5
    assert opt.weight_decay == 0.05
    assert opt.betas == [0.9, 0.999]
    assert opt.grad_clip == 1.0
    assert opt.warmup_ratio == 0.05
    assert opt.warmup_start_factor == 1e-5
    data = train_config.DataConfig()
    assert (data.batch_size, data.grad_accum) == (2, 4)
    cfg = train_config.TrainConfig()
    assert (cfg.epochs, cfg.save_every) == (1, 1000)


def test_warmup_then_cosine_values() -> None:
    total, warmup = 100, warmup_steps_for(100, 0.05)
    assert warmup == 5
    assert lr_factor(0, total, warmup, 1e-5) == pytest.approx(1e-5)
    assert lr_factor(1, total, warmup, 1e-5) == pytest.approx(1e-5 + (1 - 1e-5) / 5)
    assert lr_factor(5, total, warmup, 1e-5) == pytest.approx(1.0)
    midpoint = 5 + 95 / 2
    assert lr_factor(int(midpoint), total, warmup, 1e-5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 47 / 95)))
    assert lr_factor(100, total, warmup, 1e-5) == pytest.approx(0.0)
    values = [lr_factor(s, total, warmup, 1e-5) for s in range(total)]
    assert values[:6] == sorted(values[:6]) and values[5:] == sorted(values[5:], reverse=True)


def test_scheduler_drives_optimizer_lr() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=4e-5)
    scheduler = build_scheduler(optimizer, total_steps=20, warmup_ratio=0.05, start_factor=1e-5)
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(4e-5 * 1e-5)
    assert seen[1] == pytest.approx(4e-5)
    assert seen[-1] < seen[10] < seen[1]
