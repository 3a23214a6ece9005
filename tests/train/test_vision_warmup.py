"""The self-supervised vision warm start: cell targets, learning, and its place in a training run (fresh runs only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sama.data.sample import TrainingSample
from sama.errors import ConfigError
from sama.model.factory import create_model
from sama.train.config import VisionWarmupConfig, config_from_dict
from sama.train.engine import Trainer
from sama.train.tracking import read_log
from sama.train.vision_warmup import cell_targets, frame_pool, warmup_vision


def test_cell_targets_follow_the_token_order() -> None:
    pixels = torch.zeros(1, 3, 8, 8)
    pixels[0, 0, :4, 4:] = 1.0  # red channel on in the top-right cell of a 2×2 grid
    targets = cell_targets(pixels, grid=2, cell_pixels=2)
    assert targets.shape == (1, 4, 2 * 2 * 3)
    per_cell = targets.reshape(1, 4, 2, 2, 3)[0, :, :, :, 0].mean((1, 2))
    torch.testing.assert_close(per_cell, torch.tensor([0.0, 1.0, 0.0, 0.0]))  # row-major: cell 1 is top-right


def _frames(count: int = 24, size: int = 32) -> np.ndarray:
    """Frames with one coloured square each on grey (colour and place vary)."""
    rng = np.random.default_rng(0)
    frames = np.full((count, size, size, 3), 45, dtype=np.uint8)
    for frame in frames:
        x, y = rng.integers(0, size - 10, 2)
        frame[y : y + 10, x : x + 10] = rng.integers(0, 256, 3)
    return frames


def test_warmup_learns_and_touches_only_the_vision_side() -> None:
    torch.manual_seed(0)
    model = create_model("sama-tiny")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    result = warmup_vision(model.backbone, _frames(), VisionWarmupConfig(steps=60, lr=3e-3, batch_frames=8),
                           progress=False)
    assert result.steps == 60 and result.frames == 24
    assert result.last_loss < 0.5 * result.first_loss
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("backbone.vlm.model.vision_tower.",
                                         "backbone.vlm.model.multi_modal_projector.")) for n in changed)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags  # the freeze policy is restored
    with pytest.raises(ConfigError, match="steps"):
        warmup_vision(model.backbone, _frames(), VisionWarmupConfig(steps=0), progress=False)


def test_frame_pool_keeps_each_frames_clip_neighbours() -> None:
    clips = [TrainingSample(_frames(3) // (k + 1), [0, 3, 6], [], sample_id=str(k)) for k in range(2)]
    pool = frame_pool(clips, 2, np.random.default_rng(0))
    assert len(pool) == 6
    assert pool.previous.tolist() == [0, 0, 1, 3, 3, 4]  # a clip's first frame is its own previous frame
    assert pool.following.tolist() == [1, 2, 2, 4, 5, 5]


def test_warmup_reconstructs_the_motion_channels_too() -> None:
    torch.manual_seed(0)
    model = create_model("sama-tiny", vision={"motion_input": True})
    clips = [TrainingSample(_frames(4), [0, 3, 6, 9], [], sample_id=str(k)) for k in range(6)]
    pool = frame_pool(clips, 6, np.random.default_rng(0))
    assert cell_targets(torch.zeros(1, 6, 8, 8), grid=2, cell_pixels=2).shape == (1, 4, 2 * 2 * 6)
    result = warmup_vision(model.backbone, pool, VisionWarmupConfig(steps=40, lr=3e-3, batch_frames=8), progress=False)
    assert result.frames == 24 and result.last_loss < 0.5 * result.first_loss


@pytest.mark.parametrize("field,value", [("steps", -1), ("batch_frames", 0), ("cell_pixels", 0), ("lr", 0.0)])
def test_bad_warmup_settings_are_named(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"vision_warmup.{field}"):
        _config(Path("/tmp/unused"), **{field: value})


def _config(out: Path, **warmup: float):
    return config_from_dict({
        "model": {"name": "sama-tiny"},
        "data": {"train": [{"kind": "random", "options": {"num_samples": 2, "num_frames": 4}}],
                 "batch_size": 1, "grad_accum": 1},
        "vision_warmup": {"steps": 5, "batch_frames": 4, "pool_samples": 2, **warmup},
        "max_steps": 2, "save_every": 1, "progress": False, "plot": False, "export_final": False,
        "output_dir": str(out),
    })


@pytest.mark.slow
def test_training_runs_the_warmup_on_fresh_runs_only(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run")
    result = Trainer(cfg).fit()
    warm = [r for r in read_log(result.log_path) if r["split"] == "vision_warmup"]
    assert len(warm) == 1 and warm[0]["steps"] == 5 and warm[0]["frames"] == 8  # 2 samples × 4 frames
    cfg.max_steps = 3
    resumed = Trainer(cfg, resume=True)
    resumed.fit()
    assert resumed.warm_start_records == []  # the checkpoint holds the warmed-up tower
    assert len([r for r in read_log(result.log_path) if r["split"] == "vision_warmup"]) == 1
