"""Tests for sama.data.rvos: MeViS / Ref-YTVOS / Ref-DAVIS / ReVOS meta_expressions readers and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sama.data.masks import MaskDict, rle_encode
from sama.data.rvos import expression_masks, load_meta_expressions, load_revos
from sama.errors import DataError


def _meta(**video_overrides: Any) -> dict[str, Any]:
    video_b = {
        "frames": ["00000", "00001"],
        "expressions": {
            "1": {"exp": "the cat", "anno_id": [3], "obj_id": [1]},
            "0": {"exp": " two dogs ", "anno_id": [1, 2], "obj_id": [0, 2]},
        },
    }
    video_b.update(video_overrides)
    return {"videos": {"vid_b": video_b, "vid_a": {"frames": ["00000"], "expressions": {"0": {"exp": "a car"}}}}}


def _write(tmp_path: Path, data: Any, name: str = "meta_expressions.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _mask_dict() -> tuple[MaskDict, np.ndarray, np.ndarray]:
    left = np.zeros((4, 6), bool)
    left[:, :2] = True
    right = np.zeros((4, 6), bool)
    right[:, 4:] = True
    entries = {"1": [rle_encode(left), None], "2": [rle_encode(right), rle_encode(right)], "3": [None]}
    return MaskDict(entries, source="mask_dict.json"), left, right


def test_mevis_reader_sorted_and_typed(tmp_path: Path) -> None:
    md, left, right = _mask_dict()
    split = load_meta_expressions(_write(tmp_path, _meta()), "mevis", mask_dict=md)
    assert split.report.ok and split.dataset == "mevis"
    assert [v.video_id for v in split] == ["vid_a", "vid_b"]
    expressions = list(split.expressions())
    assert [e.question_id for e in expressions] == ["vid_a/0", "vid_b/0", "vid_b/1"]
    two_dogs = expressions[1]
    assert two_dogs.expression == "two dogs" and two_dogs.anno_ids == [1, 2] and two_dogs.obj_ids == [0, 2]
    assert expressions[0].anno_ids == []  # Ref-YTVOS valid style: no GT ids
    gt = expression_masks(md, two_dogs, 2, 4, 6)
    np.testing.assert_array_equal(gt[0], left | right)  # union of the anno_ids (METRICS.md §3)
    np.testing.assert_array_equal(gt[1], right)


def test_scalar_obj_id_is_listed(tmp_path: Path) -> None:
    data = {"videos": {"v": {"frames": ["0"], "expressions": {"0": {"exp": "x", "obj_id": "1"}}}}}
    split = load_meta_expressions(_write(tmp_path, data), "ref_ytvos")
    assert split[0].expressions[0].obj_ids == ["1"]


def test_ref_davis_sequential_anno_ids(tmp_path: Path) -> None:
    md = MaskDict({str(i): [None] for i in range(3)})
    split = load_meta_expressions(_write(tmp_path, _meta()), "ref_davis", sequential_anno_ids=True, mask_dict=md)
    assert [e.anno_ids for e in split.expressions()] == [[0], [1], [2]]
    with pytest.raises(DataError, match=r"1 sequential anno_ids are not in the mask dictionary, first vid_b/1 → 2"):
        load_meta_expressions(
            _write(tmp_path, _meta()), "ref_davis", sequential_anno_ids=True, mask_dict=MaskDict({"0": [], "1": []})
        )


def test_revos_requires_type_and_size(tmp_path: Path) -> None:
    data = {
        "videos": {
            "v": {
                "frames": ["0", "1"],
                "height": 4,
                "width": 6,
                "expressions": {"0": {"exp": "why", "anno_id": [1], "type_id": 1}},
            }
        }
    }
    split = load_revos(_write(tmp_path, data))
    assert split[0].height == 4 and split[0].expressions[0].type_id == 1
    data["videos"]["v"]["expressions"]["0"]["type_id"] = 5
    with pytest.raises(DataError, match=r"record v, field expressions\.0\.type_id: expected type_id in \[0, 1, 2\]"):
        load_revos(_write(tmp_path, data))
    del data["videos"]["v"]["height"]
    with pytest.raises(DataError, match="field height: expected a positive int, got None"):
        load_revos(_write(tmp_path, data))


def test_revos_foreground_dict_loads_as_mask_dict(tmp_path: Path) -> None:
    mask = np.eye(4, dtype=bool)
    path = _write(tmp_path, {"v": {"masks_rle": [rle_encode(mask)]}}, "mask_dict_foreground.json")
    np.testing.assert_array_equal(MaskDict.load(path).frame_mask("v", 0, 4, 4), mask)


@pytest.mark.parametrize(
    ("overrides", "rule", "pattern", "kept_expressions"),
    [
        ({"frames": []}, "field_type", r"record vid_b, field frames: expected a non-empty list", 1),
        ({"expressions": None}, "missing_field", r"field expressions: expected an 'expressions' object", 1),
        (
            {"expressions": {"0": {"exp": ""}, "1": {"exp": "ok"}}},
            "missing_field",
            r"field expressions\.0\.exp: expected a non-empty 'exp' string",
            2,
        ),
        (
            {"expressions": {"0": {"exp": "x", "anno_id": [1.5]}}},
            "field_type",
            r"field expressions\.0\.anno_id: expected an id or a list of ids",
            1,
        ),
        (
            {"expressions": {"0": {"exp": "x", "anno_id": [99]}}},
            "unknown_object",
            r"anno_id 99 is not in the mask dictionary",
            1,
        ),
    ],
)
def test_bad_entries_strict_and_lenient(tmp_path: Path, overrides, rule, pattern, kept_expressions) -> None:
    path = _write(tmp_path, _meta(**overrides))
    md, _, _ = _mask_dict()
    with pytest.raises(DataError, match=pattern) as info:
        load_meta_expressions(path, mask_dict=md)
    assert str(path) in str(info.value)
    split = load_meta_expressions(path, strict=False, mask_dict=md)
    assert split.report.counts_by_rule() == {rule: 1}
    assert sum(len(v.expressions) for v in split) == kept_expressions
    assert "expressions:" in split.report.summary()


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="meta expressions file not found"):
        load_meta_expressions(tmp_path / "missing.json")
    with pytest.raises(DataError, match="'videos' mapping"):
        load_meta_expressions(_write(tmp_path, {"vids": {}}))
    with pytest.raises(DataError, match="unknown RVOS dataset 'davis'"):
        load_meta_expressions(_write(tmp_path, _meta()), "davis")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["frames", "expressions", "height", "width", "exp", "anno_id", "obj_id", "type_id"]),
    json_values,
    st.sampled_from(["mevis", "revos"]),
)
def test_fuzzed_fields_only_raise_data_error(tmp_path_factory, name: str, value: Any, dataset: str) -> None:
    meta = _meta(height=4, width=6)
    for video in meta["videos"].values():
        for expression in video["expressions"].values():
            expression["type_id"] = 0
    if name in ("frames", "expressions", "height", "width"):
        meta["videos"]["vid_b"][name] = value
    else:
        meta["videos"]["vid_b"]["expressions"]["1"][name] = value
    path = _write(tmp_path_factory.mktemp("fuzz"), meta)
    md, _, _ = _mask_dict()
    try:
        load_meta_expressions(path, dataset, mask_dict=md)
    except DataError as exc:
        assert str(path) in str(exc)
    split = load_meta_expressions(path, dataset, strict=False, mask_dict=md)
    assert split.report.turns_kept + len(split.report.issues) >= split.report.turns_total


def test_cli_validate_rvos_with_mask_dict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sama.cli import main

    md_path = _write(tmp_path, {"0": [None], "1": [None], "2": [None]}, "mask_dict.json")
    meta = _write(tmp_path, _meta())
    assert main(["data", "validate", str(meta), "--mask-dict", str(md_path), "--lenient"]) == 1
    assert "unknown_object: 1" in capsys.readouterr().out  # anno_id 3 of vid_b/1
    args = [
        "data",
        "validate",
        str(meta),
        "--mask-dict",
        str(md_path),
        "--sequential-anno-ids",
        "--format",
        "ref_davis",
    ]
    assert main(args) == 0
    assert "expressions: 3/3 kept" in capsys.readouterr().out
