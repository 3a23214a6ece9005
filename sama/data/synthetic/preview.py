"""Preview of a synthetic dataset video: frames with coloured mask overlays and object tags, as GIF and PNG sheet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sama.data.masks import MaskDict
from sama.data.synthetic.writer import MANIFEST
from sama.errors import DataError

PREVIEW_DIR = "preview"
SHEET_FRAMES = 8  # frames shown on the PNG contact sheet, evenly spread over the video
PREVIEW_SCALE = 3  # frames are upscaled (nearest) so the tags stay readable on small synthetic videos


def load_manifest(dataset_dir: str | Path) -> dict[str, Any]:
    """Read ``scenes.json`` of a dataset written by ``generate_dataset``."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no {MANIFEST} here: not a dataset written by `sama data synth`", file=str(path))
    try:
        with path.open("r", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("videos"), dict):
        raise DataError("expected an object with a 'videos' mapping", file=str(path), field="videos")
    return manifest


def preview_frames(
    dataset_dir: str | Path, video_id: str | None = None, scale: int = PREVIEW_SCALE
) -> tuple[str, list]:
    """Overlaid frames of one video (default: the first one) and its id."""
    from sama.viz import overlay

    root = Path(dataset_dir)
    videos = load_manifest(root)["videos"]
    if not videos:
        raise DataError("the dataset has no videos", file=str(root / MANIFEST))
    video_id = video_id or next(iter(videos))
    if video_id not in videos:
        known = ", ".join(list(videos)[:5])
        raise DataError(f"unknown video {video_id!r}; known ids start with {known}", file=str(root / MANIFEST))
    info = videos[video_id]
    mask_dict = MaskDict.load(root / f"{info['split']}_mask_dict.json")
    folder = root / info["video"]
    frame_paths = sorted(folder.glob("*.jpg"))
    if not frame_paths:
        raise DataError("no JPEG frames in the video folder", file=str(folder))
    labels = [f"{obj_id} {obj['colour']} {obj['shape']}" for obj_id, obj in zip(info["obj_ids"], info["objects"])]
    out = []
    for t, path in enumerate(frame_paths):
        frame = np.asarray(Image.open(path).convert("RGB"))
        masks = [mask_dict.frame_mask(obj_id, t, frame.shape[0], frame.shape[1]) for obj_id in info["obj_ids"]]
        if scale > 1:
            frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
            masks = [mask.repeat(scale, axis=0).repeat(scale, axis=1) for mask in masks]
        out.append(overlay(frame, masks, labels, alpha=0.25))
    return video_id, out


def write_preview(
    dataset_dir: str | Path, video_id: str | None = None, out_dir: str | Path | None = None, fps: float = 6.0
) -> tuple[Path, Path]:
    """Write ``<video_id>.gif`` (all frames) and ``<video_id>.png`` (contact sheet) and return their paths."""
    from sama.viz import save_png, tile, write_gif

    video_id, frames = preview_frames(dataset_dir, video_id)
    target = Path(out_dir) if out_dir is not None else Path(dataset_dir) / PREVIEW_DIR
    gif = write_gif(frames, target / f"{video_id}.gif", fps=fps)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(SHEET_FRAMES, len(frames))).round().astype(int))
    png = save_png(tile([frames[t] for t in picks], columns=4), target / f"{video_id}.png")
    return gif, png
