"""The synthetic-world fact accuracy runner: the oracle scores 1.0, wrong answers score 0, missing ones are errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sama.cli import main
from sama.data.synthetic import generate_dataset
from sama.data.synthetic.facts import load_facts
from sama.errors import DataError
from sama.evaluate.benchmarks.synthetic_facts import ATTRIBUTE_MOTION_KINDS, score_facts
from sama.evaluate.predictions import PredictionRow, PredictionStore


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("facts") / "world"
    generate_dataset(root, num_videos=10, seed=5, split_fractions=(0.0, 0.0, 1.0), progress=False)
    return root


def _write(path: Path, answers: dict[str, str]) -> Path:
    store = PredictionStore(path)
    for qid, text in answers.items():
        store.append(PredictionRow(qid, text, []))
    return path


def _bench_attribute_facts(world: Path) -> dict[str, dict]:
    return {q: f for q, f in load_facts(world).items()
            if f["split"] == "bench" and f["kind"] in ATTRIBUTE_MOTION_KINDS and not f.get("followup")}


def test_ground_truth_answers_score_one(world: Path, tmp_path: Path) -> None:
    facts = _bench_attribute_facts(world)
    assert facts, "the generated bench has attribute/motion questions"
    pred = _write(tmp_path / "pred.jsonl", {q: f["answer"] for q, f in facts.items()})
    scores = score_facts(world, pred, tmp_path / "out")
    assert scores["accuracy"] == 1.0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["scored"] == len(facts) and summary["counts"]["missing"] == 0


def test_wrong_answers_score_zero_and_missing_ones_are_errors(world: Path, tmp_path: Path) -> None:
    facts = _bench_attribute_facts(world)
    pred = _write(tmp_path / "pred.jsonl", dict.fromkeys(facts, "I do not know."))
    assert score_facts(world, pred, tmp_path / "out")["accuracy"] == 0.0
    partial = _write(tmp_path / "partial.jsonl", {q: f["answer"] for q, f in list(facts.items())[1:]})
    with pytest.raises(DataError, match="1 question\\(s\\) have no prediction"):
        score_facts(world, partial, tmp_path / "out2")
    assert score_facts(world, partial, tmp_path / "out3", lenient=True)["accuracy"] == 1.0


def test_cli_reports_unknown_kind(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _write(tmp_path / "pred.jsonl", {})
    code = main(["evaluate", "facts", "--data", str(world), "--pred", str(pred), "--out", str(tmp_path / "o"),
                 "--kinds", "flavour"])
    assert code == 2
    assert "no facts of kind(s) ['flavour']" in capsys.readouterr().err
