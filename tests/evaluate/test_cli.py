"""`sama evaluate …` end to end on the tiny benchmarks of test_runners: results, options, and bad-input messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_runners import build_bench_g, build_rvos

from sama.cli import main
from sama.evaluate.predictions import read_predictions

FAST = ["--text-sim", "exact", "--no-captions", "--no-progress"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    return build_bench_g(tmp_path / "bench")


def test_bench_g_with_oracle_model(bench: Path, tmp_path: Path, capsys) -> None:
    pred, out = tmp_path / "p.jsonl", tmp_path / "out"
    code, stdout, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(out),
                             "--model", "oracle", "--recall-mode", "fixed", *FAST], capsys)
    assert code == 0, err
    assert json.loads(stdout) == {"miou": 1.0, "recall": 1.0}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["recall_mode"] == "fixed" and summary["options"]["dialogue"] == "independent"
    assert summary["options"]["captions"] is False and summary["options"]["judge"] == "none"
    assert summary["counts"]["predictions_produced"] == 4
    # scoring the existing file again (no --model) gives the same numbers
    code, stdout2, _ = run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(out),
                            "--recall-mode", "fixed", *FAST], capsys)
    assert code == 0 and stdout2 == stdout


def test_shards_then_merge_then_score(bench: Path, tmp_path: Path, capsys) -> None:
    pred, out = tmp_path / "p.jsonl", tmp_path / "out"
    shards = []
    for index in range(2):
        code, _, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(out),
                            "--model", "perturbed:0.1", "--shard", f"{index}/2", *FAST], capsys)
        assert code == 0 and "merge the shards" in err
        shards.append(tmp_path / f"p.shard-{index}-of-2.jsonl")
    code, stdout, _ = run(["merge", *map(str, shards), "--out", str(pred)], capsys)
    assert code == 0 and json.loads(stdout)["rows"] == 4
    code, stdout, _ = run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(out), *FAST],
                          capsys)
    assert code == 0 and 0 < json.loads(stdout)["miou"] < 1
    assert len(read_predictions(pred)[0]) == 4


def oracle_file(bench: Path, tmp_path: Path, capsys) -> Path:
    pred = tmp_path / "oracle.jsonl"
    assert run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(tmp_path / "o"),
                "--model", "oracle", *FAST], capsys)[0] == 0
    return pred


def edit_lines(path: Path, target: Path, edit) -> Path:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    target.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))
    return target


def _drop_b1(rows):
    return [r for r in rows if r["question_id"] != "B-1"]


def _bad_rle(rows):
    rows[0]["masks"][0][0] = {"size": [24, 32], "counts": "garbage!!"}
    return rows


def _wrong_size(rows):
    rows[0]["masks"][0][0] = {"size": [12, 32], "counts": [384]}
    return rows


def _wrong_frames(rows):
    rows[0]["masks"][0] = rows[0]["masks"][0][:2]
    return rows


def _duplicate(rows):
    return [*rows, rows[0]]


def _unknown(rows):
    return [*rows, {**rows[0], "question_id": "Z-9"}]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_b1, r"record B-1, field question_id: no prediction for question id 'B-1'"),
        (_bad_rle, r"record A-0, field masks: \[SEG\] 0 frame 0: invalid RLE"),
        (_wrong_size, r"record A-0, field masks: \[SEG\] 0 frame 0: mask size \[12, 32\] does not match the video "
                      r"frame size \[24, 32\]"),
        (_wrong_frames, r"record A-0, field masks: \[SEG\] 0: 2 frame masks, expected 6"),
        (_duplicate, r"record A-0, field question_id: duplicate prediction for question id 'A-0' \(line 5\)"),
        (_unknown, r"record Z-9, field question_id: prediction for a question id that is not in the benchmark"),
    ],
)
def test_bad_predictions_give_one_clear_error(bench: Path, tmp_path: Path, capsys, edit, message: str) -> None:
    import re

    bad = edit_lines(oracle_file(bench, tmp_path, capsys), tmp_path / "bad.jsonl", edit)
    code, _, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(bad), "--out", str(tmp_path / "x"),
                        *FAST], capsys)
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    # lenient: scored without the bad rows, and the exclusion is reported
    code, _, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(bad), "--out", str(tmp_path / "x"),
                        "--lenient", *FAST], capsys)
    assert code == 0, err
    counts = json.loads((tmp_path / "x" / "summary.json").read_text())["counts"]
    excluded = counts["predictions_excluded"]
    assert excluded["missing"] + excluded["unknown"] + excluded["invalid"] + counts["prediction_file"][
        "duplicates"] >= 1


def test_user_errors(bench: Path, tmp_path: Path, capsys) -> None:
    pred = oracle_file(bench, tmp_path, capsys)
    cases = [
        (["sama-bench-g", "--data", str(tmp_path / "nowhere"), "--pred", str(pred), "--out", "o"],
         "SAMA-Bench file missing"),
        (["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", "o", "--shard", "0/2"],
         "--shard only applies when producing predictions with --model"),
        (["sama-bench-g", "--data", str(bench), "--pred", str(tmp_path / "n.jsonl"), "--out", "o",
          "--model", "perturbed:abc"], "expected perturbed:STRENGTH"),
        (["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", "o", "--judge", "clair"],
         "--judge clair needs --judge-url"),
        (["mevis", "--data", str(bench), "--pred", str(pred), "--out", "o"], "no expressions file"),
        (["sama-bench-c", "--data", str(bench), "--pred", str(pred), "--out", "o", "--no-captions"],
         "Bench-C has only text metrics"),
    ]
    for argv, message in cases:
        code, _, err = run([*argv, "--no-progress"], capsys)
        assert code == 2 and message in err, (argv, err)


def test_model_layer_missing_is_a_clear_error(bench: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import sama.evaluate.benchmarks.base as base

    monkeypatch.setattr(base, "MODEL_ADAPTER_MODULE", "sama.model.no_such_adapter")
    code, _, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(tmp_path / "p.jsonl"), "--out", "o",
                        "--model", "checkpoints/sama-tiny", *FAST], capsys)
    assert code == 2 and "the model layer (sama.model.no_such_adapter) is not available" in err


def test_mevis_and_davis_cli(tmp_path: Path, capsys) -> None:
    data = build_rvos(tmp_path / "rvos", davis=True)
    for name, extra in (("mevis", []), ("davis17", ["--protocol", "both"])):
        code, stdout, err = run([name, "--data", str(data), "--pred", str(tmp_path / f"{name}.jsonl"), "--out",
                                 str(tmp_path / name), "--model", "oracle", "--no-progress", *extra], capsys)
        assert code == 0, err
        scores = json.loads(stdout)
        assert all(v == pytest.approx(1.0) for k, v in scores.items() if "J" in k or "F" in k), scores
    assert (tmp_path / "davis17" / "per_expression.json").is_file()


def test_mevis_missing_as_zero_matches_the_official_rule(tmp_path: Path, capsys) -> None:
    data = build_rvos(tmp_path / "rvos")
    pred = tmp_path / "m.jsonl"
    assert run(["mevis", "--data", str(data), "--pred", str(pred), "--out", str(tmp_path / "o"), "--model", "oracle",
                "--no-progress"], capsys)[0] == 0
    edit_lines(pred, pred, lambda rows: [r for r in rows if r["question_id"] != "vidA/1"])
    code, _, err = run(["mevis", "--data", str(data), "--pred", str(pred), "--out", str(tmp_path / "o"),
                        "--no-progress"], capsys)
    assert code == 2 and "no prediction for question id 'vidA/1'" in err
    code, stdout, err = run(["mevis", "--data", str(data), "--pred", str(pred), "--out", str(tmp_path / "o"),
                             "--missing-as-zero", "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["J&F"] == pytest.approx(3 / 4)  # 4 expressions, one scored (0, 0)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["counts"]["expressions_scored_zero_without_prediction"] == 1
    assert summary["options"]["missing_as_zero"] is True


def test_dialogue_mode_is_stamped_and_checked(bench: Path, tmp_path: Path, capsys) -> None:
    pred = oracle_file(bench, tmp_path, capsys)
    assert {r["dialogue"] for r in map(json.loads, pred.read_text().splitlines())} == {"independent"}
    code, _, err = run(["sama-bench-g", "--data", str(bench), "--pred", str(pred), "--out", str(tmp_path / "h"),
                        "--dialogue", "history", *FAST], capsys)
    assert code == 2 and "was produced with dialogue='independent' but this run uses dialogue='history'" in err


def test_max_new_tokens_reaches_the_model_options(tmp_path) -> None:
    from sama.cli import build_parser
    from sama.evaluate.cli import _settings

    args = build_parser().parse_args(["evaluate", "mevis", "--data", str(tmp_path), "--pred", str(tmp_path / "p.jsonl"),
                                      "--out", str(tmp_path / "o"), "--model", "sama-tiny", "--max-new-tokens", "7"])
    assert _settings(args).model_options == {"max_new_tokens": 7}
