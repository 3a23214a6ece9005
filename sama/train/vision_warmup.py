"""Vision warm start: a label-free stage that teaches a random vision tower + projector to keep what the pixels show.

SAMA starts from a pretrained InternViT (SAMA.md §1.1). None exists offline, so a small preset with a random vision
tower (``sama-smol``) would hand the LLM tokens whose per-object differences are weak and entangled with position.
This stage trains the vision tower and the projector (pixel shuffle + ``mlp1``) so that every LLM-space token
reconstructs the pixels of its own grid cell (average-pooled to ``cell_pixels`` × ``cell_pixels`` RGB, in the tower's
normalised units) through one linear layer — an autoencoder objective that needs no labels — on frames of the
training data. The linear decoder is discarded afterwards; the LLM, the aggregator and SAM2 are untouched.

The training engine runs it before step 1 of a fresh run when the training config's ``vision_warmup.steps`` > 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from sama.errors import ConfigError
from sama.model.backbone import SamaBackbone
from sama.train.config import VisionWarmupConfig
from sama.train.warm_start import adamw, optimise, recent_loss, torch_seed, trainable


@dataclass
class VisionWarmupResult:
    steps: int
    frames: int  # size of the frame pool
    seconds: float
    first_loss: float
    last_loss: float  # mean of the last 20 steps


def frame_pool(dataset: Dataset, count: int, rng: np.random.Generator) -> np.ndarray:
    """The sparse frames of ``count`` random samples of a training dataset, stacked: (N, H, W, 3) uint8.

    Frames of different sizes are resized by the tower's own preprocessing later, so samples are grouped by size and
    the most common size is kept (a mixed-size pool would need one resize here, for no gain)."""
    picks = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    frames: dict[tuple[int, int], list[np.ndarray]] = {}
    for index in picks:
        clip = dataset[int(index)].frames
        frames.setdefault(clip.shape[1:3], []).append(clip)
    size = max(frames, key=lambda key: sum(len(c) for c in frames[key]))
    return np.concatenate(frames[size])


def cell_targets(pixels: torch.Tensor, grid: int, cell_pixels: int) -> torch.Tensor:
    """(B, 3, S, S) normalised pixels → (B, grid², cell_pixels² · 3): each token cell's pooled RGB, row-major like
    the tower's token order."""
    pooled = F.adaptive_avg_pool2d(pixels, grid * cell_pixels)
    b, r = pixels.shape[0], cell_pixels
    return pooled.reshape(b, 3, grid, r, grid, r).permute(0, 2, 4, 3, 5, 1).reshape(b, grid * grid, r * r * 3)


def warmup_vision(backbone: SamaBackbone, frames: np.ndarray, cfg: VisionWarmupConfig, *, seed: int = 0,
                  progress: bool = True) -> VisionWarmupResult:
    """Train ``backbone``'s vision tower + projector for ``cfg.steps`` steps of cell reconstruction on ``frames``."""
    if cfg.steps < 1:
        raise ConfigError(f"vision_warmup.steps must be >= 1 to run the warm-up, got {cfg.steps}")
    rng = np.random.default_rng(seed)
    grid, r = backbone.config.vision.grid_size, cfg.cell_pixels
    param = next(backbone.projector.parameters())
    start = time.time()
    with torch_seed(seed), trainable([*backbone.vision_tower.parameters(), *backbone.projector.parameters()]) as params:
        decoder = nn.Linear(backbone.hidden_size, r * r * 3).to(param.device)
        optimizer = adamw([*params, *decoder.parameters()], lr=cfg.lr, weight_decay=0.0)

        def step_loss(_step: int) -> torch.Tensor:
            batch = torch.from_numpy(frames[rng.integers(len(frames), size=cfg.batch_frames)])
            pixels = backbone.preprocess(batch).to(param.device)
            tokens = backbone.encode_frames(pixels)
            return F.mse_loss(decoder(tokens.float()), cell_targets(pixels.float(), grid, r))

        losses = optimise(optimizer, step_loss, cfg.steps, "vision warm-up", progress=progress)
    return VisionWarmupResult(steps=cfg.steps, frames=len(frames), seconds=time.time() - start,
                              first_loss=losses[0], last_loss=recent_loss(losses))
