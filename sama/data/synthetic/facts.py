"""Exact scoring of answers about the synthetic world against the checkable facts in ``facts.json``.

``check_answer(fact, answer)`` says whether a model's answer states the fact: the expected word or phrase is there
and no competing word of the same vocabulary is (so "It is red or blue." is wrong). Grounded kinds compare the
``<p> … </p>`` phrases with the expected object names, as sets where order does not matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sama.data.schema import clean_text, extract_phrases, normalize_aliases
from sama.data.synthetic.language import RELATION_PHRASES
from sama.data.synthetic.scene import COLOURS, SHAPES, SIZE_FRACTIONS
from sama.errors import DataError

VOCABULARY: dict[str, tuple[str, ...]] = {"colour": tuple(COLOURS), "shape": SHAPES, "size": tuple(SIZE_FRACTIONS)}
DIRECTION_WORDS = ("left", "right", "up", "down")
# Words an answer must contain for each motion label, and words it must not contain.
MOTION_WORDS: dict[str, tuple[set[str], set[str]]] = {
    "still": ({"still"}, {*DIRECTION_WORDS, "bounces", "bounce"}),
    "left": ({"left"}, {"right", "up", "down", "still", "bounces", "bounce"}),
    "right": ({"right"}, {"left", "up", "down", "still", "bounces", "bounce"}),
    "up": ({"up"}, {"left", "right", "down", "still", "bounces", "bounce"}),
    "down": ({"down"}, {"left", "right", "up", "still", "bounces", "bounce"}),
    "bounce_h": ({"left", "right"}, {"up", "down", "still"}),
    "bounce_v": ({"up", "down"}, {"left", "right", "still"}),
}
EVENT_PATTERNS: dict[str, str] = {
    "enters": r"\benters? the frame\b",
    "leaves": r"\bleaves? the frame\b",
    "hidden": r"\bgoes behind\b",
    "stops": r"\bstops?\b",
    "none": r"\bnothing\b",
}
GROUNDED_KINDS = ("objects", "which_motion", "which_colour")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def _only(words: set[str], expected: set[str], vocabulary: set[str]) -> bool:
    """All expected words present and no other word of the vocabulary."""
    return expected <= words and not (words & (vocabulary - expected))


def check_answer(fact: Mapping[str, Any], answer: str) -> bool:
    """True when ``answer`` states the fact (see the module docstring); ``DataError`` for an unknown fact kind."""
    kind, expected = fact.get("kind"), fact.get("expected")
    text = clean_text(normalize_aliases(answer)).lower()
    words = _words(text)
    phrases = extract_phrases(normalize_aliases(answer))
    if kind in VOCABULARY:
        return _only(words, {str(expected)}, set(VOCABULARY[kind]))
    if kind == "identity":
        colour, shape = str(expected).split()
        return _only(words, {colour}, set(COLOURS)) and _only(words, {shape}, set(SHAPES))
    if kind == "motion":
        required, forbidden = MOTION_WORDS[str(expected)]
        return required <= words and not (words & forbidden) and (("bounce" in text) == expected.startswith("bounce"))
    if kind == "event":
        hits = {name for name, pattern in EVENT_PATTERNS.items() if re.search(pattern, text)}
        if hits != {expected}:
            return False
        return expected != "hidden" or phrases == list(fact.get("phrases", []))
    if kind in GROUNDED_KINDS:
        return sorted(phrases) == sorted(expected)
    if kind == "closest":
        return phrases == [expected]
    if kind == "relation":
        return RELATION_PHRASES[str(expected)] in text and phrases == list(fact.get("phrases", []))
    if kind == "description":
        attributes = fact.get("attributes") or {}
        motion_fact = {"kind": "motion", "expected": attributes.get("motion")}
        event_hits = {name for name, pattern in EVENT_PATTERNS.items() if name != "none" and re.search(pattern, text)}
        return (
            f"{attributes.get('size')} {attributes.get('colour')} {attributes.get('shape')}" in text
            and check_answer(motion_fact, re.sub(r"\b(goes behind|enters|leaves|stops)\b.*", "", text))
            and event_hits == set(attributes.get("events", []))
        )
    raise DataError(f"unknown fact kind {kind!r}", field="kind")


def load_facts(dataset_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``facts.json`` of a dataset written by ``generate_dataset``."""
    path = Path(dataset_dir) / "facts.json"
    if not path.is_file():
        raise DataError("no facts.json here: not a dataset written by `sama data synth`", file=str(path))
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)) from exc
    if not isinstance(facts, dict):
        raise DataError(f"expected an object {{question_id: fact}}, got {type(facts).__name__}", file=str(path))
    return facts


def score_answers(facts: Mapping[str, Mapping[str, Any]], answers: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Accuracy per fact kind (and ``"all"``) over the question ids present in ``answers``: {kind: {n, correct, acc}}."""
    totals: dict[str, list[int]] = {}
    for question_id, answer in answers.items():
        if question_id not in facts:
            raise DataError(f"question id {question_id!r} has no fact", field="question_id")
        kind = str(facts[question_id]["kind"])
        correct = int(check_answer(facts[question_id], answer))
        for key in (kind, "all"):
            n, right = totals.get(key, [0, 0])
            totals[key] = [n + 1, right + correct]
    return {key: {"n": n, "correct": right, "acc": right / n} for key, (n, right) in sorted(totals.items())}
