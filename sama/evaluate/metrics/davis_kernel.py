"""Compiled (numba) kernel for DAVIS boundary F: per-frame boundary and match counts from bit-packed masks.

This module's one job is the hot loop of ``davis.db_eval_boundary``; it imports numba at import time, so
``davis`` imports it lazily and falls back to its pure-numpy bit-packed path when numba is missing. Values are the
davis2017 ones exactly (METRICS.md §1.2): only integer counts are computed here, F is formed by the caller.

The volume is packed as one bit stream (``pack_volume``: a 1-D ``np.packbits``, ~1.7× faster than packing rows
whose width is not a multiple of 8). Per frame, on rows of 64 px per uint64 word:

1. the first and last set bits of the frame give its top and bottom rows; the rows in between, OR-ed in groups that
   share their bit offset within a word, give the columns; the crop spans those words plus one zero word on each side
   (room for the dilation to spill over), copied row by row from its bit offset with the bits past the image's last
   column cleared;
2. seg2bmap is ``(s ^ east) | (s ^ south) | (s ^ south-east)`` per word, with the image's last row and column
   replicated one step further (the reference's special rules), so it is one flat, vectorised loop over the crop;
3. the disk {x² + y² ≤ r²} (``skimage.morphology.disk``) is, row dy, a horizontal run of half-width
   ``isqrt(r² − dy²)``; every distinct half-width is one level of a chain ``H[a + b] = H[a] | H[a] << b | H[a] >> b``
   (carries between words included), and the dilation is the OR over dy of level ``w(dy)`` shifted by dy rows;
4. matches are popcounts of ``own boundary & other's dilation``.

Every loop indexes slices from zero so that numba emits no negative-index wrap-around checks and LLVM vectorises it.
``cache=True`` keeps the compiled code next to this file (``__pycache__``), so only the first run compiles (~10 s);
importing this module loads it (~0.4 s plus ~0.3 s for numba itself), see ``_warm_up``.
"""

from __future__ import annotations

import numba
import numpy as np

from sama.evaluate.metrics.davis import disk_row_half_widths

_U = np.uint64
_WORD_BITS = 64
_SPARE_WORDS = 4  # zero words after the packed stream (``_load_crop`` reads at most 3 past its end)
_jit = numba.njit(cache=True, nogil=True)


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    """Set bits of a 64-bit word (SWAR)."""
    x = x - ((x >> _U(1)) & _U(0x5555555555555555))
    x = (x & _U(0x3333333333333333)) + ((x >> _U(2)) & _U(0x3333333333333333))
    x = (x + (x >> _U(4))) & _U(0x0F0F0F0F0F0F0F0F)
    return (x * _U(0x0101010101010101)) >> _U(56)


@numba.njit(cache=True, nogil=True, inline="always")
def _lowest_bit(v: np.uint64) -> int:
    """Index of the lowest set bit of a non-zero word."""
    b = 0
    while (v >> _U(b)) & _U(1) == 0:
        b += 1
    return b


@numba.njit(cache=True, nogil=True, inline="always")
def _highest_bit(v: np.uint64) -> int:
    """Index of the highest set bit of a non-zero word."""
    b = 63
    while (v >> _U(b)) & _U(1) == 0:
        b -= 1
    return b


@numba.njit(cache=True, nogil=True, inline="always")
def _first_set(fg: np.ndarray, gt: np.ndarray, lo: int, hi: int) -> int:
    """Position of the first bit set in either stream within [lo, hi), or −1."""
    i, last = lo >> 6, (hi - 1) >> 6
    v = (fg[i] | gt[i]) & (~_U(0) << _U(lo & 63))
    while i < last:
        if v != 0:
            return i * 64 + _lowest_bit(v)
        i += 1
        v = fg[i] | gt[i]
    v &= ~_U(0) >> _U(63 - ((hi - 1) & 63))
    return i * 64 + _lowest_bit(v) if v != 0 else -1


@numba.njit(cache=True, nogil=True, inline="always")
def _last_set(fg: np.ndarray, gt: np.ndarray, lo: int, hi: int) -> int:
    """Position of the last bit set in either stream within [lo, hi) (at least one is set)."""
    i, first = (hi - 1) >> 6, lo >> 6
    v = (fg[i] | gt[i]) & (~_U(0) >> _U(63 - ((hi - 1) & 63)))
    while i > first:
        if v != 0:
            return i * 64 + _highest_bit(v)
        i -= 1
        v = fg[i] | gt[i]
    v &= ~_U(0) << _U(lo & 63)
    return i * 64 + _highest_bit(v)


@_jit
def _column_range(fg: np.ndarray, gt: np.ndarray, frame_bit: int, top: int, bottom: int, width: int,
                  by_offset: np.ndarray, used: np.ndarray) -> tuple[int, int]:
    """First and last column with a set bit in rows top … bottom (at least one is set).

    Rows that start at the same bit offset within a word are OR-ed word by word as they lie in the stream (no
    shifts); each of the ≤ 64 offsets is then aligned to column 0 once.
    """
    span = width // _WORD_BITS + 2  # words touched by one row, from the word holding its first bit
    used[:] = False
    for y in range(top, bottom + 1):
        row_bit = frame_bit + y * width
        i, offset = row_bit >> 6, row_bit & 63
        if not used[offset]:
            used[offset] = True
            by_offset[offset, :span] = 0
        acc, f_row, g_row = by_offset[offset, :span], fg[i : i + span], gt[i : i + span]
        for k in range(span):
            acc[k] |= f_row[k] | g_row[k]
    full, rest = width // _WORD_BITS, width % _WORD_BITS
    x0, x1 = width, -1
    for offset in range(_WORD_BITS):
        if not used[offset]:
            continue
        acc = by_offset[offset]
        shift, back = _U(offset), _U(63 - offset)
        for k in range(full + (1 if rest else 0)):
            v = (acc[k] >> shift) | ((acc[k + 1] << _U(1)) << back)
            if k == full:
                v &= (_U(1) << _U(rest)) - _U(1)  # bits past the row's end belong to the next row
            if v != 0:
                x0 = min(x0, k * _WORD_BITS + _lowest_bit(v))
                x1 = max(x1, k * _WORD_BITS + _highest_bit(v))
    return x0, x1


@_jit
def _load_crop(words: np.ndarray, frame_bit: int, row0: int, rows: int, word0: int, crop_words: int, height: int,
               width: int, masks: np.ndarray) -> None:
    """Copy image rows ``row0 … row0 + rows`` (the last clamped to H − 1) into ``masks``, ``crop_words`` per row.

    Slot 0 of each row is zero (the left spill word), slot j ≥ 1 holds image word ``word0 + j − 1`` with the bits past
    column W − 1 cleared. Image column W is then set to column W − 1, which reproduces seg2bmap's last-column rule.
    """
    last_word = width // _WORD_BITS
    inside = width - _WORD_BITS * word0  # image columns from the crop's first word on
    full = min(inside // _WORD_BITS, crop_words - 1)  # slots 1 … full hold 64 image columns
    rest = inside - _WORD_BITS * full if full < crop_words - 1 else 0
    for r in range(rows + 1):
        start_bit = frame_bit + min(row0 + r, height - 1) * width + _WORD_BITS * word0
        i, shift = start_bit >> 6, _U(start_bit & 63)
        back = _U(63) - shift
        src = words[i : i + crop_words + 1]
        dst = masks[r * crop_words : (r + 1) * crop_words]
        dst[0] = 0
        for j in range(full):
            dst[j + 1] = (src[j] >> shift) | ((src[j + 1] << _U(1)) << back)
        for j in range(full + 1, crop_words):
            dst[j] = 0
        if rest > 0:
            tail = (src[full] >> shift) | ((src[full + 1] << _U(1)) << back)
            dst[full + 1] = tail & ((_U(1) << _U(rest)) - _U(1))
        if last_word - word0 + 1 < crop_words:
            col = width - 1
            bit = (dst[col // _WORD_BITS - word0 + 1] >> _U(col % _WORD_BITS)) & _U(1)
            dst[last_word - word0 + 1] |= bit << _U(width % _WORD_BITS)
    masks[(rows + 1) * crop_words] = 0


@_jit
def _boundary(masks: np.ndarray, rows: int, crop_words: int, word0: int, width: int, bounds: np.ndarray) -> int:
    """seg2bmap of the loaded crop into ``bounds`` (same layout, spill words zero); returns its pixel count."""
    n = rows * crop_words
    here, east = masks[:n], masks[1 : n + 1]
    south, south_east = masks[crop_words : crop_words + n], masks[crop_words + 1 : crop_words + n + 1]
    for i in range(n):
        s = here[i]
        so = south[i]
        e = (s >> _U(1)) | (east[i] << _U(63))
        se = (so >> _U(1)) | (south_east[i] << _U(63))
        bounds[i] = (s ^ e) | (s ^ so) | (s ^ se)
    last_slot = width // _WORD_BITS - word0 + 1
    inside_image = (_U(1) << _U(width % _WORD_BITS)) - _U(1)  # the replicated column W is not a pixel
    for r in range(rows):
        base = r * crop_words
        bounds[base] = 0
        bounds[base + crop_words - 1] = 0
        if last_slot < crop_words - 1:
            bounds[base + last_slot] &= inside_image
    count = _U(0)
    for i in range(n):
        count += _popcount(bounds[i])
    return np.int64(count)


@_jit
def _horizontal_levels(levels: np.ndarray, level_base: np.ndarray, level_step: np.ndarray, start: int,
                       n: int) -> None:
    """Level j = level ``level_base[j]`` dilated horizontally by ±``level_step[j]`` (level 0 is the boundary)."""
    for level in range(1, level_base.size):
        src = levels[level_base[level]]
        dst = levels[level, start : start + n]
        step = _U(level_step[level])
        carry = _U(_WORD_BITS) - step
        left, here, right = src[start - 1 : start + n - 1], src[start : start + n], src[start + 1 : start + n + 1]
        for i in range(n):
            h = here[i]
            dst[i] = h | (h << step) | (left[i] >> carry) | (h >> step) | (right[i] << carry)


@_jit
def _matches(own: np.ndarray, other_levels: np.ndarray, level_of_dy: np.ndarray, start: int, n: int,
             crop_words: int, dilated: np.ndarray) -> int:
    """Pixels of ``own`` boundary within the disk of the other boundary (rows outside the crop are zero)."""
    radius = level_of_dy.size - 1
    acc = dilated[:n]
    acc[:] = other_levels[level_of_dy[0], start : start + n]
    for dy in range(1, radius + 1):
        level = other_levels[level_of_dy[dy]]
        offset = dy * crop_words
        above, below = level[start - offset : start - offset + n], level[start + offset : start + offset + n]
        for i in range(n):
            acc[i] |= above[i] | below[i]
    mine = own[start : start + n]
    count = _U(0)
    for i in range(n):
        count += _popcount(mine[i] & acc[i])
    return np.int64(count)


@_jit
def boundary_counts(fg: np.ndarray, gt: np.ndarray, frames: int, height: int, width: int, level_base: np.ndarray,
                    level_step: np.ndarray, level_of_dy: np.ndarray, out: np.ndarray) -> None:
    """Per-frame ``(n_fg, n_gt, fg_match, gt_match)`` into ``out`` (T, 4) int64.

    Args:
        fg, gt: prediction / ground truth (T, H, W) volumes as ``pack_volume`` bit streams.
        frames, height, width: T, H, W.
        level_base, level_step, level_of_dy: the disk's dilation plan from ``dilation_plan(radius)``.
    """
    radius = level_of_dy.size - 1
    num_words = width // _WORD_BITS + 1  # + column W, the replicated last column
    size = (height + 1 + 2 * radius) * (num_words + 2) + 2
    num_levels = level_base.size
    masks_fg = np.zeros(size, np.uint64)
    masks_gt = np.zeros(size, np.uint64)
    levels_fg = np.zeros((num_levels, size), np.uint64)
    levels_gt = np.zeros((num_levels, size), np.uint64)
    dilated = np.zeros(size, np.uint64)
    frame_bits = height * width
    by_offset = np.zeros((_WORD_BITS, num_words + 2), np.uint64)
    used = np.zeros(_WORD_BITS, np.bool_)
    for t in range(frames):
        out[t, :] = 0
        frame_bit = t * frame_bits
        first = _first_set(fg, gt, frame_bit, frame_bit + frame_bits)
        if first < 0:
            continue
        top = (first - frame_bit) // width
        bottom = (_last_set(fg, gt, frame_bit, frame_bit + frame_bits) - frame_bit) // width
        x0, x1 = _column_range(fg, gt, frame_bit, top, bottom, width, by_offset, used)
        # Boundary pixels lie in rows top − 1 … bottom and columns x0 − 1 … x1 of the masks' box.
        row0 = max(top - 1, 0)
        rows = bottom - row0 + 1
        word0 = max(x0 - 1, 0) // _WORD_BITS
        crop_words = x1 // _WORD_BITS - word0 + 3
        n = rows * crop_words
        start = radius * crop_words + 1  # ``radius`` zero rows above and below: the vertical reach
        _load_crop(fg, frame_bit, row0, rows, word0, crop_words, height, width, masks_fg)
        _load_crop(gt, frame_bit, row0, rows, word0, crop_words, height, width, masks_gt)
        n_fg = _boundary(masks_fg, rows, crop_words, word0, width, levels_fg[0, start:])
        n_gt = _boundary(masks_gt, rows, crop_words, word0, width, levels_gt[0, start:])
        out[t, 0], out[t, 1] = n_fg, n_gt
        if n_fg == 0 or n_gt == 0:
            continue
        for level in range(num_levels):
            levels_fg[level, :start] = 0
            levels_gt[level, :start] = 0
            levels_fg[level, start + n : 2 * start + n] = 0
            levels_gt[level, start + n : 2 * start + n] = 0
        _horizontal_levels(levels_fg, level_base, level_step, start, n)
        _horizontal_levels(levels_gt, level_base, level_step, start, n)
        out[t, 2] = _matches(levels_fg[0], levels_gt, level_of_dy, start, n, crop_words, dilated)
        out[t, 3] = _matches(levels_gt[0], levels_fg, level_of_dy, start, n, crop_words, dilated)


def pack_volume(volume: np.ndarray) -> np.ndarray:
    """A bool (T, H, W) volume as one little-endian bit stream of uint64 words (pixel i = bit i % 64 of word i // 64),
    plus spare zero words: a crop row is read as whole words from its bit offset, up to 3 words past the stream."""
    packed = np.packbits(volume.reshape(-1), bitorder="little")  # 1-D: no per-row padding, ~1.7× faster
    words = np.zeros(packed.size // 8 + 1 + _SPARE_WORDS, np.uint64)
    words.view(np.uint8)[: packed.size] = packed
    return words


def dilation_plan(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The disk's horizontal levels: (base level, step, level of each row offset dy = 0 … r).

    Level 0 is width 0; each next level widens an earlier one by ``step ≤ 2·width + 1`` (so the two shifted copies
    and the original leave no gap), which inserts intermediate widths where the disk's row widths jump.
    """
    if not 0 < radius < _WORD_BITS:
        raise ValueError(f"the compiled kernel needs 0 < radius < {_WORD_BITS}, got {radius}")
    widths = disk_row_half_widths(radius)
    levels, base, step = [0], [0], [0]
    for target in sorted(set(widths)):
        while levels[-1] < target:
            current = levels[-1]
            reach = min(target, 3 * current + 1)
            base.append(len(levels) - 1)
            step.append(reach - current)
            levels.append(reach)
    index = {w: i for i, w in enumerate(levels)}
    return (np.array(base, np.int64), np.array(step, np.int64), np.array([index[w] for w in widths], np.int64))


def _warm_up() -> None:
    """Compile (or load from the cache) the kernel for the argument types ``davis`` uses, at import time, so that
    process-pool workers forked from a server that imported this module start with it ready."""
    frame = np.zeros((1, 2, 2), bool)
    boundary_counts(pack_volume(frame), pack_volume(frame), 1, 2, 2, *dilation_plan(1), np.zeros((1, 4), np.int64))


_warm_up()
