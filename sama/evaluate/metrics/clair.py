"""CLAIR caption judge (METRICS.md §10) against any OpenAI-compatible chat endpoint, standard library only.

No judge configured → every score is ``None`` ("n/a"), never 0. The judge's base URL, model, temperature, retry count
and prompt hash are recorded in ``ClairJudge.record()`` so a number can always be traced to its judge.

``MiniLMCaptionSimilarity`` is a deterministic local stand-in, a **different metric** named "minilm-caption-sim".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sama.errors import ConfigError

# METRICS.md §10: the prompt, verbatim.
CLAIR_PROMPT = (
    "You are trying to tell if a candidate set of captions is describing the same image as a reference set of "
    "captions.\nCandidate set:\n{candidate_statements}\nReference set:\n{target_statements}\nOn a precise scale from "
    "0 to 100, how likely is it that the candidate set is describing the same image as the reference set? (JSON "
    'format, with a key "score", value between 0 and 100, and a key "reason" with a string value.)'
)
CLAIR_SYSTEM = "You are a helpful assistant."  # METRICS.md §10
CLAIR_MODEL = "gpt-3.5-turbo"  # METRICS.md §10 (official judge model)
CLAIR_TEMPERATURE = 0.5  # METRICS.md §10
CLAIR_MAX_TOKENS = 100  # METRICS.md §10
CLAIR_TRIES = 3  # METRICS.md §10: up to 3 tries, then score 0
ENV_BASE_URL, ENV_MODEL, ENV_API_KEY = "SAMA_JUDGE_BASE_URL", "SAMA_JUDGE_MODEL", "SAMA_JUDGE_API_KEY"
_NUMBER = re.compile(r"\d*\.?\d+")


def clair_prompt(candidates: Sequence[str], targets: Sequence[str]) -> str:
    """The CLAIR user prompt with each caption on a ``- {text}`` line."""
    cand = "".join(f"- {c}\n" for c in candidates)
    tgt = "".join(f"- {t}\n" for t in targets)
    return CLAIR_PROMPT.format(candidate_statements=cand, target_statements=tgt)


def parse_clair_score(text: str) -> float | None:
    """Score 0–100 from a judge reply, or None if nothing parses (§10).

    1. The text between the first ``{`` and the next ``}`` as JSON: ``float(data["score"])``.
    2. Otherwise the first number matching ``\\d*\\.?\\d+``; a value below 1 is multiplied by 100.
    """
    start = text.find("{")
    if start >= 0:
        end = text.find("}", start)
        if end >= 0:
            try:
                return float(json.loads(text[start : end + 1])["score"])
            except (ValueError, KeyError, TypeError):
                pass
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(0))
    return value * 100 if value < 1 else value


@dataclass
class ClairJudge:
    """An OpenAI-compatible ``/chat/completions`` judge. Build with ``ClairJudge.from_env()`` or explicitly."""

    base_url: str
    model: str = CLAIR_MODEL
    api_key: str | None = None
    temperature: float = CLAIR_TEMPERATURE
    max_tokens: int = CLAIR_MAX_TOKENS
    tries: int = CLAIR_TRIES
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"judge base URL must start with http:// or https://, got {self.base_url!r}")
        if self.tries < 1:
            raise ConfigError(f"judge tries must be ≥ 1, got {self.tries}")
        self.requests_made = 0
        self.failures = 0

    @classmethod
    def from_env(
        cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None, **kwargs: Any
    ) -> ClairJudge | None:
        """Judge from arguments, else ``SAMA_JUDGE_BASE_URL`` / ``_MODEL`` / ``_API_KEY``; None when no URL is set."""
        url = base_url or os.environ.get(ENV_BASE_URL)
        if not url:
            return None
        return cls(
            base_url=url,
            model=model or os.environ.get(ENV_MODEL) or CLAIR_MODEL,
            api_key=api_key or os.environ.get(ENV_API_KEY),
            **kwargs,
        )

    @property
    def name(self) -> str:
        return f"clair:{self.model}"

    def record(self) -> dict[str, Any]:
        """What produced the numbers: endpoint, model, sampling, retries and the prompt's hash (no API key)."""
        return {
            "metric": "clair",
            "base_url": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "tries": self.tries,
            "prompt_sha256": hashlib.sha256(CLAIR_PROMPT.encode()).hexdigest(),
            "requests_made": self.requests_made,
            "failures": self.failures,
        }

    def _complete(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": CLAIR_SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(), headers=headers
        )
        self.requests_made += 1
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            payload = json.loads(response.read().decode("utf-8"))
        return str(payload["choices"][0]["message"]["content"])

    def score(self, candidates: Sequence[str], targets: Sequence[str]) -> float:
        """CLAIR in [0, 1]: up to ``tries`` requests until a reply parses; 0.0 after that (§10)."""
        prompt = clair_prompt(candidates, targets)
        for _ in range(self.tries):
            try:
                value = parse_clair_score(self._complete(prompt))
            except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
                value = None
            if value is not None:
                return value / 100
        self.failures += 1
        return 0.0


def clair(candidates: Sequence[str], targets: Sequence[str], judge: ClairJudge | None = None) -> float | None:
    """CLAIR score in [0, 1], or None ("n/a") when no judge is configured (arguments or environment)."""
    judge = judge or ClairJudge.from_env()
    if judge is None:
        return None
    return judge.score(candidates, targets)


class MiniLMCaptionSimilarity:
    """Deterministic local caption judge: MiniLM cosine of prediction and reference, clipped to [0, 1].

    **Not CLAIR** — reported under its own name, "minilm-caption-sim".
    """

    name = "minilm-caption-sim"

    def __init__(self, similarity: Any = None) -> None:
        from sama.evaluate.metrics.text_sim import MiniLMSimilarity

        self._sim = similarity or MiniLMSimilarity()

    def score(self, candidates: Sequence[str], targets: Sequence[str]) -> float:
        """Mean over candidates of the best cosine against the targets, clipped to [0, 1]."""
        m = np.asarray(self._sim.matrix(list(candidates), list(targets)))
        if m.size == 0:
            return 0.0
        return float(np.clip(m.max(axis=1).mean(), 0.0, 1.0))

    def record(self) -> dict[str, Any]:
        return {"metric": self.name, "encoder": getattr(self._sim, "name", type(self._sim).__name__)}
