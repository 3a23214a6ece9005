"""Training datasets: SAMA-239K chat / region description / RVOS readers on hand-built files, the synthetic world,
the repeat-factor mix and the resumable sampler."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sama.data.datasets import (
    DESCRIPTIONS_PER_ITEM,
    QA_PER_ITEM,
    REGION_DESCRIPTION_QUESTION,
    GroundedChatDataset,
    MixedDataset,
    RandomClipDataset,
    ReferringTurnBatches,
    RegionDescriptionDataset,
    ResumableSampler,
    RvosDataset,
    TurnBatch,
    build_from_config,
    draw_from_sources,
    synthetic_dataset,
)
from sama.data.masks import rle_encode
from sama.data.sample import TrainingSample
from sama.data.sampling import sparse_indices
from sama.data.synthetic.language import TEMPLATE_KINDS
from sama.errors import DataError

H, W, T = 24, 32, 10


def _box(t: int, obj: int) -> np.ndarray:
    """Object ``obj`` at frame ``t``: a box that moves right by one pixel per frame."""
    mask = np.zeros((H, W), bool)
    top = 2 + 8 * (obj % 3)
    mask[top : top + 5, t + obj : t + obj + 6] = True
    return mask


def _write_video(root: Path, name: str) -> list[str]:
    folder = root / name
    folder.mkdir(parents=True)
    stems = [f"{t:05d}" for t in range(T)]
    for t, stem in enumerate(stems):
        Image.fromarray(np.full((H, W, 3), 20 * t, np.uint8)).save(folder / f"{stem}.jpg")
    return stems


def _mask_dict(path: Path, objects: list[int]) -> None:
    path.write_text(json.dumps({str(o): [rle_encode(_box(t, o)) for t in range(T)] for o in objects}))


def _check_sample(sample: TrainingSample) -> None:
    t_s = len(sample.frame_indices)
    assert sample.frames.shape[1:] == (sample.frames.shape[1], sample.frames.shape[2], 3)
    for turn in sample.turns:
        assert turn.question.count("<mask>") == len(turn.ref_masks)
        assert turn.answer.count("[SEG]") == len(turn.seg_masks)
        for mask in (*turn.ref_masks, *turn.seg_masks):
            assert mask.dtype == bool and mask.shape == (t_s, *sample.frames.shape[1:3])


@pytest.fixture
def chat_files(tmp_path: Path) -> SimpleNamespace:
    stems = _write_video(tmp_path, "mevis/train/JPEGImages/vid0")
    conversation, obj_masks, groundtruth = [], [], []
    for i in range(6):  # turns 0-3 → first chunk (has [SEG]); turns 4-5 → second chunk, no [SEG]
        grounded = i in (0, 2)
        conversation += [
            {"from": "human", "value": f"What does <mask> do {i}?"},
            {"from": "gpt", "value": "<p> the box </p> [SEG] moves." if grounded else "It moves right."},
        ]
        obj_masks.append([1])
        groundtruth.append([[1, 2]] if grounded else [])
    record = {
        "video": "mevis/train/JPEGImages/vid0",
        "video_id": "vid0",
        "height": H,
        "width": W,
        "frames": stems,
        "anno_map": [1, 2],
        "conversation": conversation,
        "obj_masks": obj_masks,
        "groundtruth": groundtruth,
        "description": {"obj0": "A box moving right.", "obj1": "Another box."},
    }
    annotations = tmp_path / "train.json"
    annotations.write_text(json.dumps([record]))
    _mask_dict(tmp_path / "mask_dict.json", [1, 2])
    return SimpleNamespace(root=tmp_path, annotations=annotations, mask_dict=tmp_path / "mask_dict.json")


def test_grounded_chat_chunks_and_masks(chat_files: SimpleNamespace) -> None:
    train = GroundedChatDataset(chat_files.annotations, chat_files.mask_dict, chat_files.root)
    assert QA_PER_ITEM == 4
    assert len(train) == 1 and train.skipped["chunks_without_seg"] == 1  # the [SEG]-free chunk is dropped
    evaluation = GroundedChatDataset(chat_files.annotations, chat_files.mask_dict, chat_files.root, training=False)
    assert len(evaluation) == 2
    sample = train[0]
    _check_sample(sample)
    assert sample.frame_indices == sparse_indices(T)
    assert len(sample.turns) == 4
    assert sample.frames.shape == (len(sparse_indices(T)), H, W, 3)
    first = sample.turns[0]
    expected_ref = np.stack([_box(t, 1) for t in sample.frame_indices])
    expected_seg = np.stack([_box(t, 1) | _box(t, 2) for t in sample.frame_indices])  # OR of groundtruth ids
    np.testing.assert_array_equal(first.ref_masks[0], expected_ref)
    np.testing.assert_array_equal(first.seg_masks[0], expected_seg)
    assert sample.turns[1].seg_masks == []


def test_region_description_turns(chat_files: SimpleNamespace) -> None:
    dataset = RegionDescriptionDataset(chat_files.annotations, chat_files.mask_dict, chat_files.root)
    assert DESCRIPTIONS_PER_ITEM == 3  # SAMA.md §2
    assert REGION_DESCRIPTION_QUESTION == "Please describe the region <mask> in the video in detail."  # SAMA.md §5
    assert len(dataset) == 1
    sample = dataset[0]
    _check_sample(sample)
    assert [t.question for t in sample.turns] == [REGION_DESCRIPTION_QUESTION] * 2
    assert [t.answer for t in sample.turns] == ["A box moving right.", "Another box."]
    np.testing.assert_array_equal(sample.turns[1].ref_masks[0], np.stack([_box(t, 2) for t in sample.frame_indices]))


def test_mevis_records(tmp_path: Path) -> None:
    videos = tmp_path / "JPEGImages"
    stems = _write_video(videos, "v1")
    meta = {
        "videos": {
            "v1": {
                "frames": stems,
                "expressions": {
                    "0": {"exp": "the  moving box.", "anno_id": [1, 2], "obj_id": [0, 1]},
                    "1": {"exp": "the upper box", "anno_id": [1], "obj_id": 0},
                },
            }
        }
    }
    (tmp_path / "meta_expressions.json").write_text(json.dumps(meta))
    _mask_dict(tmp_path / "mask_dict.json", [1, 2])
    dataset = RvosDataset(tmp_path / "meta_expressions.json", tmp_path / "mask_dict.json", videos)
    assert len(dataset) == 2
    sample = dataset[0]
    _check_sample(sample)
    assert sample.sample_id == "v1/0"
    turn = sample.turns[0]
    assert turn.question == "Please segment the moving box."
    assert turn.answer == "Sure, <p> the moving box </p> [SEG]."
    np.testing.assert_array_equal(turn.seg_masks[0], np.stack([_box(t, 1) | _box(t, 2) for t in sample.frame_indices]))
    sa2va = RvosDataset(tmp_path / "meta_expressions.json", tmp_path / "mask_dict.json", videos, answer_style="sa2va")
    assert sa2va[1].turns[0].answer == "Sure, [SEG]."


def test_synthetic_world_is_a_first_class_dataset(tmp_path: Path) -> None:
    generate = {"num_videos": 3, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    mix = synthetic_dataset(tmp_path / "syn", "train", generate=generate)
    assert [entry["name"] for entry in mix.summary()] == ["synthetic_chat", "synthetic_description", "synthetic_rvos"]
    assert all(entry["samples"] > 0 for entry in mix.summary())
    for index in (0, mix.offsets[1], mix.offsets[2]):
        sample = mix[index]
        _check_sample(sample)
        assert sample.frames.shape[1:3] == (32, 32)
    spec = SimpleNamespace(
        kind="synthetic",
        name="syn",
        options={"root": str(tmp_path / "syn"), "tasks": ["rvos"]},
        annotations=None,
        mask_dict=None,
        video_root=None,
        format=None,
    )
    only_rvos = build_from_config(spec)
    assert len(only_rvos) == mix.summary()[2]["samples"]
    for bad in ([0, 0, 1], [1, 2], [1, 1, 1.5]):
        with pytest.raises(DataError, match=r"task_repeats must give one integer >= 1 per task") as caught:
            synthetic_dataset(tmp_path / "syn", "train", task_repeats=bad)
        assert caught.value.field == "task_repeats"


def test_synthetic_attribute_questions_are_a_task_kept_in_training(tmp_path: Path) -> None:
    generate = {"num_videos": 3, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    synthetic_dataset(tmp_path / "syn", "train", generate=generate)
    tasks = ["rvos", "attributes", "chat"]
    mix = synthetic_dataset(tmp_path / "syn", "train", tasks=tasks, task_repeats=[2, 3, 1])
    # The parts follow the order of ``tasks``, as ``task_repeats`` is given.
    assert [(e["name"], e["repeat"]) for e in mix.summary()] == [
        ("synthetic_rvos", 2), ("synthetic_attributes", 3), ("synthetic_chat", 1)]
    records = json.loads((tmp_path / "syn" / "train_attributes.json").read_text())
    turns = sum(len(r["conversation"]) // 2 for r in records)
    attributes = mix.datasets[1]
    assert sum(len(attributes[i].turns) for i in range(len(attributes))) == turns  # no [SEG], nothing dropped
    for index in range(len(attributes)):
        sample = attributes[index]
        assert sample.source == "synthetic_attributes"
        assert all(len(t.ref_masks) == 1 and not t.seg_masks for t in sample.turns)
    motion = synthetic_dataset(tmp_path / "syn", "train", tasks=["attributes"], attribute_kinds=["motion", "size"])
    kept = [t for i in range(len(motion)) for t in motion[i].turns]
    assert len(kept) == 2 * turns // 5 and motion.datasets[0].skipped["turns_left_out"] == turns - len(kept)
    assert {TEMPLATE_KINDS[t.question] for t in kept} == {"motion", "size"}
    with pytest.raises(DataError, match=r"attribute_kinds must be a non-empty subset of \['colour'"):
        synthetic_dataset(tmp_path / "syn", "train", tasks=["attributes"], attribute_kinds=["speed"])
    (tmp_path / "syn" / "train_attributes.json").unlink()
    with pytest.raises(DataError, match=r"train_attributes\.json: no attribute questions here.*--overwrite"):
        synthetic_dataset(tmp_path / "syn", "train", tasks=["chat", "attributes"])
    assert len(synthetic_dataset(tmp_path / "syn", "train")) == len(  # the default tasks do not need the file
        synthetic_dataset(tmp_path / "syn", "train", tasks=["chat", "description", "rvos"]))


def test_draws_from_sources_skip_other_items_unloaded_and_draw_as_loading_would() -> None:
    loads: list[str] = []

    class Counted(RandomClipDataset):
        def __getitem__(self, index: int) -> TrainingSample:
            loads.append(self.source)
            return super().__getitem__(index)

    a, b = Counted(num_samples=3, seed=1, source="a"), Counted(num_samples=5, seed=2, source="b")
    nested = MixedDataset([MixedDataset([a, b], [1, 2]), Counted(num_samples=2, seed=3, source="c")], [1, 3])
    assert [nested.source_of(i) for i in range(len(nested))] == ["a"] * 3 + ["b"] * 10 + ["c"] * 6
    rng, reference = np.random.default_rng(4), np.random.default_rng(4)
    kept = 0
    for _ in range(50):
        sample = draw_from_sources(nested, rng, ["a", "c"])
        loaded = nested[int(reference.integers(len(nested)))]  # what loading every draw would give
        assert (sample is None) == (loaded.source == "b")
        assert sample is None or sample.sample_id == loaded.sample_id
        kept += sample is not None
    assert 0 < kept < 50 and loads.count("b") == 50 - kept  # only the reference loaded the skipped items


def test_mix_repeats_and_locate() -> None:
    a, b = RandomClipDataset(num_samples=3, seed=1), RandomClipDataset(num_samples=2, seed=2)
    mix = MixedDataset([a, b], [2, 3], ["a", "b"])
    assert len(mix) == 3 * 2 + 2 * 3
    assert mix.locate(0) == (0, 0) and mix.locate(4) == (0, 1) and mix.locate(6) == (1, 0) and mix.locate(11) == (1, 1)
    assert mix[7].sample_id == b[1].sample_id
    with pytest.raises(IndexError):
        mix[12]
    with pytest.raises(ValueError, match="repeat factors must be >= 1"):
        MixedDataset([a], [0])


def test_sampler_is_deterministic_sharded_and_resumable() -> None:
    one = ResumableSampler(length=20, batch_size=2, seed=3)
    assert one.epoch_batches(0) == ResumableSampler(length=20, batch_size=2, seed=3).epoch_batches(0)
    assert one.epoch_batches(0) != one.epoch_batches(1)
    assert sorted(i for batch in one.epoch_batches(0) for i in batch) == list(range(20))
    ranks = [ResumableSampler(length=21, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    seen = [{i for batch in s.epoch_batches(0) for i in batch} for s in ranks]
    assert not seen[0] & seen[1]
    assert len(ranks[0].epoch_batches(0)) == len(ranks[1].epoch_batches(0)) == ranks[0].batches_per_epoch() == 5


def test_errors_name_the_problem(tmp_path: Path, chat_files: SimpleNamespace) -> None:
    with pytest.raises(DataError, match=r"nope\.json, field annotations: annotations not found"):
        GroundedChatDataset(tmp_path / "nope.json", chat_files.mask_dict, chat_files.root)
    with pytest.raises(DataError, match="qa_per_item must be >= 1"):
        GroundedChatDataset(chat_files.annotations, chat_files.mask_dict, chat_files.root, qa_per_item=0)
    with pytest.raises(DataError, match="answer_style must be one of"):
        RvosDataset(chat_files.annotations, chat_files.mask_dict, chat_files.root, answer_style="long")
    with pytest.raises(DataError, match="synthetic tasks must be a non-empty subset"):
        synthetic_dataset(tmp_path, tasks=["vqa"])
    # The shared path checks of _VideoSamples._open, for every dataset that uses them.
    for dataset in (GroundedChatDataset, RegionDescriptionDataset, RvosDataset):
        with pytest.raises(DataError, match=r"nope\.json, field annotations: annotations not found"):
            dataset(tmp_path / "nope.json", chat_files.mask_dict, chat_files.root)
        with pytest.raises(DataError, match=r"masks\.json, field mask_dict: mask_dict not found"):
            dataset(chat_files.annotations, tmp_path / "masks.json", chat_files.root)
        with pytest.raises(DataError, match=r"frames, field video_root: video_root not found"):
            dataset(chat_files.annotations, chat_files.mask_dict, tmp_path / "frames")
    with pytest.raises(DataError, match=r"missing train\.json.*options\.generate"):
        synthetic_dataset(tmp_path / "empty")
    spec = SimpleNamespace(
        kind="random",
        name="clips",
        options={"colour": "red"},
        annotations=None,
        mask_dict=None,
        video_root=None,
        format=None,
    )
    with pytest.raises(DataError, match="dataset 'clips': bad option"):
        build_from_config(spec)


def test_referring_turn_batches_are_fixed_per_item_and_hold_only_referring_turns(tmp_path: Path) -> None:
    generate = {"num_videos": 3, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    mix = synthetic_dataset(tmp_path / "syn", "train", generate=generate)
    batches = ReferringTurnBatches(mix, 5, seed=7, name="syn-turns")
    assert len(batches) == len(mix)
    item = batches[3]
    assert isinstance(item, TurnBatch) and len(item.samples) == 5 and not item.dense_frames
    for sample in item.samples:
        (turn,) = sample.turns
        assert turn.ref_masks and not turn.seg_masks and turn.question.count("<mask>") == len(turn.ref_masks)
        base_id, index = sample.sample_id.rsplit("#", 1)
        origin = next(s for s in (mix[i] for i in range(len(mix))) if s.sample_id == base_id)
        assert origin.turns[int(index)].question == turn.question  # the turn as the sample holds it
    again = ReferringTurnBatches(mix, 5, seed=7)[3]
    assert [s.sample_id for s in again.samples] == [s.sample_id for s in item.samples]  # a resumed run sees the same
    assert [s.sample_id for s in batches[4].samples] != [s.sample_id for s in item.samples]
    whole = MixedDataset([mix, batches], [2, 1], ["syn", "syn-turns"]).whole_samples()
    assert whole.names == ["syn"] and whole.repeats == [1] and len(whole) == len(mix)  # same weights, no copies
    other = RandomClipDataset(num_samples=2)
    whole = MixedDataset([mix, batches, other], [4, 1, 6], ["syn", "syn-turns", "clips"]).whole_samples()
    assert whole.names == ["syn", "clips"] and whole.repeats == [2, 3]


def test_referring_turn_batches_explain_a_dataset_without_such_turns() -> None:
    grounded_only = RandomClipDataset(num_samples=3)  # one grounded turn per clip, nothing referred to
    with pytest.raises(DataError, match=r"dataset 'clips' \(referring_turns: 2\): no turn that refers to an object") \
            as caught:
        ReferringTurnBatches(grounded_only, 2, name="clips")[0]
    assert caught.value.field == "referring_turns"
    with pytest.raises(DataError, match="turns per item must be >= 1"):
        ReferringTurnBatches(grounded_only, 0)
