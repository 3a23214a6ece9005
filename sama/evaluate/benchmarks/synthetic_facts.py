"""Exact-fact accuracy on the synthetic world: each answer of a prediction JSONL is checked against the scene's
ground truth in ``facts.json`` (``sama.data.synthetic.facts.check_answer``), per fact kind.

This is the embedded model's "attribute / motion answers correct" quality bar. It reads the same prediction file as
``sama evaluate sama-bench-g`` (produce it with ``--model``). Follow-up questions ("What colour is it?") only make sense
after their dialogue history, so they count only when the predictions were made with ``--dialogue history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sama.data.synthetic.facts import load_facts, score_answers
from sama.errors import DataError
from sama.evaluate.predictions import read_predictions
from sama.evaluate.report import write_report

ATTRIBUTE_MOTION_KINDS = ("colour", "shape", "size", "identity", "motion")  # single-object attribute / motion facts


def score_facts(data_dir: str | Path, pred: str | Path, out: str | Path, *, split: str = "bench",
                kinds: Sequence[str] = ATTRIBUTE_MOTION_KINDS, followups: bool = False,
                lenient: bool = False) -> dict[str, Any]:
    """Score the answers to the ``split`` questions of the given fact ``kinds``; write the report into ``out``."""
    facts = load_facts(data_dir)
    unknown = sorted(set(kinds) - {str(f["kind"]) for f in facts.values()})
    if unknown:
        raise DataError(f"no facts of kind(s) {unknown} in this dataset", file=str(Path(data_dir) / "facts.json"))
    selected = {qid: fact for qid, fact in facts.items()
                if fact.get("split") == split and fact["kind"] in kinds and (followups or not fact.get("followup"))}
    rows, read_report = read_predictions(pred, lenient=lenient)
    missing = sorted(set(selected) - set(rows))
    if missing and not lenient:
        raise DataError(f"{len(missing)} question(s) have no prediction, e.g. {missing[:3]} (use --lenient to skip "
                        "them, counted in the report)", file=str(pred))
    answers = {qid: rows[qid].text for qid in selected if qid in rows}
    per_kind = score_answers(selected, answers) if answers else {}
    overall = per_kind.get("all", {"n": 0, "correct": 0, "acc": float("nan")})
    scores = {"accuracy": overall["acc"], **{f"accuracy_{k}": v["acc"] for k, v in per_kind.items() if k != "all"}}
    per_question = {qid: {"kind": selected[qid]["kind"], "expected": selected[qid]["expected"], "answer": text,
                          "correct": float(score_answers({qid: selected[qid]}, {qid: text})["all"]["acc"])}
                    for qid, text in answers.items()}
    write_report(out, benchmark="synthetic-facts", scores=scores,
                 options={"split": split, "kinds": list(kinds), "followups": followups},
                 counts={"questions": len(selected), "scored": len(answers), "missing": len(missing),
                         "per_kind": per_kind, "prediction_file": read_report.as_dict()},
                 per_item=per_question, unit="question", plot_metric="correct")
    return scores
