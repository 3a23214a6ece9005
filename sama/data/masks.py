"""Binary masks: COCO RLE encode/decode (pycocotools), mask dictionaries, box masks and nearest resizing.

Decoding follows the official ``decode_mask`` rules (SAMA.md §3.3): ``None`` or a frame beyond the list is an empty
mask, several RLEs of one object are OR-ed, a 3-D decode is summed over its last axis, and a decode whose size
differs from the frame size is resized (nearest) to (H, W). Malformed RLEs raise ``DataError`` instead of letting
pycocotools read past the end of its buffer.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as coco_mask

from sama.errors import DataError

RLE = dict[str, Any]
# Value forms of a mask dictionary entry: a plain per-frame list, or a dict wrapping it (SAMA.md §3.3, METRICS.md §5).
WRAPPED_LIST_KEYS = ("segmentations", "masks_rle")  # LV-VIS val; ReVOS mask_dict_foreground.json
PICKLE_SUFFIXES = (".pkl", ".pickle")
MAX_MASK_PIXELS = 1 << 28  # guard against an RLE whose 'size' would make pycocotools allocate gigabytes (16384²)


def rle_encode(mask: np.ndarray) -> RLE:
    """Encode one (H, W) binary mask as a COCO RLE whose ``counts`` is a JSON-safe ``str``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"rle_encode expects a 2-D (H, W) mask, got shape {mask.shape}", field="mask")
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(bool).astype(np.uint8)))
    return {"size": [int(encoded["size"][0]), int(encoded["size"][1])], "counts": encoded["counts"].decode("ascii")}


def rle_encode_frames(volume: np.ndarray) -> list[RLE]:
    """Encode a (T, H, W) binary volume as one RLE per frame."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise DataError(f"rle_encode_frames expects a (T, H, W) volume, got shape {volume.shape}", field="mask")
    return [rle_encode(frame) for frame in volume]


def _compressed_counts_total(counts: str) -> int:
    """Sum of the run lengths in a COCO compressed counts string (the LEB128-like format of ``rleFrString``)."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("counts string ends in the middle of a number")
            chunk = ord(counts[position]) - 48
            if not 0 <= chunk < 64:
                raise ValueError(f"character {counts[position]!r} is not a valid counts character")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("negative run length")
        runs.append(value)
    return sum(runs)


def check_rle(rle: Any) -> tuple[int, int]:
    """Validate the structure of one RLE and return its (height, width); raise ``ValueError`` with the reason."""
    if not isinstance(rle, Mapping):
        raise ValueError(f"an RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size, counts = rle.get("size"), rle.get("counts")
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise ValueError(f"'size' must be [height, width] with non-negative ints, got {size!r}")
    height, width = int(size[0]), int(size[1])
    if height * width > MAX_MASK_PIXELS:
        raise ValueError(f"'size' {height}x{width} exceeds the {MAX_MASK_PIXELS}-pixel limit")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        total = _compressed_counts_total(counts)
    elif isinstance(counts, Sequence) and all(isinstance(v, (int, np.integer)) and v >= 0 for v in counts):
        total = int(sum(counts))
    else:
        raise ValueError(f"'counts' must be a str, bytes or list of non-negative ints, got {type(counts).__name__}")
    if total != height * width:
        raise ValueError(f"run lengths sum to {total} but size {height}x{width} needs {height * width}")
    return height, width


def _decode_one(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode one validated RLE (compressed or uncompressed) to a 2-D bool array."""
    height, width = check_rle(rle)
    counts = rle["counts"]
    if isinstance(counts, str):
        native = {"size": [height, width], "counts": counts.encode("ascii")}
    elif isinstance(counts, bytes):
        native = {"size": [height, width], "counts": counts}
    else:
        native = coco_mask.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
    decoded = coco_mask.decode(native)
    if decoded.ndim == 3:  # SAMA.md §3.3: a 3-D decode is summed over its last axis
        decoded = decoded.sum(axis=-1)
    return decoded > 0


def _entry_parts(entry: Any) -> list[Any]:
    """The RLEs of one per-frame entry: an RLE, a list of RLEs (OR-ed) or ``None``; ``ValueError`` otherwise."""
    if entry is None:
        return []
    if isinstance(entry, Mapping):
        return [entry]
    if isinstance(entry, Sequence) and not isinstance(entry, (str, bytes)):
        return list(entry)
    raise ValueError(f"expected an RLE, a list of RLEs or null, got {type(entry).__name__}")


def rle_decode(rle: RLE | Sequence[RLE | None] | None, height: int, width: int) -> np.ndarray:
    """Decode an RLE, a list of RLEs (OR-ed) or ``None`` (empty) to an (H, W) bool mask of the frame size.

    Raises ``ValueError`` (a ``DataError`` when called through ``MaskDict``) on a malformed RLE.
    """
    result = np.zeros((height, width), dtype=bool)
    if rle is None:
        return result
    parts = _entry_parts(rle)
    for part in parts:
        if part is None:
            continue
        decoded = _decode_one(part)
        if decoded.size == 0:  # a 0-area RLE holds no pixels: nothing to OR in (and nothing to resize)
            continue
        if decoded.shape != (height, width):  # SAMA.md §3.3: other size → nearest resize to the frame size
            decoded = resize_nearest(decoded, (height, width))
        result |= decoded
    return result


def resize_nearest(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes to ``size`` (``int`` → square), keeping the dtype.

    Source index = floor(dst * in / out), the rule of ``torch.nn.functional.interpolate(mode="nearest")`` and
    ``cv2.INTER_NEAREST``, computed in exact integer arithmetic.
    """
    mask = np.asarray(mask)
    if mask.ndim < 2:
        raise DataError(f"resize_nearest expects (..., H, W), got shape {mask.shape}", field="mask")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h <= 0 or out_w <= 0:
        raise DataError(f"resize_nearest target size must be positive, got {(out_h, out_w)}", field="size")
    in_h, in_w = mask.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return mask.copy()
    if in_h == 0 or in_w == 0:
        raise DataError(f"cannot resize an empty {in_h}x{in_w} mask", field="mask")
    rows = (np.arange(out_h) * in_h) // out_h
    cols = (np.arange(out_w) * in_w) // out_w
    return mask[..., rows[:, None], cols[None, :]]


def mask_xyxy(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight pixel box ``(x1, y1, x2, y2)`` of an (H, W) mask, end exclusive (a one-pixel mask's box is one pixel
    wide); ``None`` when the mask is empty."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def box_mask(mask: np.ndarray) -> np.ndarray:
    """Fill each (H, W) mask's bounding box (SAMA.md §1.4 ``_get_region_infos``); an empty mask stays empty.

    Accepts (H, W) or (..., H, W); the box is computed per 2-D slice.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim < 2:
        raise DataError(f"box_mask expects (..., H, W), got shape {mask.shape}", field="mask")
    out = np.zeros_like(mask)
    flat_in = mask.reshape(-1, *mask.shape[-2:])
    flat_out = out.reshape(-1, *mask.shape[-2:])
    for src, dst in zip(flat_in, flat_out):
        box = mask_xyxy(src)
        if box is not None:
            x1, y1, x2, y2 = box
            dst[y1:y2, x1:x2] = True
    return out


class MaskDict:
    """Per-object, per-frame RLE masks: ``{str(obj_id): [RLE | list[RLE] | None per frame]}``.

    Lists are aligned with the video's ``frames``; a frame beyond the list is empty (SAMA.md §3.3).
    """

    def __init__(self, entries: Mapping[str, Sequence[Any]], source: str | None = None) -> None:
        self._entries: dict[str, list[Any]] = {}
        self.source = source
        for key, value in entries.items():
            self._entries[str(key)] = self._normalise_value(str(key), value)

    def _normalise_value(self, key: str, value: Any) -> list[Any]:
        """Unwrap the LV-VIS / ReVOS dict forms and check that the value is a per-frame list."""
        if isinstance(value, Mapping):
            for wrapped in WRAPPED_LIST_KEYS:
                if wrapped in value:
                    value = value[wrapped]
                    break
            else:
                raise DataError(
                    f"a dict value must hold its per-frame list under one of {list(WRAPPED_LIST_KEYS)}, "
                    f"got keys {sorted(value)[:5]}",
                    file=self.source,
                    record=f"object {key}",
                )
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise DataError(
                f"expected a list with one RLE or null per frame, got {type(value).__name__}",
                file=self.source,
                record=f"object {key}",
            )
        return list(value)

    @classmethod
    def load(cls, path: str | Path, allow_pickle: bool = False) -> MaskDict:
        """Read a JSON mask dictionary; pickles (Ref-YouTube-VOS train) only with ``allow_pickle=True``."""
        path = Path(path)
        if not path.is_file():
            raise DataError("mask dictionary file not found", file=str(path))
        if path.suffix.lower() in PICKLE_SUFFIXES:
            if not allow_pickle:
                raise DataError(
                    "refusing to unpickle a mask dictionary: pickle can run arbitrary code. Pass allow_pickle=True "
                    "(CLI: --allow-pickle) only for files you trust, or convert it to JSON",
                    file=str(path),
                )
            with path.open("rb") as handle:
                data = pickle.load(handle)
        else:
            try:
                with path.open("r", encoding="utf-8") as handle:
                    data = json.load(handle)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)
                ) from exc
            except UnicodeDecodeError as exc:
                raise DataError(f"not a UTF-8 JSON file ({exc.reason})", file=str(path)) from exc
        if not isinstance(data, Mapping):
            raise DataError(
                f"expected a mapping {{object id: [RLE per frame]}}, got {type(data).__name__}", file=str(path)
            )
        return cls(data, source=str(path))

    def __contains__(self, obj_id: object) -> bool:
        return str(obj_id) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def ids(self) -> list[str]:
        """All object ids (as strings)."""
        return list(self._entries)

    def num_frames(self, obj_id: int | str) -> int:
        """Length of the per-frame list of ``obj_id``."""
        return len(self._frames_of(obj_id))

    def _frames_of(self, obj_id: int | str) -> list[Any]:
        key = str(obj_id)
        if key not in self._entries:
            raise DataError(
                f"object id {key!r} is not in the mask dictionary", file=self.source, record=f"object {key}"
            )
        return self._entries[key]

    def frame_rle(self, obj_id: int | str, frame: int) -> Any:
        """The raw entry (RLE, list of RLEs or ``None``) of ``obj_id`` at ``frame``; beyond the list → ``None``."""
        frames = self._frames_of(obj_id)
        if frame < 0:
            raise DataError(f"frame index must be >= 0, got {frame}", file=self.source, record=f"object {obj_id}")
        return frames[frame] if frame < len(frames) else None

    def frame_mask(self, obj_id: int | str, frame: int, height: int, width: int) -> np.ndarray:
        """(H, W) bool mask of ``obj_id`` at ``frame``; a malformed RLE raises a ``DataError`` naming both."""
        entry = self.frame_rle(obj_id, frame)
        try:
            return rle_decode(entry, height, width)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"invalid RLE for object {obj_id} at frame {frame}: {exc}",
                file=self.source,
                record=f"object {obj_id}",
                field=f"frame {frame}",
            ) from exc

    def volume(
        self,
        obj_ids: Iterable[int | str],
        num_frames: int,
        height: int,
        width: int,
        *,
        frame_indices: Sequence[int] | None = None,
    ) -> np.ndarray:
        """(T, H, W) bool OR of the objects' masks over frames ``0..num_frames-1`` (or only ``frame_indices``)."""
        indices = list(range(num_frames)) if frame_indices is None else list(frame_indices)
        out = np.zeros((len(indices), height, width), dtype=bool)
        for obj_id in obj_ids:
            for slot, frame in enumerate(indices):
                out[slot] |= self.frame_mask(obj_id, frame, height, width)
        return out

    def validate(self) -> list[DataError]:
        """Check every entry's structure without decoding; return one ``DataError`` per malformed RLE."""
        problems: list[DataError] = []
        for key, frames in self._entries.items():
            for frame, entry in enumerate(frames):
                try:
                    for part in _entry_parts(entry):
                        if part is not None:
                            check_rle(part)
                except ValueError as exc:
                    problems.append(
                        DataError(
                            f"invalid RLE for object {key} at frame {frame}: {exc}",
                            file=self.source,
                            record=f"object {key}",
                            field=f"frame {frame}",
                        )
                    )
        return problems
