"""What every benchmark runner shares: the question/reference types, the Predictor protocol, test predictors, the
model hook and the resumable, shardable prediction loop.

A runner turns a benchmark folder into ``BenchQuestion`` s (what a model sees) and ``Reference`` s (the ground truth,
kept apart so a predictor cannot peek), lets a ``Predictor`` answer the questions not yet in the prediction store,
then scores the store.
"""

from __future__ import annotations

import importlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sama.data.masks import MaskDict, box_mask, rle_encode
from sama.errors import ConfigError, SamaError
from sama.evaluate.predictions import ExpectedShape, PredictionRow, PredictionStore, shard_of

# Where the model layer plugs in: ``load_predictor(spec: str, **options) -> Predictor`` (spec = checkpoint or preset).
MODEL_ADAPTER_MODULE = "sama.model.adapter"
MODEL_ADAPTER_FUNCTION = "load_predictor"

TASK_GROUNDED_CHAT = "grounded_chat"  # SAMA-Bench-G: text + one mask volume per [SEG]
TASK_CAPTION = "caption"  # SAMA-Bench-C: text only
TASK_RVOS = "rvos"  # MeViS / ReVOS / Ref-DAVIS17 / Ref-YTVOS: the OR of the masks is the answer


@dataclass
class BenchQuestion:
    """What a model is given for one benchmark question (never the answer).

    Attributes:
        question_id: unique id (RVOS: ``"<video_id>/<exp_id>"``).
        video_id: video identifier (questions are grouped by it for per-video metrics).
        video_dir: folder holding the frames (``<video_dir>/<frame>.jpg``), None when the data has no frames.
        frames: frame stems of the video, in order; predictions have one mask per frame.
        height, width: frame size; prediction masks must have it.
        text: the question (``<mask>`` per referred object), the region-caption prompt, or the RVOS expression.
        task: one of ``TASK_GROUNDED_CHAT``, ``TASK_CAPTION``, ``TASK_RVOS``.
        ref_object_ids: object ids of the ``<mask>`` placeholders, in order (keys into ``mask_dict``).
        box_prompts: whether ``ref_masks()`` returns bounding-box masks (SAMA.md §1.4) or raw masks (Bench-C).
        history: earlier (question, ground-truth answer) pairs of the same dialogue (``--dialogue history``).
        mask_dict: where ``ref_object_ids`` are decoded from.
    """

    question_id: str
    video_id: str
    video_dir: Path | None
    frames: list[str]
    height: int
    width: int
    text: str
    task: str
    ref_object_ids: list[str] = field(default_factory=list)
    box_prompts: bool = True
    history: list[tuple[str, str]] = field(default_factory=list)
    mask_dict: MaskDict | None = field(default=None, repr=False)
    meta: dict[str, Any] = field(default_factory=dict)  # benchmark extras (RVOS: exp_id, type_id, obj_id)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def expected_shape(self) -> ExpectedShape | None:
        """Shape a prediction's masks must have; None for text-only tasks."""
        if self.task == TASK_CAPTION:
            return None
        return ExpectedShape(self.num_frames, self.height, self.width)

    def ref_masks(self) -> list[np.ndarray]:
        """One (T, H, W) bool prompt volume per ``<mask>``: per-frame box masks or raw masks (decoded lazily)."""
        if not self.ref_object_ids:
            return []
        if self.mask_dict is None:
            raise ConfigError(f"question {self.question_id}: referred objects but no mask dictionary")
        volumes = []
        for obj_id in self.ref_object_ids:
            volume = self.mask_dict.volume([obj_id], self.num_frames, self.height, self.width)
            if self.box_prompts:
                volume = box_mask(volume)
            volumes.append(volume)
        return volumes


@dataclass
class Reference:
    """Ground truth of one question: the answer text and one object-id group per ``[SEG]`` (OR-ed, decoded lazily)."""

    text: str
    mask_groups: list[list[str]] = field(default_factory=list)
    mask_dict: MaskDict | None = field(default=None, repr=False)

    def volumes(self, num_frames: int, height: int, width: int) -> list[np.ndarray]:
        """One (T, H, W) bool volume per non-empty group (= per ``[SEG]``): the OR of its objects over all frames."""
        groups = [group for group in self.mask_groups if group]
        if not groups:
            return []
        if self.mask_dict is None:
            raise ConfigError("reference has mask groups but no mask dictionary")
        return [self.mask_dict.volume(group, num_frames, height, width) for group in groups]


@dataclass
class Bench:
    """A loaded benchmark: questions in a stable order, their references, and what the loader skipped (and why)."""

    name: str
    data_dir: Path
    questions: list[BenchQuestion]
    references: dict[str, Reference]
    skipped: Counter[str] = field(default_factory=Counter)
    meta: dict[str, Any] = field(default_factory=dict)

    def question(self, question_id: str) -> BenchQuestion:
        return self._index()[question_id]

    def _index(self) -> dict[str, BenchQuestion]:
        if "_index" not in self.meta:
            self.meta["_index"] = {q.question_id: q for q in self.questions}
        return self.meta["_index"]

    def expected_shapes(self) -> dict[str, ExpectedShape | None]:
        return {q.question_id: q.expected_shape() for q in self.questions}


@runtime_checkable
class Predictor(Protocol):
    """Anything that answers a benchmark question: ``predict(question) -> PredictionRow``."""

    name: str

    def predict(self, question: BenchQuestion) -> PredictionRow: ...


def volumes_to_rles(volumes: Sequence[np.ndarray]) -> list[list[dict[str, Any] | None]]:
    """Prediction masks for the JSONL: per volume, one RLE per frame (None for an empty frame)."""
    return [[rle_encode(frame) if frame.any() else None for frame in volume] for volume in volumes]


class OraclePredictor:
    """A perfect model for tests: answers with the ground-truth text and masks (``delay_s`` slows it down)."""

    name = "oracle"

    def __init__(self, references: Mapping[str, Reference], delay_s: float = 0.0) -> None:
        self.references = references
        self.delay_s = delay_s

    def predict(self, question: BenchQuestion) -> PredictionRow:
        if self.delay_s:
            time.sleep(self.delay_s)
        ref = self.references[question.question_id]
        volumes = ref.volumes(question.num_frames, question.height, question.width)
        if question.task == TASK_CAPTION:
            volumes = []
        elif question.task == TASK_RVOS:
            volumes = [np.logical_or.reduce(volumes)] if volumes else []
        return PredictionRow(question.question_id, ref.text, volumes_to_rles(volumes))


_PHRASE_WITH_SEG = re.compile(r"<p>(.*?)</p>\s*\[SEG\]", flags=re.DOTALL)
# Golden-ratio sequence: word i is replaced when frac(i·φ) < strength, so the replaced set grows with strength.
_GOLDEN = 0.6180339887498949


def _shift_right(volume: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return volume
    out = np.zeros_like(volume)
    if pixels < volume.shape[-1]:
        out[..., pixels:] = volume[..., :-pixels]
    return out


class PerturbedPredictor:
    """A degraded oracle for tests; every score falls monotonically as ``strength`` goes from 0 (oracle) to 1.

    - masks are shifted right by ``round(strength · W / 2)`` pixels (IoU, J and F fall);
    - the first ``floor(strength · n)`` of the n grounded phrases lose their ``<p>…</p> [SEG]`` markup and mask
      (recall falls);
    - words are replaced by ``"blah"`` at positions i with frac(i·φ) < strength (caption metrics fall).
    """

    name = "perturbed"

    def __init__(self, references: Mapping[str, Reference], strength: float) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"perturbation strength must be in [0, 1], got {strength}")
        self.references = references
        self.strength = strength
        self.name = f"perturbed:{strength:g}"

    def _perturb_words(self, text: str) -> str:
        words = text.split(" ")
        for i, word in enumerate(words):
            if word and not word.startswith(("<", "[")) and (i * _GOLDEN) % 1.0 < self.strength:
                words[i] = "blah"
        return " ".join(words)

    def predict(self, question: BenchQuestion) -> PredictionRow:
        ref = self.references[question.question_id]
        volumes = ref.volumes(question.num_frames, question.height, question.width)
        shift = round(self.strength * question.width / 2)
        volumes = [_shift_right(v, shift) for v in volumes]
        text = ref.text
        if question.task == TASK_GROUNDED_CHAT:
            matches = list(_PHRASE_WITH_SEG.finditer(text))
            drop = int(self.strength * len(matches))
            for match in reversed(matches[:drop]):
                text = text[: match.start()] + match.group(1).strip() + text[match.end() :]
            volumes = volumes[drop:]
        text = self._perturb_words(text)
        if question.task == TASK_CAPTION:
            volumes = []
        elif question.task == TASK_RVOS:
            volumes = [np.logical_or.reduce(volumes)] if volumes else []
        return PredictionRow(question.question_id, text, volumes_to_rles(volumes))


def make_predictor(spec: str, bench: Bench, **options: Any) -> Predictor:
    """Build the predictor named by ``--model``.

    ``oracle`` and ``perturbed:STRENGTH`` answer from the benchmark's own ground truth (pipeline checks). Anything
    else is a checkpoint folder or preset handed to the model layer's adapter
    (``sama.model.adapter.load_predictor``); a clear SamaError is raised when that layer is not installed.
    """
    if spec == "oracle":
        return OraclePredictor(bench.references, delay_s=float(options.get("delay_s", 0.0)))
    if spec.startswith("perturbed:"):
        try:
            strength = float(spec.split(":", 1)[1])
        except ValueError as exc:
            raise ConfigError(f"--model {spec!r}: expected perturbed:STRENGTH with a number in [0, 1]") from exc
        return PerturbedPredictor(bench.references, strength)
    try:
        module = importlib.import_module(MODEL_ADAPTER_MODULE)
    except ModuleNotFoundError as exc:
        raise SamaError(
            f"--model {spec!r}: the model layer ({MODEL_ADAPTER_MODULE}) is not available in this installation; "
            "evaluate a prediction file with --pred, or use --model oracle / perturbed:S for pipeline checks"
        ) from exc
    loader: Callable[..., Predictor] | None = getattr(module, MODEL_ADAPTER_FUNCTION, None)
    if loader is None:
        raise SamaError(f"{MODEL_ADAPTER_MODULE} has no {MODEL_ADAPTER_FUNCTION}(spec, **options)")
    return loader(spec, **options)


def select_shard(questions: Iterable[BenchQuestion], shard: tuple[int, int] | None) -> list[BenchQuestion]:
    """The questions of shard (i, n): a deterministic split by question id; all of them when shard is None."""
    if shard is None or shard[1] == 1:
        return list(questions)
    index, count = shard
    return [q for q in questions if shard_of(q.question_id, count) == index]


def produce_predictions(
    questions: Sequence[BenchQuestion],
    predictor: Predictor,
    store: PredictionStore,
    *,
    progress: bool = True,
    stamp: Mapping[str, Any] | None = None,
) -> int:
    """Answer every question not yet in ``store`` and append each answer durably as soon as it exists.

    Safe to kill at any point and call again: stored answers are skipped, none is written twice. ``stamp`` fields
    (e.g. the dialogue mode) are added to every row so a later scoring run can check it uses the same setting.
    Returns the number of new predictions.
    """
    from tqdm import tqdm

    done = store.done_ids()
    todo = [q for q in questions if q.question_id not in done]
    produced = 0
    for question in tqdm(todo, desc=f"predict ({predictor.name})", unit="q", disable=not progress):
        row = predictor.predict(question)
        if row.question_id != question.question_id:
            raise SamaError(f"predictor {predictor.name} answered question {question.question_id!r} with id "
                            f"{row.question_id!r}")
        if stamp:
            row.extra.update(stamp)
        store.append(row)
        produced += 1
    return produced
