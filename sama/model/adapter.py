"""The model ↔ evaluation bridge: resolve a model spec (checkpoint folder, preset name or the shipped ``sama-smol``)
to a SamaModel, and wrap it as the evaluation layer's ``Predictor`` (``load_predictor``, the hook named by
``sama.evaluate.benchmarks.base.MODEL_ADAPTER_MODULE``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sama.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from sama.evaluate.benchmarks.base import BenchQuestion
    from sama.evaluate.predictions import PredictionRow
    from sama.model.modeling import SamaModel
    from sama.model.session import ChatSession

DEFAULT_MODEL = "sama-smol"  # the embedded model the package ships (weights under sama/assets/sama-smol/)
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
CHECKPOINT_FILES = ("config.json", "model.safetensors")  # what SamaModel.save_pretrained writes
RVOS_PROMPT = "Please segment {exp}."  # SAMA.md §5 (ref_vos_eval_st.py: "<image>\nPlease segment {exp}.")
DEFAULT_MAX_NEW_TOKENS = 256
# Bench-C answers are long region descriptions; the release truncates them at 300 words (SAMA.md §6 item 24).
CAPTION_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class ModelSource:
    """Where a model spec resolves to: a checkpoint folder (trained weights) or a preset built with random towers."""

    spec: str
    kind: str  # "checkpoint" | "preset"
    path: Path | None = None

    @property
    def trained(self) -> bool:
        """Whether weights are loaded from a checkpoint (a preset is untrained apart from its packaged LLM)."""
        return self.kind == "checkpoint"

    def describe(self) -> str:
        if self.kind == "checkpoint":
            return f"checkpoint {self.path}"
        return f"preset {self.spec} (untrained: random vision/aggregator/grounding weights)"


def shipped_checkpoint(name: str = DEFAULT_MODEL) -> Path | None:
    """The packaged checkpoint folder of ``name`` when its weights are installed, else None."""
    folder = ASSETS_DIR / name
    return folder if all((folder / f).is_file() for f in CHECKPOINT_FILES) else None


def resolve_model(spec: str = DEFAULT_MODEL) -> ModelSource:
    """A checkpoint folder → that folder; ``sama-smol`` → the shipped weights when present; a preset name → the
    preset. Raises ConfigError for anything else."""
    from sama.config import list_presets

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"--model {spec}: the folder has no config.json; expected a folder written by "
                              "SamaModel.save_pretrained (config.json + model.safetensors)")
        return ModelSource(spec, "checkpoint", path)
    shipped = shipped_checkpoint(spec)
    if shipped is not None:
        return ModelSource(spec, "checkpoint", shipped)
    if spec in list_presets():
        return ModelSource(spec, "preset")
    raise ConfigError(f"--model {spec!r}: neither a checkpoint folder nor a model preset "
                      f"(presets: {', '.join(list_presets())})")


def load_model(spec: str | ModelSource = DEFAULT_MODEL, *, allow_pickle: bool = False) -> SamaModel:
    """The SamaModel a spec names, in eval mode (see :func:`resolve_model`)."""
    import torch

    source = spec if isinstance(spec, ModelSource) else resolve_model(spec)
    if source.kind == "checkpoint":
        from sama.model.modeling import SamaModel

        model = SamaModel.from_pretrained(source.path, allow_pickle=allow_pickle)
    else:
        from sama.model.factory import create_model

        torch.manual_seed(0)  # the untrained preset is the same model on every run
        model = create_model(source.spec)
    return model.eval()


def _question_text(question: BenchQuestion) -> str:
    from sama.evaluate.benchmarks.base import TASK_RVOS

    if question.task == TASK_RVOS:
        return RVOS_PROMPT.format(exp=question.text.strip().rstrip("."))
    return question.text


class SamaPredictor:
    """Answers benchmark questions with a SamaModel (the evaluation layer's Predictor protocol).

    ``max_new_tokens`` bounds every answer; by default 256, and 512 for region captions.

    One ChatSession per video is kept and reset between questions, so a video's frames are encoded once.
    A question that carries ``history`` (the benchmark loaded with ``dialogue="history"``; METRICS.md §7.1: the
    release answers independently, with none) has the earlier turns replayed with their ground-truth answers
    (``ChatSession.add_turn``) before it is asked. Referred objects of history turns are taken from the earlier
    questions of the same dialogue this predictor answered; a history turn whose references are unknown (e.g. asked in another shard) has its
    ``<mask>`` replaced by the words "the region" — counted in :attr:`counts` and stamped on the row.
    """

    def __init__(self, model: SamaModel, *, name: str = "sama", max_new_tokens: int | None = None,
                 seg_hint: bool = False) -> None:
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model = model
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.seg_hint = seg_hint
        self.counts: Counter[str] = Counter()
        self._session: ChatSession | None = None
        self._session_key: tuple[str, tuple[str, ...]] | None = None
        self._dialogue: list[BenchQuestion] = []  # the current dialogue's questions so far (history references)

    # -- videos ------------------------------------------------------------------------------------------------
    def session_for(self, question: BenchQuestion) -> ChatSession:
        """The (reset) session of the question's video; opened once per video."""
        from sama.data.video import open_video
        from sama.model.session import ChatSession

        if question.video_dir is None:
            raise DataError("no frames for this question's video (the benchmark folder has no frame folder)",
                            record=question.question_id, field="video")
        key = (str(question.video_dir), tuple(question.frames))
        if self._session is None or self._session_key != key:
            video = open_video(question.video_dir, frames=question.frames or None)
            if (video.height, video.width) != (question.height, question.width):
                raise DataError(f"frames are {video.height}x{video.width} but the benchmark says "
                                f"{question.height}x{question.width}", file=str(question.video_dir),
                                record=question.question_id, field="height/width")
            self._session = ChatSession(self.model, video, seg_hint=self.seg_hint)
            self._session_key = key
        self._session.reset()
        return self._session

    # -- one question ------------------------------------------------------------------------------------------
    def _refs(self, question: BenchQuestion) -> list[Any]:
        from sama.model.prompts import Mask

        return [Mask(mask=volume, frame=None) for volume in question.ref_masks()]

    def _replay_history(self, session: ChatSession, question: BenchQuestion) -> int:
        """Feed the earlier turns with their given answers; returns how many lost their references."""
        from sama.model.processing import MASK_PLACEHOLDER
        from sama.model.prompts import Mask

        if not question.history or (self._dialogue and self._dialogue[0].video_id != question.video_id):
            self._dialogue = []
        dropped = 0
        for index, (past_question, past_answer) in enumerate(question.history):
            earlier = self._dialogue[index] if index < len(self._dialogue) else None
            if earlier is not None and earlier.text != past_question:
                earlier = None
            volumes = earlier.ref_masks() if earlier is not None else []
            if earlier is None and MASK_PLACEHOLDER in past_question:
                dropped += 1
                past_question = past_question.replace(MASK_PLACEHOLDER, "the region")
            session.add_turn(past_question, past_answer, [Mask(mask=v, frame=None) for v in volumes])
        self._dialogue = [*self._dialogue[: len(question.history)], question]
        return dropped

    def predict(self, question: BenchQuestion) -> PredictionRow:
        from sama.data.masks import rle_encode
        from sama.evaluate.benchmarks.base import TASK_CAPTION, TASK_RVOS
        from sama.evaluate.predictions import PredictionRow

        session = self.session_for(question)
        refs = self._refs(question)
        dropped = self._replay_history(session, question)
        budget = self.max_new_tokens or (CAPTION_MAX_NEW_TOKENS if question.task == TASK_CAPTION
                                         else DEFAULT_MAX_NEW_TOKENS)
        turn = session.ask(_question_text(question), refs, max_new_tokens=budget)
        self.counts["questions"] += 1
        masks: list[list[dict[str, Any] | None]] = []
        if question.task != TASK_CAPTION and turn.num_objects:
            if question.task == TASK_RVOS:  # DESIGN.md: the RVOS prediction is the OR of the [SEG] masks
                masks = [[rle_encode(m.any(axis=0)) if m.any() else None for _, m in turn.iter_masks()]]
            else:
                masks = turn.rles()
        extra: dict[str, Any] = {}
        if dropped:
            self.counts["history_turns_without_refs"] += dropped
            extra["history_turns_without_refs"] = dropped
        return PredictionRow(question.question_id, turn.raw_text, masks, extra)


def load_predictor(spec: str = DEFAULT_MODEL, **options: Any) -> SamaPredictor:
    """The evaluation hook: ``--model SPEC`` → a Predictor. Options: ``max_new_tokens``, ``seg_hint``,
    ``allow_pickle``; unknown options are a ConfigError."""
    known = {"max_new_tokens", "seg_hint", "allow_pickle"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown model option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    source = resolve_model(spec)
    model = load_model(source, allow_pickle=bool(options.get("allow_pickle", False)))
    return SamaPredictor(model, name=f"sama:{spec}",
                         max_new_tokens=int(options["max_new_tokens"]) if options.get("max_new_tokens") else None,
                         seg_hint=bool(options.get("seg_hint", False)))
