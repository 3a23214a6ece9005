"""Shared training plumbing: the AdamW choice (fused where it can be), the trainable-flag context, lr factors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sama.errors import ConfigError
from sama.train.warm_start import LOSS_WINDOW, StageResult, adamw, lr_factors, trainable


def _params(seed: int) -> list[nn.Parameter]:
    torch.manual_seed(seed)
    params = [nn.Parameter(torch.randn(7, 5)), nn.Parameter(torch.randn(3))]
    for p in params:
        p.grad = torch.randn_like(p)
    return params


def test_adamw_is_fused_on_cpu_and_updates_like_the_reference() -> None:
    fused_params, reference_params = _params(0), _params(0)
    groups = [{"params": fused_params[:1], "lr": 1e-2}, {"params": fused_params[1:], "lr": 1e-3, "weight_decay": 0.0}]
    fused = adamw(groups, lr=1e-2, weight_decay=0.05)
    reference = torch.optim.AdamW([{"params": reference_params[:1], "lr": 1e-2},
                                   {"params": reference_params[1:], "lr": 1e-3, "weight_decay": 0.0}],
                                  lr=1e-2, weight_decay=0.05, foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        fused.step()
        reference.step()
    for a, b in zip(fused_params, reference_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fused_params[0], _params(0)[0])  # it did move


def test_adamw_falls_back_when_a_tensor_cannot_be_fused() -> None:
    # a tensor that is not a plain nn.Parameter (FSDP2's sharded DTensor parameters are such tensor subclasses)
    assert adamw([torch.randn(3, requires_grad=True)], lr=1e-3).defaults["fused"] is False
    assert adamw([nn.Parameter(torch.randn(3))], lr=1e-3).defaults["fused"] is True


def test_trainable_restores_each_flag() -> None:
    frozen, free = nn.Parameter(torch.zeros(1), requires_grad=False), nn.Parameter(torch.zeros(1))
    with trainable([frozen, free]) as params:
        assert all(p.requires_grad for p in params)
    assert frozen.requires_grad is False and free.requires_grad is True


def test_adamw_keeps_parameters_given_as_generators() -> None:
    weight = nn.Parameter(torch.ones(3))
    optimizer = adamw([{"params": (p for p in [weight]), "lr": 0.1}])
    assert optimizer.param_groups[0]["params"] == [weight]


def test_lr_factors_take_the_first_matching_prefix_and_explain_bad_entries() -> None:
    names = ["head.3.weight", "head.0.weight", "body.weight"]
    factor_of = lr_factors({"head.3.": 3.0, "head.": 0.5}, names, "optim.lr_multipliers")
    assert [factor_of(n) for n in names] == [3.0, 0.5, 1.0]
    with pytest.raises(ConfigError, match=r"optim.lr_multipliers.head\.: the factor must be a number > 0, got 0"):
        lr_factors({"head.": 0}, names, "optim.lr_multipliers")
    with pytest.raises(ConfigError, match=r"prefix 'tail\.' matches no trainable parameter \(e.g. body., head.\)"):
        lr_factors({"tail.": 2.0}, names, "optim.lr_multipliers")


def test_stage_result_derives_its_figures_from_every_step_loss() -> None:
    losses = [float(30 - i) for i in range(30)]
    result = StageResult(seconds=1.5, losses=losses)
    assert (result.steps, result.first_loss) == (30, 30.0)
    assert result.last_loss == pytest.approx(sum(losses[-LOSS_WINDOW:]) / LOSS_WINDOW)  # 10.5: the last 20 only
    with pytest.raises(ValueError, match="at least one step"):
        StageResult(seconds=0.0, losses=[])
