"""End-to-end training of the real ``sama-tiny`` model through the engine (the model's processor, freeze policy,
no-decay groups and loss parts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sama.train.config import config_from_dict
from sama.train.engine import Trainer

pytestmark = pytest.mark.slow


def test_loss_decreases_and_checkpoint_holds_trainable_weights(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "model": {"name": "sama-tiny"},
            "data": {
                "train": [{"kind": "random", "options": {"num_samples": 1, "num_frames": 4}}],
                "batch_size": 1,
                "grad_accum": 1,
            },
            "optim": {"lr": 3e-3, "warmup_ratio": 0.0},
            "max_steps": 4,
            "save_every": 0,
            "progress": False,
            "plot": False,
            "output_dir": str(tmp_path / "run"),
        }
    )
    trainer = Trainer(cfg)
    result = trainer.fit()
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    assert {"loss_ce", "loss_bce", "loss_dice"} <= set(result.history[0])
    model = trainer.raw_model
    assert model is not None
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    assert trainable and frozen  # SAMA.md §2: LLM / ViT / SAM2 encoder frozen
    saved = load_file(str(result.last_checkpoint / "model.safetensors"))
    assert trainable <= set(saved) and not set(saved) & frozen  # (+ buffers and tied aliases of trainable weights)
    no_decay = set(model.no_decay_parameter_names())
    groups = trainer.optimizer.param_groups
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    if no_decay:
        assert any(g["weight_decay"] == 0.0 and len(g["params"]) == len(no_decay) for g in groups)
    assert all(torch.isfinite(t).all() for t in saved.values())
    # the trained model is exported for evaluation / serving and reloads strictly
    from sama.model.modeling import SamaModel

    reloaded = SamaModel.from_pretrained(result.output_dir / "final")
    name = next(iter(trainable - {n for n, _ in model.named_buffers()}))
    torch.testing.assert_close(dict(reloaded.named_parameters())[name], dict(model.named_parameters())[name])
    # resuming restores every saved tensor into a fresh model and continues the schedule
    cfg.max_steps = 5
    resumed = Trainer(cfg, resume=True)
    more = resumed.fit()
    assert more.steps == 5 and len(more.history) == 1 and more.history[0]["step"] == 5
