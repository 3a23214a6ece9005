"""Tests for sama.data.schema: text helpers, record parsing, and every validation rule in strict and lenient mode."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sama.data import schema
from sama.data.masks import MaskDict, rle_encode
from sama.data.schema import (
    LoadedRecords,
    clean_text,
    extract_phrases,
    iter_object_ids,
    load_records,
    normalize_aliases,
    parse_records,
)
from sama.errors import DataError


def test_tokens_and_aliases_pinned() -> None:
    assert (schema.SEG_TOKEN, schema.P_START, schema.P_END) == ("[SEG]", "<p>", "</p>")
    assert (schema.VP_START, schema.VP_END, schema.MASK_TOKEN) == ("<vp>", "</vp>", "<mask>")
    assert schema.LEGACY_ALIASES == {"<seg>": "[SEG]", "<g_s>": "<p>", "<g_e>": "</p>"}
    assert schema.CLEAN_REMOVE == ("<p>", "</p>", "[SEG]", "<|im_end|>", "<s>", "<|end|>")
    assert schema.LVVIS_FOLDER_WIDTH == 5


def test_normalize_aliases() -> None:
    assert (
        normalize_aliases("<g_s> a dog <g_e> <seg> and <g_s>cat<g_e><seg>")
        == "<p> a dog </p> [SEG] and <p>cat</p>[SEG]"
    )


def test_extract_phrases_strip_lower_multiline() -> None:
    text = "The <p> Red Car </p> [SEG] passes <p>a\nTall Man</p>[SEG]. <p></p>"
    assert extract_phrases(text) == ["red car", "a\ntall man", ""]


def test_clean_text() -> None:
    assert clean_text("<s>The <p> red car </p> [SEG]\n moves.<|im_end|><|end|>") == "The red car moves."


def _record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "video": "mevis/train/JPEGImages/abc",
        "video_id": "abc",
        "height": 6,
        "width": 8,
        "frames": ["00000", "00001", {"raw_filename": "frame_8.jpg"}],
        "anno_map": [1, -1, 2],
        "conversation": [
            {"from": "human", "value": "What is <mask> doing?", "question_id": "q1"},
            {"from": "gpt", "value": "<g_s> The dog <g_e> <seg> runs."},
            {"from": "human", "value": "Where are <mask> and <mask>?", "question_id": "q2"},
            {"from": "gpt", "value": "<p> Both </p> [SEG] sit."},
        ],
        "obj_masks": [[1], [1, 2]],
        "groundtruth": [[[], [1]], [[1, 2]]],
        "description": {"obj0": "a dog", "obj2": "a cat"},
        "description_id": {"obj0": 10, "obj2": 11},
    }
    base.update(overrides)
    return base


def _mask_dict(frames: int = 3) -> MaskDict:
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    return MaskDict({"1": [rle_encode(mask)] * frames, "2": [None] * frames}, source="md.json")


def test_valid_record_parses_with_official_fields(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps([_record()]))
    records = load_records(path, mask_dict=_mask_dict())
    assert isinstance(records, LoadedRecords) and records.report.ok and len(records) == 1
    record = records[0]
    assert record.frames == ["00000", "00001", "frame_8"]
    assert record.source_dataset == "mevis" and record.num_frames == 3
    assert [t.question_id for t in record.turns] == ["q1", "q2"]
    first = record.turns[0]
    assert first.answer == "<p> The dog </p> [SEG] runs."
    assert first.groundtruth == [[], [1]] and first.seg_groundtruth == [[1]]
    assert first.phrases == ["the dog"]
    assert record.turns[1].obj_masks == [1, 2]
    assert record.description_objects() == {"obj0": 1, "obj2": 2}
    assert iter_object_ids(record.turns) == [1, 2]
    assert records.report.turns_kept == records.report.turns_total == 2
    round_trip = parse_records([record.to_dict()], mask_dict=_mask_dict())
    assert round_trip[0].turns == record.turns


def test_lvvis_frame_folder_zero_padded() -> None:
    record = parse_records([_record(video="lvvis/val/JPEGImages/42")])[0]
    assert record.frame_folder("/data") == Path("/data/lvvis/val/JPEGImages/00042")
    other = parse_records([_record(video="mevis/valid/JPEGImages/42")])[0]
    assert other.frame_folder("/data") == Path("/data/mevis/valid/JPEGImages/42")


def _break(mutate) -> list[dict[str, Any]]:
    record = _record()
    mutate(record)
    return [record]


# (name, mutation, rule, strict message regex, lenient: records kept, turns kept)
CASES = [
    ("not a dict", lambda r: r.clear() or r.update({"x": 1}), "missing_field", r"record 0, field video", 0, 0),
    ("missing frames", lambda r: r.pop("frames"), "missing_field", r"field frames: required field", 0, 0),
    ("zero height", lambda r: r.update(height=0), "field_type", r"field height: expected a positive int", 0, 0),
    ("bool width", lambda r: r.update(width=True), "field_type", r"field width: expected a positive int", 0, 0),
    ("bad frame", lambda r: r["frames"].append(3), "field_type", r"field frames: frame 3: expected", 0, 0),
    ("bad obj_masks", lambda r: r.update(obj_masks=[[1.5]]), "field_type", r"field obj_masks: turn 0", 0, 0),
    ("bad groundtruth", lambda r: r.update(groundtruth=[[1]]), "field_type", r"field groundtruth: turn 0", 0, 0),
    (
        "swapped roles",
        lambda r: r["conversation"][0].update({"from": "gpt"}),
        "turn_role",
        r"turn 0, field conversation\[0\]: expected a 'human' message",
        1,
        1,
    ),
    (
        "odd conversation",
        lambda r: r["conversation"].append({"from": "human", "value": "More?"}),
        "odd_conversation",
        r"5 messages",
        1,
        2,
    ),
    (
        "mask count",
        lambda r: r.update(obj_masks=[[1, 2], [1, 2]]),
        "mask_count",
        r"turn 0, field obj_masks\[0\]: question has 1 <mask> but obj_masks\[0\] lists 2",
        1,
        1,
    ),
    (
        "seg count",
        lambda r: r.update(groundtruth=[[[2], [1]], [[1, 2]]]),
        "seg_count",
        r"turn 0, field groundtruth\[0\]: answer has 1 \[SEG\] but groundtruth\[0\] has 2",
        1,
        1,
    ),
    (
        "unknown object",
        lambda r: r.update(obj_masks=[[1], [1, 9]]),
        "unknown_object",
        r"turn 1, field obj_masks\[1\]: object id 9 is not in the mask dictionary",
        1,
        1,
    ),
    (
        "duplicate qid",
        lambda r: r["conversation"][2].update(question_id="q1"),
        "duplicate_question_id",
        r"turn 1.*'q1' already used by record 0 turn 0",
        1,
        1,
    ),
    (
        "bad description key",
        lambda r: r["description"].update(obj1="nothing"),
        "description_key",
        r"field description.obj1: anno_map\[1\] is -1",
        1,
        2,
    ),
    (
        "unknown anno_map id",
        lambda r: r["anno_map"].append(77),
        "unknown_object",
        r"field anno_map\[3\]: object id 77",
        1,
        2,
    ),
]


@pytest.mark.parametrize(("name", "mutate", "rule", "pattern", "records_kept", "turns_kept"), CASES)
def test_rule_strict_and_lenient(name, mutate, rule, pattern, records_kept, turns_kept, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_break(mutate)))
    with pytest.raises(DataError, match=pattern) as info:
        load_records(path, strict=True, mask_dict=_mask_dict())
    assert str(path) in str(info.value) and info.value.record == 0
    records = load_records(path, strict=False, mask_dict=_mask_dict())
    report = records.report
    assert not report.ok and report.counts_by_rule() == {rule: 1}, name
    assert len(records) == records_kept and report.records_kept == records_kept
    assert sum(len(r.turns) for r in records) == turns_kept == report.turns_kept
    assert rule in report.summary() and report.issues[0].action


def test_top_level_record_not_object_is_counted() -> None:
    records = parse_records([_record(), "oops", 3], strict=False)
    assert len(records) == 1 and records.report.records_total == 3
    assert records.report.counts_by_rule() == {"record_type": 2}
    with pytest.raises(DataError, match="record 1: expected a JSON object, got str"):
        parse_records([_record(), "oops"])


def test_duplicate_question_ids_across_records() -> None:
    with pytest.raises(DataError, match=r"record 1, turn 0.*already used by record 0 turn 0"):
        parse_records([_record(), _record()])


def test_mask_list_longer_than_frames_is_error_and_shorter_is_warning() -> None:
    with pytest.raises(DataError, match="object 1 has 5 mask frames but the record has 3"):
        parse_records([_record()], mask_dict=_mask_dict(frames=5))
    records = parse_records([_record()], mask_dict=_mask_dict(frames=2))
    assert records.report.ok and len(records[0].turns) == 2
    assert records.report.counts_by_rule() == {"short_mask_list": 3}


def test_per_turn_list_length_mismatch_is_a_warning() -> None:
    records = parse_records([_record(groundtruth=[[[], [1]], [[1, 2]], [[2]]])], strict=True)
    assert records.report.ok and records.report.counts_by_rule() == {"per_turn_length": 1}
    short = parse_records([_record(obj_masks=[[1]])], strict=False)
    assert short.report.counts_by_rule() == {"mask_count": 1, "per_turn_length": 1}
    assert len(short[0].turns) == 1  # the turn without an obj_masks entry has no ids for its two <mask>


def test_empty_groundtruth_entries_and_missing_per_turn_lists_allowed() -> None:
    record = _record(
        conversation=[{"from": "human", "value": "Describe it."}, {"from": "gpt", "value": "Nothing grounded."}],
        obj_masks=[],
        groundtruth=[],
    )
    parsed = parse_records([record])[0]
    assert parsed.turns[0].obj_masks == [] and parsed.turns[0].question_id is None


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="records file not found"):
        load_records(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 1"):
        load_records(broken)
    obj = tmp_path / "obj.json"
    obj.write_text("{}")
    with pytest.raises(DataError, match="expected a JSON list of video records, got dict"):
        load_records(obj)


def test_mask_dict_path_is_loaded(tmp_path: Path) -> None:
    records_path = tmp_path / "r.json"
    records_path.write_text(json.dumps([_record()]))
    md_path = tmp_path / "md.json"
    md_path.write_text(json.dumps({"1": [None]}))
    records = load_records(records_path, strict=False, mask_dict=md_path)
    assert records.report.counts_by_rule()["unknown_object"] >= 1


def test_lenient_input_not_mutated() -> None:
    raw = [_record(obj_masks=[[1, 2], [1, 2]])]
    before = copy.deepcopy(raw)
    parse_records(raw, strict=False)
    assert raw == before


# --- `sama data validate` ----------------------------------------------------------------------------------------


def _run_cli(*argv: str) -> int:
    from sama.cli import main

    return main(["data", "validate", *argv])


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([_record()]))
    md_path = tmp_path / "md.json"
    mask = np.ones((6, 8), bool)
    md_path.write_text(json.dumps({"1": [rle_encode(mask)] * 3, "2": [None] * 3}))
    assert _run_cli(str(good), "--mask-dict", str(md_path)) == 0
    out = capsys.readouterr().out
    assert "format: sama" in out and "turns: 2/2 kept" in out and "issues: 0 errors" in out

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_record(obj_masks=[[1, 2], [1, 2]])]))
    assert _run_cli(str(bad), "--lenient") == 1
    out = capsys.readouterr().out
    assert "mask_count: 1" in out and "turns: 1/2 kept" in out and "[turn dropped]" in out

    assert _run_cli(str(bad)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.json, record 0, turn 0, field obj_masks[0]" in err


def test_cli_validate_reports_invalid_rle_and_pickle_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([_record()]))
    md_path = tmp_path / "md.json"
    md_path.write_text(json.dumps({"1": [None, {"size": [6, 8], "counts": "0"}], "2": []}))
    assert _run_cli(str(good), "--mask-dict", str(md_path), "--lenient") == 1
    assert "invalid_rle: 1" in capsys.readouterr().out
    assert _run_cli(str(good), "--mask-dict", str(md_path)) == 2
    assert "object 1 at frame 1" in capsys.readouterr().err
    pkl = tmp_path / "md.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    assert _run_cli(str(good), "--mask-dict", str(pkl)) == 2
    assert "--allow-pickle" in capsys.readouterr().err


def test_cli_validate_detects_rvos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = tmp_path / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": {"v": {"frames": ["0"], "expressions": {"0": {"exp": "a cat"}}}}}))
    assert _run_cli(str(meta)) == 0
    assert "format: mevis" in capsys.readouterr().out
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps({"a": 1}))
    assert _run_cli(str(weird)) == 2
    assert "cannot tell the format" in capsys.readouterr().err


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=8) | st.sampled_from(["<mask>", "[SEG]", "obj0"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
FIELDS = [*schema.REQUIRED_FIELDS, "video_id", "anno_map", "obj_masks", "groundtruth", "description", "description_id"]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(FIELDS), json_values, st.booleans())
def test_fuzzed_field_never_raises_anything_but_data_error(name: str, value: Any, strict: bool) -> None:
    record = _record()
    record[name] = value
    try:
        records = parse_records([record], strict=strict, mask_dict=_mask_dict())
    except DataError:
        assert strict
        return
    assert records.report.records_total == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.sampled_from(["from", "value", "question_id"]), json_values)
def test_fuzzed_message_never_raises_anything_but_data_error(position: int, key: str, value: Any) -> None:
    record = _record()
    record["conversation"][position][key] = value
    with contextlib.suppress(DataError):  # strict: any failure must be a DataError
        parse_records([record], mask_dict=_mask_dict())
    report = parse_records([record], strict=False, mask_dict=_mask_dict()).report
    assert report.turns_kept + len(report.errors) >= report.turns_total
