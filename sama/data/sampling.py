"""Frame index rules: which raw frames form the sparse set, and which sparse positions are the dense frames.

Sparse set: ``get_sparse_indices_uniform`` of the release (SAMA.md §1.2). Dense set, as positions within the
sparse list, under one of three named policies:

* ``"faithful_train_bins"`` — the release's ``get_dense_indices`` exactly, defects included: for T_s ≤ 5 it returns
  ``-1`` (which wraps to the last sparse frame) and for T_s ≤ 4 repeated positions (SAMA.md §6 item 4).
* ``"train_bins"`` (default) — the same bin centres, fixed: positions are clamped into ``[0, T_s-1]`` and made
  strictly increasing. For T_s ≥ 6 this equals the faithful rule; for T_s < ``num_dense`` it is ``range(T_s)``
  (distinct positions are impossible, so there are fewer dense frames rather than repeats).
* ``"first"`` — the released HF inference: the first ``num_dense`` sparse frames, or ``range(T_s)`` if fewer
  (SAMA.md §1.2; a train/test mismatch, SAMA.md §6 item 6). ``"first5"`` is accepted as an alias.
"""

from __future__ import annotations

import numpy as np

from sama.errors import ConfigError, DataError

SPARSE_INTERVAL = 3  # SAMA.md §1.2: idx = range(0, vid_len, 3)
MAX_FRAMES = 32  # SAMA.md §1.2: MAX_FRAMES = SPARSE_LEN = 32
MIN_FRAMES = 8  # SAMA.md §1.2: min_frames=8
DENSE_LEN = 5  # SAMA.md §1.2: DENSE_LEN = 5
DENSE_POLICIES: tuple[str, ...] = ("train_bins", "faithful_train_bins", "first")
_POLICY_ALIASES = {"first5": "first"}  # SAMA.md §7 item 2 names the inference policy "first5"


def sparse_indices(
    vid_len: int, interval: int = SPARSE_INTERVAL, max_frames: int = MAX_FRAMES, min_frames: int = MIN_FRAMES
) -> list[int]:
    """Raw frame indices of the sparse set (SAMA.md §1.2, ``get_sparse_indices_uniform``).

    Every ``interval``-th frame; thinned to ``max_frames`` by uniform striding; topped up towards ``min_frames``
    with evenly spaced frames and de-duplicated, so short videos can end with fewer than ``min_frames``.
    """
    if isinstance(vid_len, bool) or not isinstance(vid_len, (int, np.integer)) or vid_len <= 0:
        raise DataError(f"a video needs at least one frame, got vid_len={vid_len!r}", field="vid_len")
    if interval <= 0 or max_frames <= 0 or min_frames < 0:
        raise ConfigError(f"invalid sampling config: interval={interval}, max_frames={max_frames}, min={min_frames}")
    indices = list(range(0, int(vid_len), interval))
    if len(indices) > max_frames:
        step = len(indices) / max_frames
        indices = [indices[int(i * step)] for i in range(max_frames)]
    if len(indices) < min_frames:
        need = min_frames - len(indices)
        spacing = vid_len / (need + 1)
        indices = sorted(set(indices + [int((i + 1) * spacing) for i in range(need)]))
    return sorted(indices)


def _canonical_policy(policy: str) -> str:
    policy = _POLICY_ALIASES.get(policy, policy)
    if policy not in DENSE_POLICIES:
        raise ConfigError(f"unknown dense policy {policy!r}; expected one of {list(DENSE_POLICIES)} (or 'first5')")
    return policy


def _faithful_bins(num_sparse: int, num_dense: int) -> list[int]:
    """The release's ``get_dense_indices``: centres of ``num_dense`` bins over ``linspace(0, T_s-1)``."""
    edges = np.linspace(0, num_sparse - 1, num_dense + 1).astype(int)
    return [int((edges[k] + edges[k + 1] - 1) // 2) for k in range(num_dense)]


def dense_positions(num_sparse: int, num_dense: int = DENSE_LEN, policy: str = "train_bins") -> list[int]:
    """Positions within the sparse list of the dense frames (see the module docstring for the policies)."""
    policy = _canonical_policy(policy)
    if num_sparse <= 0:
        raise DataError(f"need at least one sparse frame, got {num_sparse}", field="num_sparse")
    if num_dense <= 0:
        raise ConfigError(f"num_dense must be positive, got {num_dense}")
    if policy == "first":
        return list(range(min(num_dense, num_sparse)))
    bins = _faithful_bins(num_sparse, num_dense)
    if policy == "faithful_train_bins":
        return bins
    if num_sparse <= num_dense:
        return list(range(num_sparse))
    positions = [min(max(p, 0), num_sparse - 1) for p in bins]
    for k in range(1, num_dense):  # forward pass: strictly increasing
        positions[k] = max(positions[k], positions[k - 1] + 1)
    positions[-1] = min(positions[-1], num_sparse - 1)
    for k in range(num_dense - 2, -1, -1):  # backward pass: stay in range
        positions[k] = min(positions[k], positions[k + 1] - 1)
    return positions


def faithful_train_bins(num_sparse: int, num_dense: int = DENSE_LEN) -> list[int]:
    """The release's training dense positions, ``-1`` and repeats included (``policy="faithful_train_bins"``)."""
    return dense_positions(num_sparse, num_dense, "faithful_train_bins")


def dense_frame_indices(
    vid_len: int, num_dense: int = DENSE_LEN, policy: str = "train_bins", **sparse_kwargs: int
) -> list[int]:
    """Raw frame indices of the dense frames of a ``vid_len`` video (faithful ``-1`` wraps to the last, as released)."""
    sparse = sparse_indices(vid_len, **sparse_kwargs)
    return [sparse[p] for p in dense_positions(len(sparse), num_dense, policy)]
