"""CLAIR judge (METRICS.md §10): prompt, parsing rules, retries and "n/a" without a judge, on a fake local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import numpy as np
import pytest

from sama.errors import ConfigError
from sama.evaluate.metrics import clair


def test_constants_pinned() -> None:
    assert clair.CLAIR_MODEL == "gpt-3.5-turbo"
    assert clair.CLAIR_TEMPERATURE == 0.5 and clair.CLAIR_MAX_TOKENS == 100 and clair.CLAIR_TRIES == 3
    assert clair.CLAIR_SYSTEM == "You are a helpful assistant."


def test_prompt_layout() -> None:
    p = clair.clair_prompt(["a dog runs"], ["a dog is running", "a puppy"])
    assert "Candidate set:\n- a dog runs\n\nReference set:\n- a dog is running\n- a puppy\n\nOn a precise" in p
    assert p.startswith("You are trying to tell if a candidate set of captions")
    assert p.endswith('and a key "reason" with a string value.)')


@pytest.mark.parametrize(
    ("reply", "score"),
    [('{"score": 85, "reason": "same"}', 85.0), ('Sure! {"score": "42.5"} trailing', 42.5),
     ("score: 0.7", 70.0), ("I'd say 63 out of 100", 63.0), ('{"reason": "x"} then 55', 55.0),
     ("no digits here", None), ("{broken json} but .5", 50.0)],
)
def test_parse_rules(reply: str, score: float | None) -> None:
    assert clair.parse_clair_score(reply) == score


class _Judge(BaseHTTPRequestHandler):
    replies: ClassVar[list[str]] = []
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append({"body": body, "auth": self.headers.get("Authorization"), "path": self.path})
        content = type(self).replies.pop(0) if type(self).replies else "nothing"
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Judge.replies, _Judge.bodies = [], []
    httpd = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_judge_request_and_score(server: str) -> None:
    _Judge.replies = ['{"score": 80, "reason": "close"}']
    judge = clair.ClairJudge(base_url=server, model="local-model", api_key="k", timeout_s=5)
    assert judge.score(["a cat"], ["a kitten"]) == pytest.approx(0.8)
    sent = _Judge.bodies[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k"
    assert sent["body"]["model"] == "local-model" and sent["body"]["temperature"] == 0.5
    assert sent["body"]["max_tokens"] == 100
    assert [m["role"] for m in sent["body"]["messages"]] == ["system", "user"]
    rec = judge.record()
    assert rec["model"] == "local-model" and rec["requests_made"] == 1 and rec["temperature"] == 0.5
    assert "api_key" not in rec and "k" not in rec.values()


def test_retries_then_zero(server: str) -> None:
    _Judge.replies = ["no number", "still nothing", "nope", '{"score": 99}']
    judge = clair.ClairJudge(base_url=server, timeout_s=5)
    assert judge.score(["a"], ["b"]) == 0.0
    assert len(_Judge.bodies) == 3 and judge.failures == 1  # bounded: the 4th reply is never requested
    _Judge.replies = ["garbage", "0.25"]
    assert judge.score(["a"], ["b"]) == pytest.approx(0.25)


def test_unreachable_judge_scores_zero_after_tries() -> None:
    judge = clair.ClairJudge(base_url="http://127.0.0.1:9/v1", tries=2, timeout_s=1)
    assert judge.score(["a"], ["b"]) == 0.0 and judge.requests_made == 2


def test_no_judge_is_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (clair.ENV_BASE_URL, clair.ENV_MODEL, clair.ENV_API_KEY):
        monkeypatch.delenv(var, raising=False)
    assert clair.ClairJudge.from_env() is None
    assert clair.clair(["a"], ["b"]) is None


def test_env_configuration(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    monkeypatch.setenv(clair.ENV_BASE_URL, server)
    monkeypatch.setenv(clair.ENV_MODEL, "judge-x")
    monkeypatch.delenv(clair.ENV_API_KEY, raising=False)
    _Judge.replies = ['{"score": 10}']
    assert clair.clair(["a"], ["b"]) == pytest.approx(0.1)
    assert _Judge.bodies[0]["body"]["model"] == "judge-x" and _Judge.bodies[0]["auth"] is None


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="http"):
        clair.ClairJudge(base_url="ftp://x")
    with pytest.raises(ConfigError, match="tries"):
        clair.ClairJudge(base_url="http://x", tries=0)


def test_local_caption_similarity_is_named_differently() -> None:
    class FakeSim:
        name = "fake"

        def matrix(self, a: list[str], b: list[str]) -> np.ndarray:
            return np.array([[1.0 if x == y else -0.5 for y in b] for x in a])

    judge = clair.MiniLMCaptionSimilarity(FakeSim())
    assert judge.name == "minilm-caption-sim" and judge.name != "clair"
    assert judge.score(["a", "b"], ["a"]) == pytest.approx(0.25)  # mean of best matches (1, -0.5), clipped to [0, 1]
    assert judge.score(["b"], ["a"]) == 0.0
    assert judge.record() == {"metric": "minilm-caption-sim", "encoder": "fake"}
