"""Tests for sama.data.masks: RLE round trips, decode rules of SAMA.md §3.3, MaskDict forms, box and resize."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sama.data.masks import (
    MaskDict,
    box_mask,
    check_rle,
    mask_xyxy,
    resize_nearest,
    rle_decode,
    rle_encode,
    rle_encode_frames,
)
from sama.errors import DataError

small_masks = st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)


@settings(max_examples=60, deadline=None)
@given(small_masks)
def test_rle_round_trip_and_json_safe(mask: np.ndarray) -> None:
    rle = rle_encode(mask)
    assert isinstance(rle["counts"], str)
    assert rle["size"] == list(mask.shape)
    restored = rle_decode(json.loads(json.dumps(rle)), *mask.shape)
    assert restored.dtype == bool
    np.testing.assert_array_equal(restored, mask)


@settings(max_examples=60, deadline=None)
@given(small_masks)
def test_box_contains_mask_and_is_a_rectangle(mask: np.ndarray) -> None:
    box = box_mask(mask)
    assert not (mask & ~box).any()
    if not mask.any():
        assert not box.any()
        return
    rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
    assert box.sum() == len(rows) * len(cols)
    assert rows[0] == np.flatnonzero(mask.any(axis=1))[0] and rows[-1] == np.flatnonzero(mask.any(axis=1))[-1]


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(st.integers(1, 16), st.integers(1, 16)).flatmap(
        lambda hw: st.tuples(arrays(np.bool_, hw, elements=st.booleans()), arrays(np.bool_, hw, elements=st.booleans()))
    )
)
def test_list_of_rles_is_ored(pair: tuple[np.ndarray, np.ndarray]) -> None:
    first, second = pair
    decoded = rle_decode([rle_encode(first), None, rle_encode(second)], *first.shape)
    np.testing.assert_array_equal(decoded, first | second)


def test_none_decodes_empty() -> None:
    assert not rle_decode(None, 3, 4).any()
    assert rle_decode(None, 3, 4).shape == (3, 4)


def test_other_size_is_nearest_resized_to_frame_size() -> None:
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    decoded = rle_decode(rle_encode(mask), 8, 8)
    assert decoded.shape == (8, 8)
    assert decoded[:4, :4].all() and not decoded[4:, :].any() and not decoded[:, 4:].any()


def test_uncompressed_counts_are_accepted() -> None:
    decoded = rle_decode({"size": [2, 3], "counts": [1, 2, 3]}, 2, 3)
    # column-major runs: 1 zero, 2 ones, 3 zeros
    expected = np.zeros((2, 3), bool)
    expected[1, 0] = expected[0, 1] = True
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize(
    ("rle", "reason"),
    [
        ({"size": [4, 5], "counts": ""}, "sum to 0"),
        ({"size": [4, 5], "counts": [3, 100]}, "sum to 103"),
        ({"size": [4], "counts": "2"}, "'size'"),
        ({"counts": "2"}, "'size'"),
        ({"size": [4, 5], "counts": 7}, "'counts'"),
        ("not an rle", "must be a dict"),
    ],
)
def test_malformed_rle_is_rejected_with_reason(rle: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_rle(rle)


@pytest.mark.parametrize(("in_hw", "out_hw"), [((37, 53), (16, 16)), ((20, 30), (112, 112)), ((5, 7), (3, 11))])
def test_resize_nearest_matches_torch_interpolate(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    mask = np.random.default_rng(0).random(in_hw) < 0.4
    ours = resize_nearest(mask, out_hw)
    reference = (
        torch.nn.functional.interpolate(
            torch.from_numpy(mask.astype(np.float32))[None, None], size=out_hw, mode="nearest"
        )[0, 0].numpy()
        > 0
    )
    assert ours.shape == out_hw
    np.testing.assert_array_equal(ours, reference)


def test_resize_nearest_batched_and_int_size() -> None:
    volume = np.random.default_rng(1).random((3, 10, 12)) < 0.5
    out = resize_nearest(volume, 16)
    assert out.shape == (3, 16, 16)
    np.testing.assert_array_equal(out[1], resize_nearest(volume[1], (16, 16)))


def test_box_mask_per_frame_of_volume() -> None:
    volume = np.zeros((2, 6, 6), bool)
    volume[0, 1, 1] = volume[0, 3, 4] = True
    out = box_mask(volume)
    assert out[0, 1:4, 1:5].all() and out[0].sum() == 12
    assert not out[1].any()


def test_mask_xyxy_is_tight_end_exclusive_and_none_when_empty() -> None:
    mask = np.zeros((5, 7), bool)
    assert mask_xyxy(mask) is None
    mask[2, 3] = True
    assert mask_xyxy(mask) == (3, 2, 4, 3)  # one pixel → a box one pixel wide
    mask[4, 6] = True
    assert mask_xyxy(mask) == (3, 2, 7, 5)


def test_rle_encode_rejects_wrong_rank() -> None:
    with pytest.raises(DataError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2), bool))
    assert len(rle_encode_frames(np.zeros((3, 2, 2), bool))) == 3


# --- MaskDict ----------------------------------------------------------------------------------------------------


def _two_object_dict() -> tuple[dict, np.ndarray, np.ndarray]:
    a = np.zeros((6, 8), bool)
    a[1:3, 1:4] = True
    b = np.zeros((6, 8), bool)
    b[4:, 5:] = True
    return {"1": [rle_encode(a), None, rle_encode(a)], "2": [rle_encode(b), rle_encode(b)]}, a, b


def test_mask_dict_json_volume_is_or_of_objects(tmp_path) -> None:
    data, a, b = _two_object_dict()
    path = tmp_path / "masks.json"
    path.write_text(json.dumps(data))
    md = MaskDict.load(path)
    assert 1 in md and "2" in md and 3 not in md and len(md) == 2
    volume = md.volume([1, 2], 4, 6, 8)
    assert volume.shape == (4, 6, 8)
    np.testing.assert_array_equal(volume[0], a | b)
    np.testing.assert_array_equal(volume[1], b)  # object 1 is None on frame 1
    np.testing.assert_array_equal(volume[2], a)  # object 2's list ends at frame 1
    assert not volume[3].any()  # beyond both lists
    picked = md.volume([1], 4, 6, 8, frame_indices=[2, 0])
    np.testing.assert_array_equal(picked, np.stack([a, a]))


def test_mask_dict_lvvis_segmentations_form() -> None:
    data, a, _ = _two_object_dict()
    md = MaskDict({"7": {"segmentations": data["1"]}})
    np.testing.assert_array_equal(md.frame_mask(7, 0, 6, 8), a)
    assert md.num_frames("7") == 3


def test_mask_dict_bad_value_form_names_object() -> None:
    with pytest.raises(DataError, match=r"object 7.*segmentations"):
        MaskDict({"7": {"area": 3}}, source="x.json")


def test_mask_dict_pickle_needs_opt_in(tmp_path) -> None:
    data, a, _ = _two_object_dict()
    path = tmp_path / "masks.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"masks\.pkl.*allow_pickle=True"):
        MaskDict.load(path)
    md = MaskDict.load(path, allow_pickle=True)
    np.testing.assert_array_equal(md.frame_mask("1", 0, 6, 8), a)


def test_invalid_rle_error_names_file_object_and_frame(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"5": [None, {"size": [6, 8], "counts": "0"}]}))
    md = MaskDict.load(path)
    with pytest.raises(DataError, match=r"bad\.json.*object 5.*frame 1") as info:
        md.frame_mask(5, 1, 6, 8)
    assert info.value.file == str(path) and info.value.field == "frame 1"
    problems = md.validate()
    assert len(problems) == 1 and "frame 1" in str(problems[0])


def test_unknown_object_and_file_errors(tmp_path) -> None:
    md = MaskDict({"1": []}, source="m.json")
    with pytest.raises(DataError, match=r"m\.json.*'9' is not in the mask dictionary"):
        md.frame_mask(9, 0, 2, 2)
    with pytest.raises(DataError, match="not found"):
        MaskDict.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": [')
    with pytest.raises(DataError, match=r"broken\.json.*invalid JSON at line 1"):
        MaskDict.load(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a mapping"):
        MaskDict.load(listed)


rle_like = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=6),
    st.fixed_dictionaries(
        {
            "size": st.one_of(st.lists(st.integers(-2, 6), max_size=3), st.text(max_size=3), st.none()),
            "counts": st.one_of(st.text(max_size=8), st.lists(st.integers(-2, 30), max_size=5), st.integers()),
        }
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(rle_like, st.lists(rle_like, max_size=2)), max_size=3), st.integers(0, 3))
def test_fuzzed_entries_decode_or_raise_data_error(frames: list, frame: int) -> None:
    md = MaskDict({"1": frames}, source="fuzz.json")
    flagged = {problem.field: str(problem) for problem in md.validate()}
    try:
        mask = md.frame_mask(1, frame, 4, 5)
    except DataError as exc:  # decoding fails exactly where validate() flags, with the same message
        assert str(exc) == flagged[f"frame {frame}"]
        return
    assert f"frame {frame}" not in flagged
    assert mask.shape == (4, 5) and mask.dtype == bool


def test_huge_size_is_refused_before_decoding() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        check_rle({"size": [100000, 100000], "counts": "0"})


def test_zero_area_rle_is_empty() -> None:
    assert not rle_decode({"size": [0, 5], "counts": ""}, 4, 5).any()
