"""Writing a chat turn's grounded masks to disk: per object a folder of per-frame PNG masks and one RLE JSON, and
coloured overlays (GIF + MP4) labelled with each object's phrase. Shared by ``sama chat /save`` and ``sama demo``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sama.data.masks import rle_decode
from sama.data.video import Video

OVERLAY_FPS = 8.0  # playback rate of the overlay GIF / MP4 (display only)
MIN_DISPLAY_SIDE = 288  # overlays of smaller videos are upscaled to about this long side (display only)


@dataclass
class GroundedObject:
    """One grounded object to draw: its label and one RLE (or None) per video frame."""

    label: str
    rles: list[dict[str, Any] | None]
    meta: dict[str, Any] = field(default_factory=dict)

    def frame_mask(self, index: int, height: int, width: int) -> np.ndarray:
        return rle_decode(self.rles[index], height, width) if index < len(self.rles) else np.zeros((height, width),
                                                                                                    dtype=bool)


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a phrase (``the red circle`` → ``the-red-circle``)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "object"


def turn_objects(turn: Any) -> list[GroundedObject]:
    """The grounded objects of a ChatTurn: one per ``[SEG]``, labelled with its phrase (``[SEG] k`` when bare)."""
    objects = []
    for k, (phrase, rles) in enumerate(zip(turn.phrases + [None] * turn.num_objects, turn.rles())):
        objects.append(GroundedObject(label=phrase or f"[SEG] {k}", rles=rles,
                                      meta={"question": turn.question, "answer": turn.raw_text, "seg_index": k}))
    return objects


def write_object_masks(obj: GroundedObject, out_dir: str | Path, index: int, height: int, width: int) -> list[Path]:
    """``object_<k>_<slug>/<frame>.png`` (0/255 masks, every frame) and ``object_<k>_<slug>.json`` (RLEs)."""
    out_dir = Path(out_dir)
    stem = f"object_{index}_{slug(obj.label)}"
    folder = out_dir / stem
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    written = []
    for t in range(len(obj.rles)):
        path = folder / f"{t:05d}.png"
        Image.fromarray(obj.frame_mask(t, height, width).astype(np.uint8) * 255).save(path, format="PNG")
        written.append(path)
    record = {"label": obj.label, "height": height, "width": width, "num_frames": len(obj.rles),
              "masks": obj.rles, **obj.meta}
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(record), encoding="utf-8")
    return [json_path, *written]


def display_scale(height: int, width: int) -> int:
    """Integer upscaling that keeps the overlay labels readable on small videos (≥ MIN_DISPLAY_SIDE px)."""
    return max(1, -(-MIN_DISPLAY_SIDE // max(height, width)))


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image if scale == 1 else image.repeat(scale, axis=0).repeat(scale, axis=1)


def write_overlays(video: Video, objects: Sequence[GroundedObject], out_dir: str | Path, name: str = "overlay",
                   fps: float = OVERLAY_FPS) -> list[Path]:
    """``<name>.gif`` and ``<name>.mp4``: every frame with each object in its own colour and its label (small
    videos are upscaled, nearest neighbour, so the labels stay readable)."""
    from sama.viz import overlay, write_gif, write_mp4

    out_dir = Path(out_dir)
    h, w = video.height, video.width
    scale = display_scale(h, w)
    labels = [obj.label for obj in objects]
    frames = []
    for t, frame in enumerate(video.iter_frames()):
        masks = [_upscale(obj.frame_mask(t, h, w), scale) for obj in objects]
        frame = _upscale(frame, scale)
        frames.append(overlay(frame, masks, labels) if objects else frame)
    return [write_gif(frames, out_dir / f"{name}.gif", fps=fps), write_mp4(frames, out_dir / f"{name}.mp4", fps=fps)]


def save_turn(turn: Any, video: Video, out_dir: str | Path) -> list[Path]:
    """All files of one turn's masks (PNGs + RLE JSON per object, overlay GIF + MP4); [] when it grounded nothing."""
    objects = turn_objects(turn)
    if not objects:
        return []
    written: list[Path] = []
    for k, obj in enumerate(objects):
        written += write_object_masks(obj, out_dir, k, video.height, video.width)
    return written + write_overlays(video, objects, out_dir)
