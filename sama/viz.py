"""Visualisation: coloured mask overlays with text tags, and writing frames as PNG, GIF or MP4.

Used by ``sama data preview``, the demo and the evaluation reports. Text uses PIL's built-in default font (no
downloads); MP4 goes through PyAV (libx264, falling back to mpeg4).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sama.data.masks import mask_xyxy
from sama.errors import DataError

# Overlay colours (RGB), a qualitative palette; object k uses PALETTE[k % len(PALETTE)].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (64, 160, 255),
    (64, 220, 96),
    (255, 200, 32),
    (200, 96, 255),
    (255, 128, 0),
    (0, 220, 220),
    (255, 96, 200),
    (160, 160, 160),
    (128, 255, 0),
)
DEFAULT_ALPHA = 0.5
MP4_CODECS = ("libx264", "mpeg4")  # tried in order


def palette_colour(index: int) -> tuple[int, int, int]:
    """Overlay colour of object ``index``."""
    return PALETTE[index % len(PALETTE)]


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise DataError(
            f"expected an (H, W, 3) uint8 frame, got shape {frame.shape} dtype {frame.dtype}", field="frame"
        )
    return frame


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(
    frame: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[str | None] | None = None,
    *,
    colours: Sequence[tuple[int, int, int]] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """Blend each (H, W) mask onto ``frame`` in its colour, outline it, and tag it with its label.

    Returns a new (H, W, 3) uint8 image; the label sits at the mask's top-left corner on a dark box. Empty masks
    are skipped (their label too).
    """
    frame = _check_frame(frame)
    masks = list(masks)
    if labels is not None and len(labels) != len(masks):
        raise DataError(f"got {len(labels)} labels for {len(masks)} masks", field="labels")
    out = frame.astype(np.float32)
    boxes: list[tuple[int, int, str, tuple[int, int, int]]] = []
    for k, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != frame.shape[:2]:
            raise DataError(f"mask {k} has shape {mask.shape}, the frame is {frame.shape[:2]}", field="masks")
        if not mask.any():
            continue
        colour = tuple(colours[k]) if colours is not None else palette_colour(k)
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, dtype=np.float32)
        out[_boundary(mask)] = colour
        if labels is not None and labels[k]:
            x1, y1, _, _ = mask_xyxy(mask)
            boxes.append((x1, y1, str(labels[k]), colour))
    image = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    if boxes:
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default()
        for x, y, text, colour in boxes:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            width, height = right - left + 2, bottom - top + 2
            x = min(max(x, 0), max(image.width - width, 0))
            y = min(max(y - height, 0), max(image.height - height, 0))
            draw.rectangle((x, y, x + width - 1, y + height - 1), fill=(0, 0, 0))  # inclusive corners
            draw.text((x + 1 - left, y + 1 - top), text, fill=colour, font=font)
    return np.asarray(image)


def save_png(frame: np.ndarray, path: str | Path) -> Path:
    """Write one (H, W, 3) uint8 image as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_check_frame(frame)).save(path, format="PNG")
    return path


def tile(frames: Sequence[np.ndarray], columns: int = 4, gap: int = 2) -> np.ndarray:
    """Lay equal-size frames out in a grid (a contact sheet), separated by ``gap`` black pixels."""
    if not frames:
        raise DataError("tile needs at least one frame", field="frames")
    first = _check_frame(frames[0])
    height, width = first.shape[:2]
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    sheet = np.zeros((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), dtype=np.uint8)
    for k, frame in enumerate(frames):
        frame = _check_frame(frame)
        if frame.shape[:2] != (height, width):
            raise DataError(f"frame {k} is {frame.shape[:2]}, expected {(height, width)}", field="frames")
        r, c = divmod(k, columns)
        sheet[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = frame
    return sheet


def _output_path(writer: str, frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Checks shared by the animation writers; returns ``path`` with its folder created."""
    if not len(frames):
        raise DataError(f"{writer} needs at least one frame", field="frames")
    if fps <= 0:
        raise DataError(f"fps must be positive, got {fps}", field="fps")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0) -> Path:
    """Write frames as a looping GIF."""
    path = _output_path("write_gif", frames, path, fps)
    images = [Image.fromarray(_check_frame(frame)) for frame in frames]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, disposal=2
    )
    return path


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0) -> Path:
    """Write frames as an MP4 with PyAV (libx264, else mpeg4); odd sizes are padded to even by edge repeat."""
    import av  # heavy import kept local

    path = _output_path("write_mp4", frames, path, fps)
    first = _check_frame(frames[0])
    height, width = first.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    last_error: Exception | None = None
    for codec in MP4_CODECS:
        try:
            with av.open(str(path), mode="w") as container:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
                for frame in frames:
                    frame = np.pad(_check_frame(frame), pad, mode="edge")
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
            return path
        except (av.error.FFmpegError, ValueError) as exc:  # codec missing in this FFmpeg build
            last_error = exc
            path.unlink(missing_ok=True)
    raise DataError(f"no MP4 encoder available (tried {', '.join(MP4_CODECS)}): {last_error}", file=str(path))
