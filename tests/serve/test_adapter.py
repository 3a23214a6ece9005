"""sama.model.adapter: model spec resolution and the evaluation Predictor on a synthetic benchmark (every task)."""

from __future__ import annotations

from pathlib import Path

import pytest

import sama.model.adapter as adapter
from sama.errors import ConfigError
from sama.evaluate.benchmarks.base import TASK_CAPTION, TASK_GROUNDED_CHAT, TASK_RVOS, make_predictor
from sama.evaluate.benchmarks.rvos import load_rvos
from sama.evaluate.benchmarks.sama_bench_c import BENCH_C_QUESTION, load_bench_c
from sama.evaluate.benchmarks.sama_bench_g import BenchGOptions, load_bench_g
from sama.evaluate.predictions import prediction_problems


def test_constants_follow_the_release() -> None:
    assert adapter.RVOS_PROMPT.format(exp="the red circle") == "Please segment the red circle."  # SAMA.md §5
    assert adapter.DEFAULT_MODEL == "sama-smol"
    assert adapter.CHECKPOINT_FILES == ("config.json", "model.safetensors")


def test_resolve_presets_checkpoints_and_the_shipped_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(adapter, "ASSETS_DIR", tmp_path / "assets")
    assert adapter.resolve_model("sama-tiny") == adapter.ModelSource("sama-tiny", "preset")
    assert not adapter.resolve_model("sama-smol").trained  # no shipped weights: the untrained preset
    shipped = tmp_path / "assets" / "sama-smol"
    shipped.mkdir(parents=True)
    for name in adapter.CHECKPOINT_FILES:
        (shipped / name).write_text("{}")
    source = adapter.resolve_model("sama-smol")
    assert source.kind == "checkpoint" and source.path == shipped and source.trained
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"the folder has no config\.json"):
        adapter.resolve_model(str(folder))
    (folder / "config.json").write_text("{}")
    assert adapter.resolve_model(str(folder)).path == folder
    with pytest.raises(ConfigError, match=r"'nope': neither a checkpoint folder nor a model preset \(presets: .*sama-tiny"):
        adapter.resolve_model("nope")


def test_load_model_round_trips_a_saved_checkpoint(tiny_model, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "ckpt")
    loaded = adapter.load_model(str(tmp_path / "ckpt"))
    assert not loaded.training
    name, param = next((n, p) for n, p in tiny_model.named_parameters() if n.startswith("prompt_encoder"))
    assert (dict(loaded.named_parameters())[name] == param).all()


def test_unknown_predictor_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown model option\(s\) temperature"):
        adapter.load_predictor("sama-tiny", temperature=0.5)


def check_rows(bench, predictor) -> list:
    rows = []
    for question in bench.questions[:3]:
        row = predictor.predict(question)
        expected = question.expected_shape()
        if expected is not None:
            assert prediction_problems(row, expected) == []
        assert row.question_id == question.question_id and isinstance(row.text, str)
        rows.append((question, row))
    return rows


def test_grounded_chat_rows_have_one_rle_per_frame_per_seg(synthetic_bench, use_tiny, forced_seg) -> None:
    bench = load_bench_g(synthetic_bench, BenchGOptions())
    predictor = make_predictor("sama-tiny", bench, max_new_tokens=2)  # through the evaluation hook
    assert isinstance(predictor, adapter.SamaPredictor)
    for question, row in check_rows(bench, predictor):
        assert question.task == TASK_GROUNDED_CHAT
        assert len(row.masks) == 2 and all(len(frames) == question.num_frames for frames in row.masks)


def test_caption_rows_are_text_only_and_use_the_bench_c_question(synthetic_bench, use_tiny, forced_seg,
                                                                  monkeypatch) -> None:
    bench = load_bench_c(synthetic_bench)
    asked = []
    predictor = adapter.SamaPredictor(use_tiny, max_new_tokens=2)
    original = predictor.session_for

    def session_for(question):
        session = original(question)
        monkeypatch.setattr(session, "ask", lambda q, refs, **kw: asked.append((q, refs)) or type(session).ask(
            session, q, refs, **kw))
        return session

    monkeypatch.setattr(predictor, "session_for", session_for)
    for question, row in check_rows(bench, predictor):
        assert question.task == TASK_CAPTION and row.masks == []
    assert all(q == BENCH_C_QUESTION and len(refs) == 1 and refs[0].frame is None for q, refs in asked)


def test_rvos_rows_or_the_seg_masks_and_use_the_segment_prompt(synthetic_bench, use_tiny, forced_seg,
                                                               monkeypatch) -> None:
    bench = load_rvos("mevis", synthetic_bench / "rvos" / "bench")
    predictor = adapter.SamaPredictor(use_tiny, max_new_tokens=2)
    for question, row in check_rows(bench, predictor):
        assert question.task == TASK_RVOS and len(row.masks) == 1
    assert adapter._question_text(bench.questions[0]) == f"Please segment {bench.questions[0].text.rstrip('.')}."


def test_history_mode_replays_earlier_turns_with_their_references(synthetic_bench, use_tiny, monkeypatch) -> None:
    from sama.model.session import ChatSession

    bench = load_bench_g(synthetic_bench, BenchGOptions(dialogue="history"))
    replayed: list[tuple[str, int]] = []
    original = ChatSession.add_turn
    monkeypatch.setattr(ChatSession, "add_turn", lambda self, q, a, refs=(): replayed.append((q, len(refs)))
                        or original(self, q, a, refs))
    predictor = adapter.SamaPredictor(use_tiny, max_new_tokens=2)
    video_questions = [q for q in bench.questions if q.video_id == bench.questions[0].video_id][:3]
    for question in video_questions:
        predictor.predict(question)
    assert [q for q, _ in replayed] == [video_questions[0].text, video_questions[0].text, video_questions[1].text]
    assert [n for _, n in replayed] == [len(video_questions[0].ref_object_ids)] * 2 + [
        len(video_questions[1].ref_object_ids)]
    assert predictor.counts["history_turns_without_refs"] == 0


def test_history_turn_with_unknown_references_is_counted(synthetic_bench, use_tiny) -> None:
    bench = load_bench_g(synthetic_bench, BenchGOptions(dialogue="history"))
    late = next(q for q in bench.questions if any("<mask>" in past for past, _ in q.history))
    row = adapter.SamaPredictor(use_tiny, max_new_tokens=2).predict(late)  # earlier questions never seen
    assert row.extra["history_turns_without_refs"] >= 1
