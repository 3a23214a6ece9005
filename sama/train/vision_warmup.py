"""Vision warm start: a label-free stage that teaches a random vision tower + projector to keep what the pixels show.

SAMA starts from a pretrained InternViT (SAMA.md §1.1). None exists offline, so a small preset with a random vision
tower (``sama-smol``) would hand the LLM tokens whose per-object differences are weak and entangled with position.
This stage trains the vision tower and the projector (pixel shuffle + ``mlp1``) so that every LLM-space token
reconstructs the pixels of its own grid cell (average-pooled to ``cell_pixels`` × ``cell_pixels`` RGB, in the tower's
normalised units; with ``vision.motion_input`` also the cell's frame difference, from the frames before and after it
in its clip) through one linear layer — an autoencoder objective that needs no labels — on frames of the
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
from sama.model.backbone import SamaBackbone, clip_neighbours, input_channels
from sama.train.config import VisionWarmupConfig
from sama.train.warm_start import StageResult, adamw, optimise, torch_seed, trainable


@dataclass
class VisionWarmupResult(StageResult):
    frames: int  # size of the frame pool


@dataclass
class FramePool:
    """Frames (N, H, W, 3) uint8 with, per frame, the pool positions of the previous and the next frame of its clip
    (itself at a clip's ends): what the vision tower's motion input (``vision.motion_input``) needs."""

    frames: np.ndarray
    previous: np.ndarray
    following: np.ndarray

    @classmethod
    def of_frames(cls, frames: np.ndarray) -> FramePool:
        """Unrelated frames: each its own one-frame clip (no motion)."""
        positions = np.arange(len(frames))
        return cls(frames, positions, positions)

    def __len__(self) -> int:
        return len(self.frames)


def frame_pool(dataset: Dataset, count: int, rng: np.random.Generator) -> FramePool:
    """The sparse frames of ``count`` random samples of a training dataset, stacked, with their clip neighbours.

    Frames of different sizes are resized by the tower's own preprocessing later, so samples are grouped by size and
    the most common size is kept (a mixed-size pool would need one resize here, for no gain)."""
    picks = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    frames: dict[tuple[int, int], list[np.ndarray]] = {}
    for index in picks:
        clip = dataset[int(index)].frames
        frames.setdefault(clip.shape[1:3], []).append(clip)
    size = max(frames, key=lambda key: sum(len(c) for c in frames[key]))
    previous, following, start = [], [], 0
    for clip in frames[size]:
        before, after = clip_neighbours(len(clip))
        previous += [start + p for p in before]
        following += [start + p for p in after]
        start += len(clip)
    return FramePool(np.concatenate(frames[size]), np.asarray(previous), np.asarray(following))


def cell_targets(pixels: torch.Tensor, grid: int, cell_pixels: int) -> torch.Tensor:
    """(B, C, S, S) normalised pixels → (B, grid², cell_pixels² · C): each token cell's pooled channels, row-major
    like the tower's token order."""
    pooled = F.adaptive_avg_pool2d(pixels, grid * cell_pixels)
    b, c, r = pixels.shape[0], pixels.shape[1], cell_pixels
    return pooled.reshape(b, c, grid, r, grid, r).permute(0, 2, 4, 3, 5, 1).reshape(b, grid * grid, r * r * c)


def warmup_vision(backbone: SamaBackbone, frames: FramePool | np.ndarray, cfg: VisionWarmupConfig, *, seed: int = 0,
                  progress: bool = True) -> VisionWarmupResult:
    """Train ``backbone``'s vision tower + projector for ``cfg.steps`` steps of cell reconstruction on ``frames`` (a
    plain (N, H, W, 3) array: unrelated frames, see :meth:`FramePool.of_frames`)."""
    if cfg.steps < 1:
        raise ConfigError(f"vision_warmup.steps must be >= 1 to run the warm-up, got {cfg.steps}")
    pool = frames if isinstance(frames, FramePool) else FramePool.of_frames(frames)
    rng = np.random.default_rng(seed)
    grid, r = backbone.config.vision.grid_size, cfg.cell_pixels
    channels = input_channels(backbone.config.vision)
    param = next(backbone.projector.parameters())
    start = time.time()
    with torch_seed(seed), trainable([*backbone.vision_tower.parameters(), *backbone.projector.parameters()]) as params:
        decoder = nn.Linear(backbone.hidden_size, r * r * channels).to(param.device)
        optimizer = adamw([*params, *decoder.parameters()], lr=cfg.lr, weight_decay=0.0)

        def step_loss(_step: int) -> torch.Tensor:
            picks = rng.integers(len(pool), size=cfg.batch_frames)
            before, after = (torch.from_numpy(pool.frames[positions[picks]]) for positions in (pool.previous,
                                                                                                pool.following))
            pixels = backbone.preprocess(torch.from_numpy(pool.frames[picks]), before, after).to(param.device)
            tokens = backbone.encode_frames(pixels)
            return F.mse_loss(decoder(tokens.float()), cell_targets(pixels.float(), grid, r))

        losses = optimise(optimizer, step_loss, cfg.steps, "vision warm-up", progress=progress)
    return VisionWarmupResult(seconds=time.time() - start, losses=losses, frames=len(pool))
