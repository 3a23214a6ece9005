"""Tests for sama.data.sampling: every SAMA.md §1.2 test vector, the dense policies and their defects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sama.data import sampling
from sama.data.sampling import dense_frame_indices, dense_positions, sparse_indices
from sama.errors import ConfigError, DataError


def test_constants_pinned_to_sama_md() -> None:
    assert (sampling.SPARSE_INTERVAL, sampling.MAX_FRAMES, sampling.MIN_FRAMES, sampling.DENSE_LEN) == (3, 32, 8, 5)


SPARSE_VECTORS = {  # SAMA.md §1.2 test-vector table
    5: [0, 1, 2, 3, 4],
    10: [0, 2, 3, 4, 6, 8, 9],
    24: list(range(0, 22, 3)),
    30: list(range(0, 28, 3)),
    96: list(range(0, 94, 3)),
    100: list(range(0, 46, 3)) + list(range(51, 97, 3)),
    200: list(range(0, 61, 6)) + list(range(69, 130, 6)) + list(range(138, 193, 6)),
}


@pytest.mark.parametrize(("vid_len", "expected"), sorted(SPARSE_VECTORS.items()))
def test_sparse_indices_table(vid_len: int, expected: list[int]) -> None:
    result = sparse_indices(vid_len)
    assert result == expected
    assert len(result) == {5: 5, 10: 7, 24: 8, 30: 10, 96: 32, 100: 32, 200: 32}[vid_len]


def test_sparse_indices_frame_48_skipped_for_100() -> None:
    assert 48 not in sparse_indices(100) and 45 in sparse_indices(100) and 51 in sparse_indices(100)


@given(st.integers(1, 5000))
def test_sparse_indices_properties(vid_len: int) -> None:
    result = sparse_indices(vid_len)
    assert result == sorted(set(result))
    assert result[0] == 0 and result[-1] < vid_len
    assert len(result) <= 32
    if vid_len >= 3 * 8:  # enough every-3rd frames: no top-up, at least 8
        assert len(result) >= 8


def test_sparse_indices_rejects_empty_video() -> None:
    with pytest.raises(DataError, match="vid_len=0"):
        sparse_indices(0)


DENSE_FAITHFUL = {  # SAMA.md §1.2 and §6 item 4
    32: [2, 8, 14, 20, 27],
    20: [1, 4, 8, 12, 16],
    8: [0, 1, 2, 4, 5],
    6: [0, 1, 2, 3, 4],
    7: [0, 1, 2, 3, 4],
    5: [-1, 0, 1, 2, 3],
    4: [-1, 0, 0, 1, 2],
    3: [-1, -1, 0, 0, 1],
}


@pytest.mark.parametrize(("num_sparse", "expected"), sorted(DENSE_FAITHFUL.items()))
def test_faithful_train_bins_reproduces_release(num_sparse: int, expected: list[int]) -> None:
    assert dense_positions(num_sparse, policy="faithful_train_bins") == expected
    assert sampling.faithful_train_bins(num_sparse) == expected


@pytest.mark.parametrize(
    ("num_sparse", "expected"), [(5, [0, 1, 2, 3, 4]), (4, [0, 1, 2, 3]), (3, [0, 1, 2]), (1, [0])]
)
def test_train_bins_fixes_negative_and_repeats(num_sparse: int, expected: list[int]) -> None:
    assert dense_positions(num_sparse, policy="train_bins") == expected


@given(st.integers(6, 64))
def test_train_bins_equals_faithful_when_no_defect(num_sparse: int) -> None:
    assert dense_positions(num_sparse) == dense_positions(num_sparse, policy="faithful_train_bins")


@given(st.integers(1, 64), st.integers(1, 8))
def test_train_bins_distinct_and_in_range(num_sparse: int, num_dense: int) -> None:
    positions = dense_positions(num_sparse, num_dense)
    assert positions == sorted(set(positions))
    assert all(0 <= p < num_sparse for p in positions)
    assert len(positions) == min(num_sparse, num_dense)


@pytest.mark.parametrize(("num_sparse", "expected"), [(32, [0, 1, 2, 3, 4]), (5, [0, 1, 2, 3, 4]), (3, [0, 1, 2])])
def test_first_policy_is_released_inference(num_sparse: int, expected: list[int]) -> None:
    assert dense_positions(num_sparse, policy="first") == expected
    assert dense_positions(num_sparse, policy="first5") == expected


def test_dense_frame_indices_raw_frames() -> None:
    # SAMA.md §6 item 6: first-5 inference sees raw frames 0,3,6,9,12 (100 frames) and 0,6,12,18,24 (200 frames)
    assert dense_frame_indices(100, policy="first") == [0, 3, 6, 9, 12]
    assert dense_frame_indices(200, policy="first") == [0, 6, 12, 18, 24]
    assert dense_frame_indices(96) == [6, 24, 42, 60, 81]
    assert dense_frame_indices(5, policy="faithful_train_bins")[0] == 4  # -1 wraps to the last sparse frame


def test_unknown_policy_and_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="unknown dense policy 'middle'"):
        dense_positions(10, policy="middle")
    with pytest.raises(DataError, match="at least one sparse frame"):
        dense_positions(0)
    with pytest.raises(ConfigError, match="num_dense"):
        dense_positions(10, num_dense=0)
