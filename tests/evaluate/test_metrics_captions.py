"""Caption metrics (METRICS.md §7.4, §9): per-video pycocoevalcap scorers, truncation, SPICE/METEOR availability."""

from __future__ import annotations

import math

import pytest

from sama.errors import DataError
from sama.evaluate.metrics import captions

HAS_JAVA = captions.java_available()

# Hand-computed BLEU for pred "the cat sat on mat" vs ref "the cat sat on the mat" (c = 5, r = 6):
# p1 = 5/5, p2 = 3/4, p3 = 2/3, p4 = 1/2, BP = exp(1 - 6/5).
BP = math.exp(1 - 6 / 5)
TOY_BLEU = {
    "Bleu_1": BP,
    "Bleu_2": (1 * 3 / 4) ** (1 / 2) * BP,
    "Bleu_3": (1 * 3 / 4 * 2 / 3) ** (1 / 3) * BP,
    "Bleu_4": (1 * 3 / 4 * 2 / 3 * 1 / 2) ** (1 / 4) * BP,
}
VIDEOS = {
    "toy": [("The cat sat on the mat.", "the cat sat on mat")],
    "two": [("A man rides a red bicycle down the street.", "A man is riding a bike on the road."),
            ("Two dogs play with a ball in the park.", "Two dogs are playing in a park.")],
    "empty": [],
}


def test_constants_pinned() -> None:
    assert captions.MAX_CAPTION_WORDS == 300 and captions.MAX_CAPTION_CHARS == 2000
    assert captions.METRIC_NAMES[-1] == "SPICE" and len(captions.METRIC_NAMES) == 8


def test_truncation_words_then_chars() -> None:
    text = " ".join(f"w{i}" for i in range(400))
    assert captions.truncate_caption(text).split() == [f"w{i}" for i in range(300)]
    long_words = " ".join(["x" * 50] * 100)  # 100 words, 5099 chars
    assert len(captions.truncate_caption(long_words)) == 2000
    assert captions.truncate_caption("  a \n b\t c ") == "a b c"


def test_bad_pair_names_video_and_turn() -> None:
    with pytest.raises(DataError, match="record v, turn 1"):
        captions.caption_scores_by_video({"v": [("a", "b"), ("only one",)]}, meteor=False,  # type: ignore[list-item]
                                         allow_approximate=True)


def test_no_java_reports_unavailable_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions, "java_available", lambda: False)
    res = captions.caption_scores(VIDEOS["toy"])
    assert all(v is None for v in res.scores.values())
    assert "java" in res.unavailable["METEOR"] and res.tokenizer == "none"
    approx = captions.caption_scores(VIDEOS["toy"], allow_approximate=True)
    assert approx.tokenizer == "approximate-python" and approx.scores["METEOR"] is None
    for key, value in TOY_BLEU.items():
        assert approx.scores[key] == pytest.approx(value, abs=1e-6)


@pytest.fixture(scope="module")
def java_results() -> dict[str, captions.CaptionScores]:
    if not HAS_JAVA:
        pytest.skip("java not installed")
    return captions.caption_scores_by_video(VIDEOS)


def test_toy_bleu_known_values(java_results: dict[str, captions.CaptionScores]) -> None:
    toy = java_results["toy"]
    assert toy.tokenizer == "ptb-java" and toy.num_captions == 1
    for key, value in TOY_BLEU.items():
        assert toy.scores[key] == pytest.approx(value, abs=1e-6)


def test_single_question_video_has_cider_zero(java_results: dict[str, captions.CaptionScores]) -> None:
    assert java_results["toy"].scores["CIDEr"] == 0.0  # one image → ref_len = log(1) = 0 → all IDF weights 0
    assert java_results["two"].scores["CIDEr"] > 0.0


def test_spice_unavailable_and_meteor_from_jar(java_results: dict[str, captions.CaptionScores]) -> None:
    for res in java_results.values():
        assert res.scores["SPICE"] is None and "SPICE" in res.unavailable
    two = java_results["two"].scores
    assert two["METEOR"] is not None and 0.0 < two["METEOR"] < 1.0
    assert 0.0 < two["ROUGE_L"] < 1.0
    empty = java_results["empty"]
    assert empty.num_captions == 0 and all(v is None for v in empty.scores.values())
    assert java_results["two"].as_dict()["unavailable"] == {"SPICE": captions.SPICE_UNAVAILABLE}
