"""Prediction JSONL store: durable appends, torn-line recovery, duplicates, merge, sharding, validation messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sama.data.masks import rle_encode
from sama.errors import ConfigError, DataError
from sama.evaluate.predictions import (
    ExpectedShape,
    PredictionRow,
    PredictionStore,
    merge,
    parse_shard,
    read_predictions,
    shard_from_env,
    shard_of,
    shard_path,
    validate_predictions,
)

H, W, T = 6, 8, 3


def mask_rles(frames: int = T, height: int = H, width: int = W) -> list[dict | None]:
    mask = np.zeros((height, width), dtype=bool)
    mask[1:3, 2:5] = True
    return [rle_encode(mask)] + [None] * (frames - 1)


def row(qid: str, text: str = "a <p> box </p> [SEG]") -> PredictionRow:
    return PredictionRow(qid, text, [mask_rles()])


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.jsonl"
    with PredictionStore(path) as store:
        store.append(row("q1"))
        store.append(PredictionRow("q2", "plain", [], extra={"seconds": 1.5}))
        assert store.done_ids() == {"q1", "q2"}
    rows, report = read_predictions(path)
    assert rows["q1"] == row("q1") and rows["q2"].extra == {"seconds": 1.5}
    assert not report.torn_last_line
    assert path.read_text().count("\n") == 2


def test_append_of_a_stored_id_is_refused(tmp_path: Path) -> None:
    with PredictionStore(tmp_path / "p.jsonl") as store:
        store.append(row("q1"))
        with pytest.raises(DataError, match=r"record q1, field question_id: a prediction for this question id is "
                                            r"already stored"):
            store.append(row("q1"))


def test_torn_last_line_is_ignored_reported_and_truncated_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionStore(path) as store:
        store.append(row("q1"))
        store.append(row("q2"))
    with open(path, "ab") as handle:
        handle.write(b'{"question_id": "q3", "text": "cut in the mid')  # SIGKILL during a write
    rows, report = read_predictions(path)
    assert set(rows) == {"q1", "q2"} and report.torn_last_line
    with PredictionStore(path) as store:
        assert store.report.torn_last_line and store.done_ids() == {"q1", "q2"}
        store.append(row("q3"))
    rows, report = read_predictions(path)
    assert set(rows) == {"q1", "q2", "q3"} and not report.torn_last_line


def test_complete_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row("q1").to_json()) + "\n" + json.dumps(row("q2").to_json()))  # crash before "\n"
    with PredictionStore(path) as store:
        assert store.done_ids() == {"q1", "q2"}
        store.append(row("q3"))
    assert set(read_predictions(path)[0]) == {"q1", "q2", "q3"}


def test_malformed_middle_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row("q1").to_json()) + "\n{not json\n" + json.dumps(row("q2").to_json()) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl, record line 2: line is not valid JSON"):
        read_predictions(path)
    rows, report = read_predictions(path, lenient=True)
    assert set(rows) == {"q1", "q2"} and report.malformed_lines == [2]


def test_record_shape_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "no id"}\n')
    with pytest.raises(DataError, match=r"record line 1, field question_id: expected a non-empty string"):
        read_predictions(path)
    path.write_text('{"question_id": "q1", "masks": {"a": 1}}\n')
    with pytest.raises(DataError, match=r"record q1, field masks: expected 'masks' to be a list"):
        read_predictions(path)


def test_duplicate_ids_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(row(q).to_json()) + "\n" for q in ("q1", "q2", "q1")))
    with pytest.raises(DataError, match=r"duplicate prediction for question id 'q1' \(line 3\)"):
        read_predictions(path)
    rows, report = read_predictions(path, lenient=True)
    assert set(rows) == {"q1", "q2"} and report.duplicates == ["q1"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prediction file not found"):
        read_predictions(tmp_path / "nope.jsonl")


def write_rows(path: Path, rows: list[PredictionRow]) -> Path:
    with PredictionStore(path) as store:
        for r in rows:
            store.append(r)
    return path


def test_merge_dedups_identical_and_rejects_conflicts(tmp_path: Path) -> None:
    a = write_rows(tmp_path / "a.jsonl", [row("q2"), row("q1")])
    b = write_rows(tmp_path / "b.jsonl", [row("q3"), row("q1")])
    report = merge([a, b], tmp_path / "m.jsonl")
    assert report.as_dict() == {"rows": 3, "identical_duplicates": 1, "torn_lines": 0}
    assert [json.loads(x)["question_id"] for x in (tmp_path / "m.jsonl").read_text().splitlines()] == ["q1", "q2",
                                                                                                         "q3"]
    c = write_rows(tmp_path / "c.jsonl", [row("q1", text="something else")])
    with pytest.raises(DataError, match=r"c.jsonl, record q1, field question_id: conflicting predictions .*a.jsonl"):
        merge([a, c], tmp_path / "m2.jsonl")
    assert not (tmp_path / "m2.jsonl").exists()
    with pytest.raises(ConfigError, match="also one of the inputs"):
        merge([a, b], a)
    with pytest.raises(ConfigError, match="at least one input"):
        merge([], tmp_path / "m3.jsonl")


def test_shard_helpers() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    assert shard_from_env({}) is None
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    with pytest.raises(ConfigError, match="RANK=3 WORLD_SIZE=3"):
        shard_from_env({"RANK": "3", "WORLD_SIZE": "3"})
    ids = [f"q-{i}" for i in range(200)]
    shards = [shard_of(q, 4) for q in ids]
    assert shards == [shard_of(q, 4) for q in ids]  # deterministic
    assert set(shards) == {0, 1, 2, 3} and max(shards.count(s) for s in range(4)) < 80  # roughly balanced
    assert shard_path("out/p.jsonl", 1, 4) == Path("out/p.shard-1-of-4.jsonl")
    assert shard_path("out/p.jsonl", 0, 1) == Path("out/p.jsonl")


EXPECTED = {"q1": ExpectedShape(T, H, W), "q2": ExpectedShape(T, H, W), "c1": None}


def test_validation_accepts_good_predictions() -> None:
    rows = {"q1": row("q1"), "q2": PredictionRow("q2", "no masks"), "c1": PredictionRow("c1", "caption")}
    report = validate_predictions(rows, EXPECTED)
    assert report.as_dict()["missing"] == report.as_dict()["invalid"] == 0


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ([mask_rles(frames=T + 1)], r"record q1, field masks: \[SEG\] 0: 4 frame masks, expected 3"),
        ([mask_rles(height=H + 1)], r"\[SEG\] 0 frame 0: mask size \[7, 8\] does not match the video frame size "
                                    r"\[6, 8\]"),
        ([[{"size": [H, W], "counts": "0"}, None, None]], r"\[SEG\] 0 frame 0: invalid RLE \(run lengths sum to 0"),
        ([[{"size": [H, W], "counts": "garbage!!"}, None, None]], r"invalid RLE \(character"),
        ([[{"counts": "x"}, None, None]], r"invalid RLE \('size' must be"),
    ],
)
def test_validation_messages_name_the_question(masks: list, message: str) -> None:
    rows = {"q1": PredictionRow("q1", "", masks), "q2": row("q2"), "c1": PredictionRow("c1", "")}
    with pytest.raises(DataError, match=message):
        validate_predictions(rows, EXPECTED, file="p.jsonl")
    report = validate_predictions(rows, EXPECTED, lenient=True)
    assert list(report.invalid) == ["q1"]


def test_validation_unknown_and_missing_ids() -> None:
    rows = {"q1": row("q1"), "zz": row("zz"), "c1": PredictionRow("c1", "")}
    with pytest.raises(DataError, match=r"record zz, field question_id: prediction for a question id that is not in "
                                        r"the benchmark"):
        validate_predictions(rows, EXPECTED)
    del rows["zz"]
    with pytest.raises(DataError, match=r"record q2, field question_id: no prediction for question id 'q2'.*--lenient"):
        validate_predictions(rows, EXPECTED)
    report = validate_predictions({"zz": row("zz")}, EXPECTED, lenient=True)
    assert report.unknown == ["zz"] and report.missing == ["c1", "q1", "q2"]
