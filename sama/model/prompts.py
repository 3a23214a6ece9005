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
from sama.data.masks import box_mask, mask_xyxy
from sama.errors import ConfigError, DataError
from sama.model.aggregator import MLP, mask_pooling
from sama.model.backbone import input_channels


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
                 mode: str = "box", grid_resize: str = "nearest"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """One object's (T_s, H, W) mask → its (grid, grid) and (shape, shape) prompt masks and box on the region frame.

    Masks are box-ified when ``mode == "box"`` (SAMA.md §1.4) and taken on the dense frames; the grid mask is resized
    nearest (the release) or by ``grid_resize="area"`` (each cell's covered fraction, so small objects survive a
    coarse grid), the shape mask nearest. The region frame is the first dense frame whose grid mask is non-empty,
    else 0 (SAMA.md §7.4).

    Returns:
        (grid mask float (g, g), shape mask float (s, s), box (4,) as (x1, y1, x2, y2) fractions of the frame's width
        and height (the whole frame when the mask is empty), region frame as a position in ``dense_positions``).
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
    return grid[frame], shape[frame], mask_box(dense[frame]), frame


def mask_box(mask: np.ndarray) -> torch.Tensor:
    """(H, W) bool mask → its bounding box (x1, y1, x2, y2) as fractions of the width / height (pixel edges, so a
    one-pixel mask has a box one pixel wide); the whole frame (0, 0, 1, 1) when the mask is empty."""
    box = mask_xyxy(mask)
    if box is None:
        return torch.tensor([0.0, 0.0, 1.0, 1.0])
    height, width = mask.shape
    return torch.tensor(box, dtype=torch.float32) / torch.tensor([width, height, width, height], dtype=torch.float32)


def object_crops(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """ROI-align on pixels: each object's (C, size, size) crop inside its box, sampled bilinearly at the centres of a
    size × size grid over the box → (K, C·size·size).

    Args:
        pixels: (K, C, H, W) each object's region frame (the vision input: C = 3, or 6 with ``vision.motion_input``).
        boxes: (K, 4) boxes (x1, y1, x2, y2) as fractions of the frame (:func:`mask_box`).
    """
    boxes = boxes.to(pixels)
    if boxes.shape[0] == 0:
        return pixels.new_zeros(0, pixels.shape[1] * size * size)
    theta = torch.zeros(boxes.shape[0], 2, 3, dtype=pixels.dtype, device=pixels.device)
    theta[:, 0, 0] = boxes[:, 2] - boxes[:, 0]  # affine_grid's [-1, 1] square → the box, in [-1, 1] units
    theta[:, 1, 1] = boxes[:, 3] - boxes[:, 1]
    theta[:, 0, 2] = boxes[:, 0] + boxes[:, 2] - 1
    theta[:, 1, 2] = boxes[:, 1] + boxes[:, 3] - 1
    grid = F.affine_grid(theta, [boxes.shape[0], pixels.shape[1], size, size], align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", align_corners=False).flatten(1)


def token_grid(tokens: int) -> torch.Tensor:
    """(N, 2) centre (x, y) ∈ [0, 1]² of each token of a square row-major grid of N tokens."""
    side = round(tokens**0.5)
    if side * side != tokens:
        raise ValueError(f"object paths need a square token grid, got {tokens} tokens per frame")
    axis = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([cols, rows], dim=-1).reshape(tokens, 2)


def object_trajectory(frame_tokens: torch.Tensor, pooled: torch.Tensor, points: int, temperature: float,
                      centre: bool = False) -> torch.Tensor:
    """Each referred object's path over the sparse frames → (K, 4·points) features.

    On every frame the tokens are weighted by softmax(τ·cos(token, object's mask-pooled feature)); the weights'
    centroid (x, y) on the square token grid, resampled linearly over time to ``points`` samples, is returned with its
    displacement from the first sample: [x…, y…, x−x₀…, y−y₀…]. Positions are in token-grid cells from the grid centre,
    so a move of one cell changes a feature by 1 (features of order 1 are what the MLP reading them learns fastest).
    With ``centre`` the cosine compares each token less its frame's mean token with the pooled feature less the clip's
    mean token.

    Args:
        frame_tokens: (T_s, N, C) sparse frame tokens in time order.
        pooled: (K, C) mask-pooled features of the referred objects.
    """
    tokens = frame_tokens.shape[1]
    pooled = pooled.to(frame_tokens.dtype)
    if centre:
        frame_tokens, pooled = frame_tokens - frame_tokens.mean(1, keepdim=True), pooled - frame_tokens.mean((0, 1))
    keys = nn.functional.normalize(frame_tokens, dim=-1)
    queries = nn.functional.normalize(pooled, dim=-1)
    weights = torch.softmax(temperature * torch.einsum("tnc,kc->ktn", keys, queries), dim=-1)  # (K, T, N)
    path = (weights @ token_grid(tokens).to(weights)).transpose(1, 2)  # (K, 2, T) in [0, 1]
    path = F.interpolate(path, size=points, mode="linear", align_corners=True)  # (K, 2, points)
    cells = (path - 0.5) * round(tokens**0.5)
    return torch.cat([cells, cells - cells[:, :, :1]], dim=1).flatten(1)


class PromptEncoder(nn.Module):
    """The two LLM tokens of each referred object: ``Linear(C, C)`` of the mask-pooled dense-frame feature
    (``Qformer_mask_pooling_proj``) and ``MLP(P, 1024, C, 3)`` of the flattened shape mask (``Qformer_mask_proj``),
    plus in the shape token the options ``prompts.trajectory_points`` and ``prompts.crop_size``."""

    def __init__(self, config: SamaConfig) -> None:
        super().__init__()
        c, p = config.llm.hidden_size, config.prompts
        self.pool_proj = nn.Linear(c, c)
        self.shape_mlp = MLP(p.shape_mask_points, p.shape_mlp_hidden, c, p.shape_mlp_layers)
        if p.trajectory_points < 0:
            raise ConfigError(f"prompts.trajectory_points must be >= 0 (0 = off), got {p.trajectory_points}")
        self.trajectory = (p.trajectory_points, p.trajectory_temperature, p.trajectory_centre)
        self.trajectory_mlp = MLP(4 * p.trajectory_points, p.shape_mlp_hidden, c, 2) if p.trajectory_points else None
        if p.crop_size < 0:
            raise ConfigError(f"prompts.crop_size must be >= 0 (0 = off), got {p.crop_size}")
        self.crop_size = p.crop_size
        self.crop_mlp = None
        if p.crop_size:
            # Drawn on a side RNG stream, so turning the option on leaves every other module's random init as it was
            # (sama-smol's results depend on SAM2's random draw, docs/sama-smol-log.md session 12).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(torch.initial_seed() + 1)
                self.crop_mlp = MLP(input_channels(config.vision) * p.crop_size**2, p.shape_mlp_hidden, c, 2)

    @staticmethod
    def pool(dense_tokens: torch.Tensor, grid_masks: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Mask-pool each object's region frame: dense_tokens (n_dense, N, C), grid_masks (K, g, g) → (K, C)."""
        if grid_masks.shape[0] == 0:
            return dense_tokens.new_zeros(0, dense_tokens.shape[-1])
        pooled = [mask_pooling(dense_tokens[int(f)], m.flatten()[None])[0] for f, m in zip(frames, grid_masks)]
        return torch.stack(pooled)

    def forward(self, pooled: torch.Tensor, shape_masks: torch.Tensor, frame_tokens: torch.Tensor | None = None,
                region_pixels: torch.Tensor | None = None, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """(K, C) pooled features and (K, s, s) shape masks → (2K, C) tokens, per object [pooled, shape].

        With ``prompts.trajectory_points`` the shape token also gets ``trajectory_mlp`` of :func:`object_trajectory`
        on ``frame_tokens`` (T_s, N, C); with ``prompts.crop_size`` it gets ``crop_mlp`` of :func:`object_crops` of
        ``region_pixels`` (K, C, H, W; each object's region frame) in ``boxes`` (K, 4). Each is then required."""
        shape_token = self.shape_mlp(shape_masks.flatten(1).to(pooled.dtype))
        if self.trajectory_mlp is not None:
            if frame_tokens is None:
                raise ValueError("prompts.trajectory_points is set: the prompt encoder needs the sparse frame tokens")
            shape_token = shape_token + self.trajectory_mlp(object_trajectory(frame_tokens, pooled, *self.trajectory))
        if self.crop_mlp is not None:
            if region_pixels is None or boxes is None:
                raise ValueError("prompts.crop_size is set: the prompt encoder needs each object's region frame pixels "
                                 "and box")
            crops = object_crops(region_pixels.to(pooled.dtype), boxes, self.crop_size)
            shape_token = shape_token + self.crop_mlp(crops)
        tokens = torch.stack([self.pool_proj(pooled), shape_token], dim=1)
        return tokens.flatten(0, 1)
