"""ChatSession on sama-tiny: per-turn token layout and KV-cache growth, teacher-forced history, streamed [SEG] masks,
the clear errors of bad references / prompts, and the single-shot ``predict`` format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sama.errors import DataError
from sama.model.backbone import IMG_CONTEXT, IMG_START
from sama.model.prompts import Box, Mask
from sama.model.session import ChatSession, predict, seg_phrases


def tiny_video(num_frames: int = 20, height: int = 24, width: int = 32) -> np.ndarray:
    rng = np.random.default_rng(num_frames)
    frames = rng.integers(0, 255, (num_frames, height, width, 3), dtype=np.uint8)
    frames[:, 4:14, 6:20] = 240
    return frames


@pytest.fixture()
def recorded_ids(tiny_model, monkeypatch) -> list[torch.Tensor]:
    """The input ids of every ``fill_slots`` call (one per human turn)."""
    calls: list[torch.Tensor] = []
    original = tiny_model.fill_slots

    def spy(input_ids, visual):
        calls.append(input_ids[0].clone())
        return original(input_ids, visual)

    monkeypatch.setattr(tiny_model, "fill_slots", spy)
    return calls


def test_turn_layout_dense_frames_only_in_turn_one(tiny_model, recorded_ids) -> None:
    tiny_model.eval()
    session = ChatSession(tiny_model, tiny_video(), max_new_tokens=3)
    first = session.ask("What is <mask> doing?", [Box(xyxy=(6, 4, 20, 14), frame=0)])
    second = session.ask("And then?")
    tokens = tiny_model.tokenizer.convert_tokens_to_ids([IMG_CONTEXT, IMG_START])
    ctx, img_start = tokens
    dense_slots = len(session.dense) * tiny_model.config.vision.tokens_per_frame
    context = len(session.sparse)  # S context tokens, one per sparse frame (SAMA.md §1.5)
    assert int((recorded_ids[0] == ctx).sum()) == dense_slots + context + 2  # + 2 tokens for the one <mask>
    assert int((recorded_ids[0] == img_start).sum()) == len(session.dense)
    assert int((recorded_ids[1] == ctx).sum()) == context  # later turns: only the context tokens
    assert int((recorded_ids[1] == img_start).sum()) == 0
    assert first.new_tokens == len(recorded_ids[0]) and second.new_tokens == len(recorded_ids[1])
    assert second.new_tokens < first.new_tokens - dense_slots + 1


def test_kv_cache_grows_by_exactly_the_new_tokens(tiny_model) -> None:
    tiny_model.eval()
    session = ChatSession(tiny_model, tiny_video(), max_new_tokens=4)
    before = session.cached_tokens
    turn = session.ask("What is it?")
    generated = session.cached_tokens - before - turn.new_tokens
    assert 0 <= generated <= 4  # each generated token (not the stop word) is fed back once
    assert session._cache.get_seq_length() == session.cached_tokens
    before = session.cached_tokens
    given = session.add_turn("What is <mask>?", "A <p> box </p> [SEG].", [Box(xyxy=(6, 4, 20, 14), frame=0)])
    assert session.cached_tokens == before + given.new_tokens  # teacher forcing feeds exactly the new tokens
    assert session._cache.get_seq_length() == session.cached_tokens
    assert given.num_objects == 1 and given.phrases == ["box"]


def test_second_turn_cost_does_not_depend_on_video_length(tiny_model) -> None:
    tiny_model.eval()
    costs = []
    for length in (30, 90):  # both sample max_frames sparse frames (sama-tiny: 8)
        session = ChatSession(tiny_model, tiny_video(length), max_new_tokens=2)
        assert len(session.sparse) == tiny_model.config.sampling.max_frames
        session.ask("Describe it.")
        costs.append(session.ask("And then?").new_tokens)
    assert costs[0] == costs[1]


def test_reset_forgets_the_dialogue_but_keeps_the_frames(tiny_model) -> None:
    tiny_model.eval()
    session = ChatSession(tiny_model, tiny_video(), max_new_tokens=2)
    tokens = session.frame_tokens
    first = session.ask("What is it?").new_tokens
    session.ask("And then?")
    session.reset()
    assert session.history == [] and session.cached_tokens == 0 and session.frame_tokens is tokens
    assert session.ask("What is it?").new_tokens == first


def test_turn_masks_stream_every_frame_for_k_objects(tiny_model) -> None:
    tiny_model.eval()
    video = tiny_video(num_frames=10)
    session = ChatSession(tiny_model, video, max_new_tokens=2)
    turn = session.ask("Segment it.")
    turn.seg_hidden = torch.randn(3, tiny_model.config.llm.hidden_size)  # as if 3 [SEG] had been generated
    seen = []
    for index, masks in turn.iter_masks():
        assert masks.shape == (3, 24, 32) and masks.dtype == bool
        seen.append(index)
    assert seen == list(range(10))
    rles = turn.rles()
    assert len(rles) == 3 and all(len(per_frame) == 10 for per_frame in rles)
    volumes = turn.volumes()
    assert volumes[0].shape == (10, 24, 32) and len(turn.masks) == 3
    from sama.data.masks import rle_decode

    assert all((rle_decode(r, 24, 32) == volumes[1][t]).all() for t, r in enumerate(rles[1]))


def test_seg_phrases_pair_each_seg_with_its_phrase() -> None:
    assert seg_phrases("The <p> red circle </p> [SEG] and a [SEG] and <p>x</p>") == ["red circle", None]


def test_clear_errors(tiny_model, monkeypatch) -> None:
    tiny_model.eval()
    video = tiny_video()
    session = ChatSession(tiny_model, video, max_new_tokens=2)
    with pytest.raises(DataError, match=r"1 <mask> placeholder\(s\) but 0 reference\(s\)"):
        session.ask("What is <mask>?")
    with pytest.raises(DataError, match=r"reference frame 99 outside the video \(0..19\)"):
        session.ask("What is <mask>?", [Box(xyxy=(0, 0, 2, 2), frame=99)])
    with pytest.raises(DataError, match=r"reference mask of shape \(5, 5\), expected the frame size \(24, 32\)"):
        session.ask("What is <mask>?", [Mask(np.ones((5, 5), dtype=bool), frame=0)])
    with pytest.raises(DataError, match=r"mask volume of shape \(3, 24, 32\), expected \(T, H, W\) = \(20, 24, 32\)"):
        session.ask("What is <mask>?", [Mask(np.ones((3, 24, 32), dtype=bool), frame=None)])
    with pytest.raises(DataError, match=r"box \(10, 0, 5, 5\) must satisfy"):
        session.ask("What is <mask>?", [Box(xyxy=(10, 0, 5, 5), frame=0)])
    assert session.history == []  # failed questions leave no trace
    with pytest.raises(DataError, match="needs at least one frame"):
        ChatSession(tiny_model, np.zeros((0, 24, 32, 3), dtype=np.uint8))
    monkeypatch.setattr(tiny_model.config.llm, "max_length", 12)
    with pytest.raises(DataError, match=r"over llm.max_length=12"):
        session.ask("What is it?")


def test_predict_returns_the_predict_forward_dict(tiny_model) -> None:
    tiny_model.eval()
    video = tiny_video(num_frames=8)
    out = predict(tiny_model, video, "Describe the video.", max_new_tokens=2)
    assert set(out) == {"prediction", "prediction_masks"} and isinstance(out["prediction"], str)
    assert isinstance(out["prediction_masks"], list)
    assert all(m.shape == (8, 24, 32) for m in out["prediction_masks"])
    only = predict(tiny_model, video, "Describe the video.", max_new_tokens=2, prediction_only=True)
    assert only["prediction_masks"] is None and only["prediction"] == out["prediction"]
