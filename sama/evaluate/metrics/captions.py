"""Caption metrics per video (METRICS.md §7.4, §8, §9): BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D via pycocoevalcap.

The scorers are called individually after one PTB tokenisation (not through ``COCOEvalCap.evaluate``), so one
unavailable metric never zeroes the others:

- SPICE is always reported unavailable (``None`` + reason): it downloads CoreNLP 3.6.0 at run time (§9);
- METEOR is unavailable (``None`` + reason) when ``java`` is missing; so are the others, unless
  ``allow_approximate=True`` swaps the Java PTB tokenizer for a Python one (marked ``tokenizer="approximate-python"``).

All videos are tokenised in one Java call and scored by one METEOR process, keeping JVM start-ups to two.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sama.errors import DataError

# METRICS.md §7.4 and SAMA.md §6 item 24: captions are truncated to 300 words, then 2000 characters.
MAX_CAPTION_WORDS = 300
MAX_CAPTION_CHARS = 2000
METRIC_NAMES: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
SPICE_UNAVAILABLE = "SPICE needs Stanford CoreNLP 3.6.0, which it downloads at run time; not available offline"
NO_JAVA = "java not found on PATH (METEOR 1.5 and the PTB tokenizer run under Java)"
# pycocoevalcap PTBTokenizer: punctuation tokens removed after tokenisation (METRICS.md §9).
PTB_PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                             "--", "...", ";"])


def truncate_caption(text: str, max_words: int = MAX_CAPTION_WORDS, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """First ``max_words`` whitespace-separated words joined by single spaces, then the first ``max_chars`` chars."""
    return " ".join(text.split()[:max_words])[:max_chars]


@dataclass
class CaptionScores:
    """One video's caption metrics. ``scores[name]`` is None for an unavailable metric, with ``unavailable[name]``."""

    scores: dict[str, float | None]
    unavailable: dict[str, str] = field(default_factory=dict)
    tokenizer: str = "ptb-java"
    num_captions: int = 0

    def as_dict(self) -> dict[str, object]:
        return {**self.scores, "unavailable": dict(self.unavailable), "tokenizer": self.tokenizer,
                "num_captions": self.num_captions}


def java_available() -> bool:
    """True when a ``java`` executable is on PATH."""
    return shutil.which("java") is not None


def _python_tokenize(text: str) -> str:
    """Approximate PTB tokenisation in Python: lower-case word/number/punctuation tokens, punctuation removed."""
    tokens = re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", text.lower().replace("\n", " "))
    return " ".join(t for t in tokens if t not in PTB_PUNCTUATION)


def _tokenize_all(texts: list[str], use_java: bool) -> list[str]:
    """Tokenise every text in one call (one JVM start)."""
    if not texts:
        return []
    if not use_java:
        return [_python_tokenize(t) for t in texts]
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    # An empty caption can lose its output line; it tokenises to the empty string.
    return [tokenized.get(i, [""])[0] for i in range(len(texts))]


def caption_scores_by_video(
    videos: Mapping[str, Sequence[tuple[str, str]]],
    meteor: bool = True,
    allow_approximate: bool = False,
) -> dict[str, CaptionScores]:
    """Caption metrics for each video: ``videos[video] = [(reference, prediction), ...]`` (cleaned texts).

    Each (reference, prediction) pair is one COCO "image" of that video's own call, so CIDEr's document frequencies
    come from that video only (a one-question video scores CIDEr 0, §9). Texts are truncated first.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    have_java = java_available()
    if not have_java and not allow_approximate:
        return {
            vid: CaptionScores({m: None for m in METRIC_NAMES}, {m: NO_JAVA for m in METRIC_NAMES}, "none", len(p))
            for vid, p in videos.items()
        }
    flat: list[str] = []
    for vid, pairs in videos.items():
        for k, pair in enumerate(pairs):
            if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
                raise DataError(f"expected a (reference, prediction) pair of strings, got {pair!r}",
                                record=vid, turn=k, field="captions")
            flat.extend(truncate_caption(t) for t in pair)
    tokens = _tokenize_all(flat, use_java=have_java)
    meteor_scorer = None
    meteor_reason = None
    if meteor and have_java and any(videos.values()):
        from pycocoevalcap.meteor.meteor import Meteor

        meteor_scorer = Meteor()
    elif meteor:
        meteor_reason = NO_JAVA
    else:
        meteor_reason = "METEOR disabled by the caller"
    out: dict[str, CaptionScores] = {}
    pos = 0
    try:
        for vid, pairs in videos.items():
            n = len(pairs)
            gts = {i: [tokens[pos + 2 * i]] for i in range(n)}
            res = {i: [tokens[pos + 2 * i + 1]] for i in range(n)}
            pos += 2 * n
            unavailable = {"SPICE": SPICE_UNAVAILABLE}
            scores: dict[str, float | None] = {m: None for m in METRIC_NAMES}
            if n == 0:
                out[vid] = CaptionScores(scores, {m: "video has no captions" for m in METRIC_NAMES},
                                         "ptb-java" if have_java else "approximate-python", 0)
                continue
            with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its n-gram statistics
                bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            for k in range(4):
                scores[f"Bleu_{k + 1}"] = float(bleu[k])
            scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
            scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
            if meteor_scorer is not None:
                scores["METEOR"] = float(meteor_scorer.compute_score(gts, res)[0])
            else:
                unavailable["METEOR"] = meteor_reason or NO_JAVA
            out[vid] = CaptionScores(scores, unavailable, "ptb-java" if have_java else "approximate-python", n)
    finally:
        if meteor_scorer is not None:
            meteor_scorer.meteor_p.stdin.close()
            meteor_scorer.meteor_p.kill()
            meteor_scorer.meteor_p.wait()
    return out


def caption_scores(
    pairs: Sequence[tuple[str, str]], meteor: bool = True, allow_approximate: bool = False
) -> CaptionScores:
    """Caption metrics of one video's (reference, prediction) pairs."""
    return caption_scores_by_video({"video": pairs}, meteor=meteor, allow_approximate=allow_approximate)["video"]
