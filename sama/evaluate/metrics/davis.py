"""DAVIS region similarity J, boundary accuracy F and their statistics (METRICS.md §1–§3), fast and exact.

Values are identical to ``davisvideochallenge/davis2017-evaluation:davis2017/metrics.py`` (checked to 1e-6 per
frame against the reference on ~500 random/structured masks incl. real DAVIS result masks, and pinned by
``tests/evaluate/fixtures/davis_reference.json``), but F does far less work than two full-frame dilations per frame:

- frames are bit-packed once (64 px per uint64) and each is cropped, to the bit, to the bounding box of both masks
  plus one pixel (empty frames cost only the packing);
- the crops of a group of similar-sized frames are stacked into one canvas and the boundary map (seg2bmap) and the
  disk dilation {x² + y² ≤ r²} (identical to ``skimage.morphology.disk``) run as whole-canvas word-wide shifts, ORs
  and byte-offset views: the canvas is shifted by 1…7 bits once, every wider horizontal run is then one OR with a
  byte-offset view, and the runs are OR-ed over the disk's row offsets;
- boundary matches are popcounts. Radii ≥ 64 px fall back to per-frame ``cv2.dilate`` on the crop.

Where numba is installed the same packed-bit algorithm runs as compiled per-frame loops (``davis_kernel``, loaded on
first use, ~2.5× faster on large objects); ``$SAMA_DAVIS_KERNEL=numpy`` forces the numpy path (the fallback).

Also here: the MeViS per-expression score (§3), the Ref-DAVIS17 protocols (§2) and a process-pool helper.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import cv2
import numpy as np

from sama.errors import ConfigError, DataError

# METRICS.md §1.2: default boundary tolerance as a fraction of the frame diagonal (davis2017 `bound_th=0.008`).
BOUND_TH = 0.008
# METRICS.md §1.4: J/F values above this count towards "recall" (O).
RECALL_THRESHOLD = 0.5
# METRICS.md §1.4: the decay statistic compares the first and the last of 4 bins.
DECAY_BINS = 4
# METRICS.md §1.4: davis2017 casts the bin indices to uint8, so they wrap for more than this many frames.
UINT8_FRAME_LIMIT = 256
# METRICS.md §1.5: the unsupervised DAVIS protocol refuses more than 20 proposals.
MAX_UNSUPERVISED_PROPOSALS = 20
# METRICS.md §2(a): Ref-DAVIS17 has 4 annotation sets (expression index = obj_id * 4 + anno_id).
REF_DAVIS_ANNOTATORS = 4

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------------------- helpers
def _as_volume(x: np.ndarray, name: str) -> np.ndarray:
    """Return a (T, H, W) bool view of an (H, W) or (T, H, W) mask."""
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"expected an (H, W) or (T, H, W) mask, got shape {arr.shape}", field=name)
    return arr.astype(bool, copy=False)


def _volumes(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> tuple[np.ndarray, ...]:
    g, p = _as_volume(gt, "gt"), _as_volume(pred, "pred")
    if g.shape != p.shape:
        raise DataError(f"ground truth {g.shape} and prediction {p.shape} shapes differ", field="pred")
    if void is None:
        return g, p, None
    v = _as_volume(void, "void")
    if v.shape != g.shape:
        raise DataError(f"ground truth {g.shape} and void {v.shape} shapes differ", field="void")
    return g, p, v


def bound_pixels(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance radius in pixels: ``bound_th`` if ≥ 1, else ``ceil(bound_th · sqrt(H² + W²))`` (§1.2)."""
    if bound_th <= 0:
        raise ConfigError(f"bound_th must be > 0, got {bound_th}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ConfigError(f"bound_th ≥ 1 is a radius in pixels and must be an integer, got {bound_th}")
        return int(bound_th)
    return math.ceil(bound_th * float(np.linalg.norm((height, width))))


def disk(radius: int) -> np.ndarray:
    """The (2r+1)×(2r+1) bool disk {x² + y² ≤ r²}, identical to ``skimage.morphology.disk(r)``."""
    coords = np.arange(-radius, radius + 1)
    return (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius**2


def disk_row_half_widths(radius: int) -> list[int]:
    """Row dy = 0 … r of :func:`disk` spans the columns |dx| ≤ ``isqrt(r² − dy²)``: that half-width per row."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]


# ------------------------------------------------------------------------------------------------------------- J
def db_eval_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J per frame (§1.1); J = 1 where both masks are empty.

    Args:
        gt: ground-truth mask, (H, W) or (T, H, W), any dtype (non-zero = foreground).
        pred: predicted mask of the same shape.
        void: optional mask of pixels to ignore.

    Returns:
        float64 array of shape (T,) (T = 1 for an (H, W) input).
    """
    g, p, v = _volumes(gt, pred, void)
    inter_px, union_px = p & g, p | g
    if v is not None:
        inter_px &= ~v
        union_px &= ~v
    inters = inter_px.sum(axis=(-2, -1), dtype=np.float64)
    union = union_px.sum(axis=(-2, -1), dtype=np.float64)
    empty = np.isclose(union, 0)
    return np.where(empty, 1.0, inters / np.where(empty, 1.0, union))


# ------------------------------------------------------------------------------------------------------------- F
def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """1-px boundary map of a mask (BSDS ``seg2bmap`` as in davis2017, §1.2); works on (H, W) or (..., H, W).

    The boundary is offset half a pixel towards the origin; the last row uses only the east neighbour, the last
    column only the south neighbour, and the bottom-right pixel is 0.
    """
    s = np.asarray(seg).astype(bool, copy=False)
    east = np.zeros_like(s)
    south = np.zeros_like(s)
    south_east = np.zeros_like(s)
    east[..., :, :-1] = s[..., :, 1:]
    south[..., :-1, :] = s[..., 1:, :]
    south_east[..., :-1, :-1] = s[..., 1:, 1:]
    b = (s ^ east) | (s ^ south) | (s ^ south_east)
    b[..., -1, :] = s[..., -1, :] ^ east[..., -1, :]
    b[..., :, -1] = s[..., :, -1] ^ south[..., :, -1]
    b[..., -1, -1] = False
    return b


_QUAD = np.ones((2, 2), np.uint8)  # the 2×2 block {p, east, south, south-east} that seg2bmap compares


def _bmap_u8(mask: np.ndarray) -> np.ndarray:
    """``seg2bmap`` of a 0/1 uint8 image with two 2×2 OpenCV morphology calls (SIMD, no temporaries).

    A pixel is on the boundary iff its 2×2 block is not constant, i.e. block-max ≠ block-min. Replicating the border
    reproduces the special rules: on the last row the block is {p, east}, on the last column {p, south}, and the
    bottom-right pixel compares only with itself (0).
    """
    block_max = cv2.dilate(mask, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    block_min = cv2.erode(mask, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return cv2.bitwise_xor(block_max, block_min)


def _f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
    """F from boundary pixel counts, with the empty-boundary rules of §1.2 (table in step 5)."""
    if n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = fg_match / n_fg, gt_match / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _f_frame(fg: np.ndarray, gt: np.ndarray, kernel: np.ndarray) -> float:
    """F of one frame; ``fg`` and ``gt`` are C-contiguous 0/1 uint8 (H, W) masks with void already removed."""
    height, width = fg.shape
    x, y, w, h = cv2.boundingRect(cv2.bitwise_or(fg, gt))
    if w == 0:
        return 1.0
    # Crop one pixel above/left (where the offset boundary lands) and one below/right (an all-zero row/column, so
    # seg2bmap's special last-row/column rules give the same result as on the full frame).
    r0, r1 = max(y - 1, 0), min(y + h + 1, height)
    c0, c1 = max(x - 1, 0), min(x + w + 1, width)
    fg_b = _bmap_u8(fg[r0:r1, c0:c1])
    gt_b = _bmap_u8(gt[r0:r1, c0:c1])
    n_fg, n_gt = cv2.countNonZero(fg_b), cv2.countNonZero(gt_b)
    if n_fg == 0 or n_gt == 0:
        return _f_from_counts(n_fg, n_gt, 0, 0)
    # Both boundaries lie inside the crop and dilation ignores outside pixels, so the crop gives full-frame results.
    fg_match = cv2.countNonZero(cv2.bitwise_and(fg_b, cv2.dilate(gt_b, kernel)))
    gt_match = cv2.countNonZero(cv2.bitwise_and(gt_b, cv2.dilate(fg_b, kernel)))
    return _f_from_counts(n_fg, n_gt, fg_match, gt_match)


# ------------------------------------------------------------------------------------------ F, bit-packed fast path
# Every frame is bit-packed once (little bit order: pixel c of a row is bit c % 64 of word c // 64) and cropped, to
# the bit, to the bounding box of both masks plus one pixel above/left (where the offset boundary lands) and one
# below/right (an all-zero row/column, or the image edge). The crops of a group of similar-sized frames are stacked
# as (2 · frames, rows, words) uint64 canvases — predictions first, then GT — and every step below is one numpy pass
# over the whole stack, written into reused buffers. A canvas row keeps at least ``radius`` zero bits after its last
# boundary pixel, so shifting the stack horizontally as one bit string never carries a pixel into another row.
_WORD_BITS = 64
_PACK_FRAMES = 16  # frames bit-packed at a time (bounds the packed copy of the volume)
_GROUP_WORDS = 1 << 14  # canvas words per group (128 KiB per buffer), so that each pass stays in the CPU's L2 cache
_LOW_BITS = np.uint64((1 << (_WORD_BITS - 1)) - 1)  # every bit but the top one


class _Crop(NamedTuple):
    """Frame ``frame``'s crop: rows [row0, row1) and columns [col0, col1) of the image."""

    frame: int
    row0: int
    row1: int
    col0: int
    col1: int


def _crops(union: np.ndarray, start: int, height: int, width: int) -> list[_Crop]:
    """Bit-exact crops of the frames of the packed union (frames, H, ⌈W/8⌉) of both masks that are not empty."""
    frames, _, num_bytes = union.shape
    row_sums = cv2.reduce(union.reshape(frames * height, num_bytes), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    occupied = row_sums.reshape(frames, height) > 0
    crops = []
    for t in np.flatnonzero(occupied.any(axis=1)):
        rows = np.flatnonzero(occupied[t])
        row0, row1 = int(rows[0]), int(rows[-1])
        columns = np.bitwise_or.reduce(union[t, row0 : row1 + 1], axis=0)  # OR over rows, per byte (8 columns)
        used = np.flatnonzero(columns)
        first, last = int(columns[used[0]]), int(columns[used[-1]])
        col0 = 8 * int(used[0]) + (first & -first).bit_length() - 1
        col1 = 8 * int(used[-1]) + last.bit_length() - 1
        crops.append(_Crop(start + int(t), max(row0 - 1, 0), min(row1 + 2, height), max(col0 - 1, 0),
                           min(col1 + 2, width)))
    return crops


def _row_words(crop: _Crop, radius: int) -> int:
    """Words per canvas row: the crop's bytes, and ≥ ``radius`` zero bits after its boundary plus a spare last bit.

    Boundary pixels lie in columns [0, col1 − col0 − 1] of the crop; the dilation reaches ``radius`` further and the
    replicated image-edge column sits at col1 − col0, so both stay clear of the next row's first bit and of the row's
    last bit (where the east shift brings the next row's first pixel). The crop is copied as whole bytes before it is
    bit-aligned, so those bytes must fit too.
    """
    span = crop.col1 - crop.col0
    copied_bits = 8 * (-(-crop.col1 // 8) - crop.col0 // 8)
    return -(-max(span + radius, span + 2, copied_bits) // _WORD_BITS)


def _groups(crops: list[_Crop], radius: int) -> Iterable[tuple[list[_Crop], tuple[int, int, int]]]:
    """Crops in groups of similar size, each with its canvas shape (2 · frames, rows, words) within the budget."""
    group: list[_Crop] = []
    rows = words = 0
    for crop in sorted(crops, key=lambda c: (c.row1 - c.row0, _row_words(c, radius))):
        crop_rows, crop_words = crop.row1 - crop.row0 + 1, _row_words(crop, radius)  # + 1: replicated last row
        if group and 2 * (len(group) + 1) * max(rows, crop_rows) * max(words, crop_words) > _GROUP_WORDS:
            yield group, (2 * len(group), rows, words)
            group, rows, words = [], 0, 0
        group.append(crop)
        rows, words = max(rows, crop_rows), max(words, crop_words)
    if group:
        yield group, (2 * len(group), rows, words)


class _Buffers:
    """Reused uint64 work buffers (fresh large arrays would cost page faults on every group)."""

    def __init__(self) -> None:
        self._flat: list[np.ndarray] = []

    def get(self, *shapes: tuple[int, ...]) -> list[np.ndarray]:
        """One buffer per shape, as arrays of those shapes (contents undefined)."""
        arrays = []
        for i, shape in enumerate(shapes):
            size = math.prod(shape)
            if i == len(self._flat):
                self._flat.append(np.empty(size, np.uint64))
            elif self._flat[i].size < size:
                self._flat[i] = np.empty(max(size, 2 * self._flat[i].size), np.uint64)
            arrays.append(self._flat[i][:size].reshape(shape))
        return arrays


def _fill_canvas(canvas: np.ndarray, spill: np.ndarray, packed: tuple[np.ndarray, np.ndarray], group: list[_Crop],
                 start: int, height: int, width: int) -> None:
    """Write a group's crops into ``canvas``, bit-aligned so that image column ``col0`` is bit 0 of its row.

    Each crop is copied as whole bytes, then every canvas is shifted right by ``col0 % 8`` bits as one bit string. The
    bits that this moves from a row into the end of the previous row are image columns left of ``col0``, which are
    empty in both masks. At the image's last row / column seg2bmap compares a pixel with itself, so that row / column
    is replicated one step further (its boundary is cleared again in ``_boundary_bits``).
    """
    n = len(group)
    canvas.fill(0)
    canvas_bytes = canvas.view(np.uint8)
    for i, crop in enumerate(group):
        byte0, byte1 = crop.col0 // 8, -(-crop.col1 // 8)
        for k, masks in enumerate(packed):
            canvas_bytes[k * n + i, : crop.row1 - crop.row0, : byte1 - byte0] = masks[
                crop.frame - start, crop.row0 : crop.row1, byte0:byte1]
    shifts = np.array([c.col0 % 8 for c in group] * 2, np.uint64)[:, None]
    flat, spill = canvas.reshape(2 * n, -1), spill.reshape(2 * n, -1)
    np.left_shift(flat[:, 1:], np.uint64(_WORD_BITS) - shifts, out=spill[:, :-1])  # a shift by 64 gives 0 in numpy
    flat >>= shifts
    flat[:, :-1] |= spill[:, :-1]
    for i, crop in enumerate(group):
        h = crop.row1 - crop.row0
        for slot in (i, n + i):
            if crop.col1 == width:  # last image column → replicate it into the next bit
                src, dst = width - 1 - crop.col0, width - crop.col0
                bits = (canvas[slot, :h, src // _WORD_BITS] >> np.uint64(src % _WORD_BITS)) & np.uint64(1)
                canvas[slot, :h, dst // _WORD_BITS] |= bits << np.uint64(dst % _WORD_BITS)
            if crop.row1 == height:  # last image row → replicate it into the next row
                canvas[slot, h] = canvas[slot, h - 1]


def _boundary_bits(bounds: np.ndarray, canvas: np.ndarray, scratch: np.ndarray, group: list[_Crop], height: int,
                   width: int) -> None:
    """seg2bmap of every canvas into ``bounds``: a pixel is on the boundary iff its 2×2 block is mixed.

    With ``h = p ^ east`` and ``v = p ^ south`` that is ``h | south(h) | v`` (if both rows of the block are constant
    and its left column is too, the block is constant). The replicated image edge is then cleared, as is the last bit
    of every row (the east shift brings the next row's first pixel there).
    """
    flat, east, tmp = canvas.reshape(-1), scratch.reshape(-1), bounds.reshape(-1)
    np.right_shift(flat, np.uint64(1), out=east)
    np.left_shift(flat[1:], np.uint64(_WORD_BITS - 1), out=tmp[:-1])
    east[:-1] |= tmp[:-1]
    east ^= flat  # h = p ^ east
    np.bitwise_xor(canvas[:, :-1], canvas[:, 1:], out=bounds[:, :-1])  # v = p ^ south
    bounds[:, -1] = canvas[:, -1]
    bounds |= scratch
    bounds[:, :-1] |= scratch[:, 1:]
    bounds[..., -1] &= _LOW_BITS
    n = len(group)
    for i, crop in enumerate(group):
        h = crop.row1 - crop.row0
        for slot in (i, n + i):
            if crop.row1 == height:
                bounds[slot, h] = 0
            if crop.col1 == width:
                col = width - crop.col0
                bounds[slot, :h, col // _WORD_BITS] &= ~np.uint64(1 << (col % _WORD_BITS))


def _disk_dilate(out: np.ndarray, bounds: np.ndarray, phases: list[np.ndarray], wider: np.ndarray,
                 scratch: np.ndarray, radius: int) -> None:
    """``out`` = dilation of the (N, rows, words) canvases by ``disk(radius)``; outside pixels contribute nothing.

    Row dy of the disk spans |dx| ≤ isqrt(r² − dy²), so the dilation is the OR over dy of the rows of H[w] shifted by
    dy, where H[w] = OR of the canvas shifted by −w…w columns. The canvas is shifted by 1…7 bits once (``phases``,
    with the carries between words); a shift by 8q + s columns is then phase s read q bytes further, so H[w + 1] =
    H[w] | two byte-offset views, and each H[w] is OR-ed into ``out`` at its row offsets as soon as it exists.
    """
    flat, spare = bounds.reshape(-1), scratch.reshape(-1)
    phase_bytes = [flat.view(np.uint8)]
    for bits, phase in enumerate(phases, start=1):
        shifted = phase.reshape(-1)
        np.left_shift(flat, np.uint64(bits), out=shifted)
        np.right_shift(flat[:-1], np.uint64(_WORD_BITS - bits), out=spare[1:])
        shifted[1:] |= spare[1:]
        phase_bytes.append(shifted.view(np.uint8))
    wide_bytes = wider.reshape(-1).view(np.uint8)
    np.copyto(wide_bytes, phase_bytes[0])

    def add_shift(columns: int) -> None:  # H |= canvas shifted by ``columns`` (towards higher columns if > 0)
        offset, bits = divmod(columns, 8)
        source = phase_bytes[bits]
        if offset > 0:
            wide_bytes[offset:] |= source[:-offset]
        elif offset < 0:
            wide_bytes[:offset] |= source[-offset:]
        else:
            np.bitwise_or(wide_bytes, source, out=wide_bytes)

    offsets_by_width: dict[int, list[int]] = {}
    for dy, half_width in enumerate(disk_row_half_widths(radius)):
        offsets_by_width.setdefault(half_width, []).append(dy)
    out.fill(0)
    reach = 0
    for half_width in sorted(offsets_by_width):
        while reach < half_width:
            reach += 1
            add_shift(reach)
            add_shift(-reach)
        for dy in offsets_by_width[half_width]:
            if dy == 0:
                out |= wider
            else:
                out[:, :-dy] |= wider[:, dy:]
                out[:, dy:] |= wider[:, :-dy]


def _f_packed(fg: np.ndarray, gt: np.ndarray, radius: int) -> np.ndarray:
    """Per-frame F of (T, H, W) bool volumes on bit-packed crops (exact; 0 < radius < 64)."""
    num_frames, height, width = fg.shape
    out = np.ones(num_frames, dtype=np.float64)  # frames where both masks are empty keep F = 1
    buffers = _Buffers()
    for start in range(0, num_frames, _PACK_FRAMES):
        stop = min(start + _PACK_FRAMES, num_frames)
        packed = (np.packbits(fg[start:stop], axis=-1, bitorder="little"),
                  np.packbits(gt[start:stop], axis=-1, bitorder="little"))
        union = packed[0] | packed[1]
        crops = _crops(union, start, height, width)
        for group, shape in _groups(crops, radius):
            n = len(group)
            canvas, bounds, dilated, wider, scratch, *phases = buffers.get(*[shape] * 12)
            _fill_canvas(canvas, scratch, packed, group, start, height, width)
            _boundary_bits(bounds, canvas, scratch, group, height, width)
            _disk_dilate(dilated, bounds, phases, wider, scratch, radius)
            counts = np.bitwise_count(bounds).reshape(2 * n, -1).sum(axis=1, dtype=np.int64)
            np.bitwise_and(bounds[:n], dilated[n:], out=scratch[:n])  # prediction boundary near the GT boundary
            np.bitwise_and(bounds[n:], dilated[:n], out=scratch[n:])  # GT boundary near the prediction boundary
            matches = np.bitwise_count(scratch).reshape(2 * n, -1).sum(axis=1, dtype=np.int64)
            for i, crop in enumerate(group):
                out[crop.frame] = _f_from_counts(int(counts[i]), int(counts[n + i]), int(matches[i]),
                                                 int(matches[n + i]))
    return out


# ----------------------------------------------------------------------------------- F, compiled (numba) kernel
# ``davis_kernel`` does the same bit-packed work as ``_f_packed`` as compiled per-frame loops over the crop (see its
# docstring); it needs numba, so it is imported on first use and the numpy path above is the fallback.
KERNEL_ENV = "SAMA_DAVIS_KERNEL"  # "auto" (numba if importable, else numpy), "numba" or "numpy"
_KERNEL_CHOICES = ("auto", "numba", "numpy")
_KERNEL_FRAMES = 32  # frames packed per kernel call (bounds the packed copy of the volume)


@functools.cache
def _import_kernel() -> ModuleType | None:
    """The compiled kernel module, or None where numba is not installed."""
    try:
        from sama.evaluate.metrics import davis_kernel
    except ImportError:
        return None
    return davis_kernel


def _kernel_choice() -> str:
    """``$SAMA_DAVIS_KERNEL``, validated."""
    choice = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if choice not in _KERNEL_CHOICES:
        raise ConfigError(f"{KERNEL_ENV}={choice!r}: expected one of {', '.join(_KERNEL_CHOICES)}")
    return choice


def _compiled_kernel() -> ModuleType | None:
    """The kernel module to use under ``$SAMA_DAVIS_KERNEL``, or None for the numpy path."""
    choice = _kernel_choice()
    if choice == "numpy":
        return None
    kernel = _import_kernel()
    if kernel is None and choice == "numba":
        raise ConfigError(f"{KERNEL_ENV}=numba but numba is not installed (pip install the pin in requirements.txt)")
    return kernel


def _f_compiled(fg: np.ndarray, gt: np.ndarray, radius: int, kernel: ModuleType) -> np.ndarray:
    """Per-frame F of (T, H, W) bool volumes with the compiled kernel (exact; 0 < radius < 64)."""
    num_frames, height, width = fg.shape
    plan = kernel.dilation_plan(radius)
    counts = np.zeros((num_frames, 4), np.int64)
    for start in range(0, num_frames, _KERNEL_FRAMES):
        stop = min(start + _KERNEL_FRAMES, num_frames)
        kernel.boundary_counts(kernel.pack_volume(fg[start:stop]), kernel.pack_volume(gt[start:stop]), stop - start,
                               height, width, *plan, counts[start:stop])
    return np.array([_f_from_counts(int(n_fg), int(n_gt), int(fg_match), int(gt_match))
                     for n_fg, n_gt, fg_match, gt_match in counts], dtype=np.float64)


def db_eval_boundary(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray:
    """Boundary F-measure per frame (§1.2), exactly as davis2017 ``db_eval_boundary``, without full-frame dilation.

    Args:
        gt: ground-truth mask, (H, W) or (T, H, W) (non-zero = foreground).
        pred: predicted mask of the same shape.
        void: optional pixels to ignore (removed from both masks before the boundaries are taken).
        bound_th: tolerance, a fraction of the frame diagonal if < 1, else a radius in pixels.

    Returns:
        float64 array of shape (T,) (T = 1 for an (H, W) input).
    """
    g, p, v = _volumes(gt, pred, void)
    if v is not None:
        g, p = g & ~v, p & ~v
    if g.shape[1] == 0 or g.shape[2] == 0:  # frames without pixels have no boundary on either side: F = 1 (§1.2)
        return np.ones(g.shape[0], dtype=np.float64)
    radius = bound_pixels(g.shape[1], g.shape[2], bound_th)
    if radius < _WORD_BITS and sys.byteorder == "little":  # packed rows are read as little-endian words
        kernel = _compiled_kernel()
        if kernel is not None:
            return _f_compiled(p, g, radius, kernel)
        return _f_packed(p, g, radius)
    g8 = np.ascontiguousarray(g).view(np.uint8)
    p8 = np.ascontiguousarray(p).view(np.uint8)
    kernel = disk(radius).view(np.uint8)
    return np.array([_f_frame(p8[t], g8[t], kernel) for t in range(g.shape[0])], dtype=np.float64)


def j_and_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (J, F) float64 arrays of shape (T,) for (H, W) or (T, H, W) masks."""
    return db_eval_iou(gt, pred, void), db_eval_boundary(gt, pred, void, bound_th)


# ---------------------------------------------------------------------------------------------------- statistics
def decay_bin_indices(num_frames: int, faithful: bool = False) -> np.ndarray:
    """Start indices of the decay bins: ``round(linspace(1, N, 5) + 1e-10) − 1`` (§1.4).

    ``faithful=True`` casts to uint8 as davis2017 does, so indices wrap for N > 256; the default keeps int64.
    """
    ids = np.round(np.linspace(1, num_frames, DECAY_BINS + 1) + 1e-10) - 1
    return ids.astype(np.uint8 if faithful else np.int64)


def db_statistics(x: Sequence[float] | np.ndarray, faithful: bool = False) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame values (davis2017 ``db_statistics``, §1.4).

    - mean = nanmean(x); recall = nanmean(x > 0.5) (NaN counts as False);
    - decay = nanmean(first bin) − nanmean(last bin), with 4 bins that share their boundary frames.

    ``faithful=True`` reproduces the reference's uint8 cast of the bin indices (for N > 256 they wrap, the bins are
    wrong and the decay can be NaN, e.g. N = 300 → ids [0, 75, 150, 224, 43], empty last bin); the default keeps int64
    indices, which equals the reference for N ≤ 255 and is correct beyond. The ``+ 1`` of the bin end is done in
    Python ints as under NumPy 1.x, for which davis2017 was written; under NumPy ≥ 2 the reference also wraps
    ``uint8(255) + 1`` to 0, so at exactly N = 256 it returns a NaN decay that neither mode reproduces.
    """
    values = np.asarray(x, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"expected a non-empty 1-D array of per-frame values, got shape {values.shape}", field="x")
    ids = decay_bin_indices(values.size, faithful=faithful)
    bins = [values[int(ids[i]) : int(ids[i + 1]) + 1] for i in range(DECAY_BINS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > RECALL_THRESHOLD))
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay


# ------------------------------------------------------------------------------------------- MeViS (METRICS.md §3)
def mevis_expression_scores(
    gt_volume: np.ndarray | None, pred_volume: np.ndarray | None, bound_th: float = BOUND_TH
) -> tuple[float, float]:
    """(j, f) of one expression: per-frame J and F averaged over all frames (§3, also Ref-DAVIS17 §2(b)).

    ``gt_volume`` is the union of the expression's objects, (T, H, W). A missing prediction (``None``, e.g. a missing
    video folder) scores (0, 0) as in the MeViS script.
    """
    if pred_volume is None:
        return 0.0, 0.0
    if gt_volume is None:
        raise DataError("missing ground-truth volume", field="gt_volume")
    j, f = j_and_f(gt_volume, pred_volume, bound_th=bound_th)
    return float(j.mean()), float(f.mean())


def aggregate_expressions(scores: Iterable[tuple[float, float]]) -> dict[str, float]:
    """Final MeViS-style score: J = mean of j, F = mean of f over expressions, J&F = (J + F)/2 (fractions)."""
    arr = np.asarray(list(scores), dtype=np.float64).reshape(-1, 2)
    if arr.shape[0] == 0:
        raise DataError("no expressions to aggregate", field="scores")
    j, f = float(arr[:, 0].mean()), float(arr[:, 1].mean())
    return {"J": j, "F": f, "J&F": (j + f) / 2, "num_expressions": int(arr.shape[0])}


def ref_davis_expression_protocol(scores: Iterable[tuple[float, float]]) -> dict[str, float]:
    """Ref-DAVIS17 protocol (b), SAMA's ``eval_davis17.py`` (§2(b)): MeViS-style mean over expressions.

    ``scores`` are per-expression ``mevis_expression_scores`` (a missing video folder → (0, 0)).
    """
    return aggregate_expressions(scores)


# ------------------------------------------------------------------------------------- Ref-DAVIS17 (METRICS.md §2)
# ReferFormer post-processing (§2(a)): scores below 0.5 are dropped, a constant 0.1 background channel is added.
REF_DAVIS_SCORE_THRESHOLD = 0.5
REF_DAVIS_BACKGROUND_SCORE = 0.1


def merge_annotator_masks(object_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Indexed (T, H, W) label volume from per-object score maps of one annotation set (§2(a) step 2).

    Each entry is an object's (T, H, W) float score (or a bool mask). Scores < 0.5 become 0, a background channel of 0.1
    is prepended, and the argmax gives labels 0 (background) … K.
    """
    if len(object_scores) == 0:
        raise DataError("no object score maps to merge", field="object_scores")
    stack = np.stack([np.asarray(s, dtype=np.float32) for s in object_scores])
    stack = np.where(stack < REF_DAVIS_SCORE_THRESHOLD, 0.0, stack)
    background = np.full((1, *stack.shape[1:]), REF_DAVIS_BACKGROUND_SCORE, dtype=np.float32)
    return np.argmax(np.concatenate([background, stack]), axis=0).astype(np.int64)


def unsupervised_davis_scores(
    gt_labels: np.ndarray, proposal_labels: np.ndarray, bound_th: float = BOUND_TH
) -> dict[str, Any]:
    """davis2017 unsupervised protocol for one sequence (§1.5): Hungarian matching of proposals to GT objects.

    Args:
        gt_labels: (T, H, W) int label volume, objects 1..K (0 background).
        proposal_labels: (T, H, W) int label volume of proposals 1..P (at most 20); missing ones are zero-padded.

    Returns:
        ``{"J": (K, T), "F": (K, T)}`` per-frame values of each GT object's assigned proposal (all frames), and
        ``"assignment"``: the proposal label (1-based, 0 = padding) matched to each GT object.
    """
    from scipy.optimize import linear_sum_assignment

    gt = np.asarray(gt_labels)
    prop = np.asarray(proposal_labels)
    if gt.shape != prop.shape or gt.ndim != 3:
        raise DataError(f"expected two (T, H, W) label volumes of equal shape, got {gt.shape} and {prop.shape}")
    num_gt = int(gt.max(initial=0))
    num_prop = int(prop.max(initial=0))
    if num_prop > MAX_UNSUPERVISED_PROPOSALS:
        raise DataError(f"{num_prop} proposals; the DAVIS unsupervised protocol allows at most "
                        f"{MAX_UNSUPERVISED_PROPOSALS}", field="proposal_labels")
    num_cols = max(num_prop, num_gt)
    j = np.zeros((num_cols, num_gt, gt.shape[0]))
    f = np.zeros_like(j)
    for pi in range(num_cols):
        pmask = prop == pi + 1
        for gi in range(num_gt):
            j[pi, gi], f[pi, gi] = j_and_f(gt == gi + 1, pmask, bound_th=bound_th)
    cost = -(j.mean(axis=2) + f.mean(axis=2)) / 2
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(cols)
    rows, cols = rows[order], cols[order]
    return {
        "J": j[rows, cols],
        "F": f[rows, cols],
        "assignment": [int(r) + 1 if r < num_prop else 0 for r in rows],
    }


def ref_davis_annotator_protocol(
    gt_labels: dict[str, np.ndarray],
    annotator_predictions: Sequence[dict[str, np.ndarray]],
    bound_th: float = BOUND_TH,
) -> dict[str, Any]:
    """Ref-DAVIS17 protocol (a) (§2(a)): per annotation set, unsupervised DAVIS evaluation; mean over the 4 sets.

    Args:
        gt_labels: video → (T, H, W) GT label volume.
        annotator_predictions: one dict per annotation set, video → (T, H, W) merged label volume (see
            ``merge_annotator_masks``); a missing video scores as all-background proposals.

    Returns:
        ``{"per_annotator": [{"J", "F", "J&F"}...], "J", "F", "J&F"}``; per set, J = mean over objects of the
        per-object mean J (likewise F) and J&F = (J + F)/2; the headline numbers are the means over the sets.
    """
    per_set = []
    for preds in annotator_predictions:
        j_means, f_means = [], []
        for video, gt in gt_labels.items():
            pred = preds.get(video)
            if pred is None:
                pred = np.zeros_like(gt)
            res = unsupervised_davis_scores(gt, pred, bound_th=bound_th)
            j_means.extend(db_statistics(row)[0] for row in res["J"])
            f_means.extend(db_statistics(row)[0] for row in res["F"])
        jm, fm = float(np.mean(j_means)), float(np.mean(f_means))
        per_set.append({"J": jm, "F": fm, "J&F": (jm + fm) / 2})
    if not per_set:
        raise DataError("no annotation sets given", field="annotator_predictions")
    out: dict[str, Any] = {"per_annotator": per_set}
    for key in ("J", "F", "J&F"):
        out[key] = float(np.mean([s[key] for s in per_set]))
    return out


# ---------------------------------------------------------------------------------------------- parallel helper
def map_videos(fn: Callable[[T], R], items: Iterable[T], workers: int = 1) -> list[R]:
    """``[fn(item) for item in items]`` in input order, over a process pool when ``workers > 1``.

    ``fn`` must be picklable (a module-level function of an importable module or of the main script). Workers are
    started by a fork server (spawned where there is none), never forked from the caller: a fork after OpenCV has
    started its thread pool can deadlock the child. Each worker runs OpenCV single-threaded.
    """
    seq = list(items)
    if workers <= 1 or len(seq) <= 1:
        return [fn(item) for item in seq]
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported this module and, unless disabled, the warmed-up F kernel
        # (a missing numba is skipped by the server), so no worker pays the numba import and JIT cache load.
        preload = [__name__] + ([] if _kernel_choice() == "numpy" else [f"{__package__}.davis_kernel"])
        context.set_forkserver_preload(preload)
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=cv2.setNumThreads,
                             initargs=(1,)) as pool:
        return list(pool.map(fn, seq, chunksize=max(1, len(seq) // (workers * 4))))

