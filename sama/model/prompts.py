"""Visual-prompt encoder (SAMA.md §1.4): referred objects (Mask / Box / Point) → box-ified 16×16 and 112×112 prompt
masks on the dense frames → the two LLM tokens per object (mask-pooled feature, shape MLP)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sama.config import SamaConfig
from sama.data.masks import box_mask
from sama.errors import ConfigError, DataError
from sama.model.aggregator import MLP, mask_pooling


@dataclass(frozen=True)
class Mask:
    """A referred object given by a binary mask: (H, W) on ``frame``, or (T, H, W) over the clip (``frame=None``)."""

    mask: np.ndarray
    frame: int | None = 0


@dataclass(frozen=True)
class Box:
    """A referred object given by a box ``(x1, y1, x2, y2)`` in pixels (inclusive-exclusive) on ``frame``."""

    xyxy: tuple[float, float, float, float]
    frame: int = 0


@dataclass(frozen=True)
class Point:
    """A referred object given by a click ``(x, y)`` on ``frame``; turned into a mask by an injected callable
    (grounding's SAM2 point prompt)."""

    xy: tuple[float, float]
    frame: int = 0
    positive: bool = True


RegionRef = Mask | Box | Point
PointToMask = Callable[[Point], np.ndarray]


def ref_to_volume(ref: RegionRef, num_frames: int, height: int, width: int,
                  point_to_mask: PointToMask | None = None) -> np.ndarray:
    """A reference → (num_frames, H, W) bool volume (non-empty only on the frames it is given on)."""
    volume = np.zeros((num_frames, height, width), dtype=bool)
    if isinstance(ref, Mask):
        mask = np.asarray(ref.mask).astype(bool)
        if mask.ndim == 3 and ref.frame is None:
            if mask.shape != volume.shape:
                raise DataError(f"mask volume {mask.shape} does not match the clip {volume.shape}", field="refs")
            return mask
        if mask.shape != (height, width):
            raise DataError(f"mask of shape {mask.shape} does not match the frame size {(height, width)}",
                            field="refs")
        volume[_frame(ref.frame or 0, num_frames)] = mask
    elif isinstance(ref, Box):
        x1, y1, x2, y2 = (float(v) for v in ref.xyxy)
        if not (x2 > x1 and y2 > y1):
            raise DataError(f"box {ref.xyxy} must have x2 > x1 and y2 > y1", field="refs")
        c1, r1 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        c2, r2 = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
        volume[_frame(ref.frame, num_frames), r1:r2, c1:c2] = True
    elif isinstance(ref, Point):
        if point_to_mask is None:
            raise DataError("a Point reference needs a point-to-mask function (SAM2 point prompt)", field="refs")
        mask = np.asarray(point_to_mask(ref)).astype(bool)
        if mask.shape != (height, width):
            raise DataError(f"point mask of shape {mask.shape}, expected {(height, width)}", field="refs")
        volume[_frame(ref.frame, num_frames)] = mask
    else:
        raise DataError(f"unsupported reference {type(ref).__name__}; expected Mask, Box or Point", field="refs")
    return volume


def _frame(frame: int, num_frames: int) -> int:
    if not 0 <= frame < num_frames:
        raise DataError(f"reference frame {frame} outside the clip of {num_frames} frames", field="refs")
    return frame


def prompt_masks(volume: np.ndarray, dense_positions: Sequence[int], grid_size: int, shape_size: int,
                 mode: str = "box", grid_resize: str = "nearest") -> tuple[torch.Tensor, torch.Tensor, int]:
    """One object's (T_s, H, W) mask → its (grid, grid) and (shape, shape) prompt masks on the region frame.

    Masks are box-ified when ``mode == "box"`` (SAMA.md §1.4) and taken on the dense frames; the grid mask is resized
    nearest (the release) or by ``grid_resize="area"`` (each cell's covered fraction, so small objects survive a
    coarse grid), the shape mask nearest. The region frame is the first dense frame whose grid mask is non-empty,
    else 0 (SAMA.md §7.4).

    Returns:
        (grid mask float (g, g), shape mask float (s, s), region frame as a position in ``dense_positions``).
    """
    dense = np.asarray(volume, dtype=bool)[list(dense_positions)]
    if mode == "box":
        dense = box_mask(dense)
    tensor = torch.from_numpy(dense).float().unsqueeze(1)  # (n_dense, 1, H, W)
    if grid_resize not in ("nearest", "area"):
        raise ConfigError(f"prompts.grid_resize must be 'nearest' or 'area', got {grid_resize!r}")
    grid = F.interpolate(tensor, size=(grid_size, grid_size), mode=grid_resize)[:, 0]
    shape = F.interpolate(tensor, size=(shape_size, shape_size), mode="nearest")[:, 0]
    nonempty = (grid.flatten(1).sum(1) > 0).nonzero()
    frame = int(nonempty[0]) if nonempty.numel() else 0
    return grid[frame], shape[frame], frame


class PromptEncoder(nn.Module):
    """The two LLM tokens of each referred object: ``Linear(C, C)`` of the mask-pooled dense-frame feature
    (``Qformer_mask_pooling_proj``) and ``MLP(P, 1024, C, 3)`` of the flattened shape mask (``Qformer_mask_proj``)."""

    def __init__(self, config: SamaConfig) -> None:
        super().__init__()
        c, p = config.llm.hidden_size, config.prompts
        self.pool_proj = nn.Linear(c, c)
        self.shape_mlp = MLP(p.shape_mask_points, p.shape_mlp_hidden, c, p.shape_mlp_layers)

    @staticmethod
    def pool(dense_tokens: torch.Tensor, grid_masks: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Mask-pool each object's region frame: dense_tokens (n_dense, N, C), grid_masks (K, g, g) → (K, C)."""
        if grid_masks.shape[0] == 0:
            return dense_tokens.new_zeros(0, dense_tokens.shape[-1])
        pooled = [mask_pooling(dense_tokens[int(f)], m.flatten()[None])[0] for f, m in zip(frames, grid_masks)]
        return torch.stack(pooled)

    def forward(self, pooled: torch.Tensor, shape_masks: torch.Tensor) -> torch.Tensor:
        """(K, C) pooled features and (K, s, s) shape masks → (2K, C) tokens, per object [pooled, shape]."""
        shape_flat = shape_masks.flatten(1).to(pooled.dtype)
        tokens = torch.stack([self.pool_proj(pooled), self.shape_mlp(shape_flat)], dim=1)
        return tokens.flatten(0, 1)
