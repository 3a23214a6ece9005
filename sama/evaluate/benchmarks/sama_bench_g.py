"""SAMA-Bench-G runner (grounded multi-turn chat, METRICS.md §7): load the bench, score a prediction file per
question → per video → mean over videos (mIoU, recall, caption metrics, CLAIR), and report every skip.

Data folder: ``bench.json`` (SAMA-Bench records, SAMA.md §3.2) + ``bench_mask_dict.json``; frames (only needed to run a
model) under ``<data>/<record.video>/``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sama.data.masks import MaskDict, rle_decode
from sama.data.schema import clean_text, extract_phrases, load_records
from sama.errors import ConfigError, DataError
from sama.evaluate.benchmarks.base import TASK_GROUNDED_CHAT, Bench, BenchQuestion, Reference
from sama.evaluate.metrics import gcg
from sama.evaluate.predictions import PredictionRow

BENCH_JSON = "bench.json"
BENCH_MASK_DICT = "bench_mask_dict.json"
DIALOGUE_MODES = ("independent", "history")  # METRICS.md §7.1: the release evaluates each question without history


@dataclass
class BenchGOptions:
    """Every option that changes a Bench-G number (all recorded in the summary)."""

    recall_mode: str = "faithful"  # METRICS.md §7.3 find_best_matches as released | fixed orientation
    gt_mode: str = "fixed"  # SAMA.md §6 item 16: faithful repeats the previous GT entry for an empty one
    dialogue: str = "independent"
    box_prompts: bool = True  # SAMA.md §1.4: Bench-G prompt masks are bounding boxes
    text_similarity: str = "minilm"
    captions: bool = True

    def check(self) -> None:
        for name, value, allowed in (("recall_mode", self.recall_mode, gcg.MODES), ("gt_mode", self.gt_mode, gcg.MODES),
                                     ("dialogue", self.dialogue, DIALOGUE_MODES)):
            if value not in allowed:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r}: expected one of {', '.join(allowed)}")


def video_path_of(data_dir: Path, video: str) -> Path | None:
    folder = data_dir / video
    return folder if folder.is_dir() else None


def load_bench_files(data_dir: Path, *, strict: bool = False) -> tuple[Any, MaskDict]:
    """The SAMA-Bench records and mask dictionary of a benchmark folder (shared by Bench-G and Bench-C)."""
    json_path, mask_path = data_dir / BENCH_JSON, data_dir / BENCH_MASK_DICT
    for path in (json_path, mask_path):
        if not path.is_file():
            raise DataError(f"SAMA-Bench file missing (expected {BENCH_JSON} and {BENCH_MASK_DICT} in --data)",
                            file=str(path))
    mask_dict = MaskDict.load(mask_path)
    return load_records(json_path, strict=strict, mask_dict=mask_dict), mask_dict


def load_bench_g(data_dir: str | Path, options: BenchGOptions, *, strict: bool = False) -> Bench:
    """Questions (one per kept human/gpt pair) and references of a SAMA-Bench folder.

    Turns the official loader drops (``<mask>``/``obj_masks`` or ``[SEG]``/``groundtruth`` count mismatch, unknown
    objects, …) are counted per rule in ``bench.skipped`` (``strict=True`` raises instead).
    """
    options.check()
    data_dir = Path(data_dir)
    records, mask_dict = load_bench_files(data_dir, strict=strict)
    questions: list[BenchQuestion] = []
    references: dict[str, Reference] = {}
    for record in records:
        video_dir = video_path_of(data_dir, str(record.frame_folder(".")))
        history: list[tuple[str, str]] = []
        for turn in record.turns:
            qid = turn.question_id or f"{record.video_id}/{turn.turn_index}"
            if qid in references:
                qid = f"{record.record_index}:{qid}"
            questions.append(BenchQuestion(
                question_id=qid, video_id=record.video, video_dir=video_dir, frames=list(record.frames),
                height=record.height, width=record.width, text=turn.question, task=TASK_GROUNDED_CHAT,
                ref_object_ids=[str(o) for o in turn.obj_masks], box_prompts=options.box_prompts,
                history=list(history) if options.dialogue == "history" else [], mask_dict=mask_dict))
            references[qid] = Reference(turn.answer, [[str(o) for o in group] for group in turn.groundtruth],
                                        mask_dict)
            history.append((turn.question, turn.answer))
    skipped = Counter({rule: n for rule, n in records.report.counts_by_rule().items()
                       if rule != "short_mask_list"})
    return Bench("sama-bench-g", data_dir, questions, references, skipped,
                 meta={"records": records.report.records_kept, "turns_total": records.report.turns_total})


def decode_prediction(row: PredictionRow, num_frames: int, height: int, width: int) -> list[np.ndarray]:
    """Per ``[SEG]``, the predicted (T, H, W) bool volume."""
    volumes = []
    for per_frame in row.masks:
        volume = np.zeros((num_frames, height, width), dtype=bool)
        for t, rle in enumerate(per_frame[:num_frames]):
            if rle is not None:
                volume[t] = rle_decode(rle, height, width)
        volumes.append(volume)
    return volumes


@dataclass
class VideoResult:
    """Per-video Bench-G values plus the per-question detail."""

    miou: float
    recall: gcg.RecallResult
    questions: list[dict[str, Any]] = field(default_factory=list)
    caption_scores: dict[str, float | None] = field(default_factory=dict)
    clair: float | None = None


def score_video(
    questions: Sequence[BenchQuestion],
    references: Mapping[str, Reference],
    predictions: Mapping[str, PredictionRow],
    similarity: Callable[[Sequence[str], Sequence[str]], np.ndarray],
    options: BenchGOptions,
) -> VideoResult:
    """mIoU (mean over the video's questions) and recall (TP/AP over them) of one video (METRICS.md §7.2–7.3)."""
    per_question: list[dict[str, Any]] = []
    recall_items: list[gcg.GcgQuestion] = []
    for q in questions:
        ref, row = references[q.question_id], predictions[q.question_id]
        gt = gcg.assemble_gt_masks(ref.mask_groups, lambda ids, q=q, ref=ref: ref.mask_dict.volume(
            ids, q.num_frames, q.height, q.width), mode=options.gt_mode)
        pred = decode_prediction(row, q.num_frames, q.height, q.width)
        miou = gcg.question_miou(pred, gt)
        gt_phrases, pred_phrases = extract_phrases(ref.text), extract_phrases(row.text)
        recall_items.append(gcg.GcgQuestion(q.question_id, gt, pred, gt_phrases, pred_phrases))
        per_question.append({"question_id": q.question_id, "miou": miou, "num_pred_masks": len(pred),
                             "num_gt_masks": len(gt), "gt_phrases": gt_phrases, "pred_phrases": pred_phrases})
    recall = gcg.video_recall(recall_items, similarity, mode=options.recall_mode)
    return VideoResult(gcg.mean_over_questions(p["miou"] for p in per_question), recall, per_question)


def group_by_video(questions: Sequence[BenchQuestion]) -> dict[str, list[BenchQuestion]]:
    groups: dict[str, list[BenchQuestion]] = defaultdict(list)
    for q in questions:
        groups[q.video_id].append(q)
    return dict(groups)


def caption_pairs(questions: Sequence[BenchQuestion], references: Mapping[str, Reference],
                  predictions: Mapping[str, PredictionRow]) -> list[tuple[str, str]]:
    """(cleaned GT, cleaned prediction) per question (METRICS.md §7.1 cleaning; truncation is the metric's job)."""
    return [(clean_text(references[q.question_id].text), clean_text(predictions[q.question_id].text))
            for q in questions]


def judge_key(judge: Any) -> str:
    """Result key of a judge: ``clair`` for the CLAIR protocol, else the local judge's own name (a different metric)."""
    name = str(getattr(judge, "name", "judge"))
    return "clair" if name.startswith("clair") else name


def add_text_metrics(
    per_video: dict[str, dict[str, Any]],
    pairs_by_video: Mapping[str, list[tuple[str, str]]],
    *,
    captions: bool,
    meteor: bool,
    allow_approximate: bool,
    judge: Any,
) -> dict[str, Any]:
    """Add caption metrics (one pycocoevalcap call per video, METRICS.md §7.4/§9) and the judge score (§7.5) to each
    video entry; return what was unavailable and why (recorded in the summary)."""
    notes: dict[str, Any] = {}
    if captions:
        from sama.evaluate.metrics.captions import caption_scores_by_video

        results = caption_scores_by_video(pairs_by_video, meteor=meteor, allow_approximate=allow_approximate)
        for video, result in results.items():
            per_video[video]["caption_scores"] = dict(result.scores)
            notes.setdefault("caption_tokenizer", result.tokenizer)
            for metric, reason in result.unavailable.items():
                notes.setdefault("caption_unavailable", {})[metric] = reason
    if judge is not None:
        key = judge_key(judge)
        for video, pairs in pairs_by_video.items():
            per_video[video][key] = float(np.mean([judge.score([pred], [gt]) for gt, pred in pairs]))
        notes["judge"] = judge.record()
    return notes


class ExactTextSimilarity:
    """Test/debug phrase similarity: 1.0 for identical (stripped, lower-cased) phrases, else 0.0. Not the paper's."""

    name = "exact-match"

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return np.array([[float(x.strip().lower() == y.strip().lower()) for y in b] for x in a],
                        dtype=np.float64).reshape(len(a), len(b))


def make_text_similarity(spec: str) -> Any:
    """``minilm`` (packaged all-MiniLM-L6-v2), ``bert:PATH`` (official bert-base-uncased semantics) or ``exact``."""
    from sama.evaluate.metrics import text_sim

    if spec == "minilm":
        return text_sim.MiniLMSimilarity()
    if spec.startswith("bert:"):
        return text_sim.BertMeanPoolSimilarity(spec.split(":", 1)[1])
    if spec == "exact":
        return ExactTextSimilarity()
    raise ConfigError(f"--text-sim {spec!r}: expected minilm, bert:PATH or exact")


def score_bench_g(
    bench: Bench,
    predictions: Mapping[str, PredictionRow],
    options: BenchGOptions,
    *,
    similarity: Any,
    meteor: bool = True,
    allow_approximate: bool = False,
    judge: Any = None,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Score the questions that have a prediction: (final scores, per-video results, counts, metric notes).

    Final = mean over videos of the per-video values (METRICS.md §7.6). Questions without a prediction (lenient
    mode) are left out of their video and counted by the caller; a video with none left is left out.
    """
    from tqdm import tqdm

    per_video: dict[str, dict[str, Any]] = {}
    pairs_by_video: dict[str, list[tuple[str, str]]] = {}
    groups = group_by_video([q for q in bench.questions if q.question_id in predictions])
    recall_skipped = 0
    for video, questions in tqdm(groups.items(), desc="sama-bench-g", unit="video", disable=not progress):
        result = score_video(questions, bench.references, predictions, similarity.matrix, options)
        recall_skipped += result.recall.num_skipped
        per_video[video] = {"miou": result.miou, "recall": result.recall.recall,
                            "true_positives": result.recall.true_positives,
                            "actual_positives": result.recall.actual_positives,
                            "recall_skipped_questions": result.recall.skipped_question_ids,
                            "questions": result.questions}
        pairs_by_video[video] = caption_pairs(questions, bench.references, predictions)
    notes = add_text_metrics(per_video, pairs_by_video, captions=options.captions, meteor=meteor,
                             allow_approximate=allow_approximate, judge=judge)
    flat = {video: {"miou": e["miou"], "recall": e["recall"], **e.get("caption_scores", {}),
                    **({judge_key(judge): e[judge_key(judge)]} if judge is not None else {})} for video, e in per_video.items()}
    scores = gcg.mean_over_videos(flat) if flat else {"miou": None, "recall": None}
    # Diagnostic, not a paper metric: METRICS.md §7.2 scores a question whose answer has no [SEG] as mIoU 0 even for a
    # perfect model, so also report the mean over videos of the mIoU over grounded questions only.
    grounded = {video: [q["miou"] for q in e["questions"] if q["num_gt_masks"]] for video, e in per_video.items()}
    grounded_means = [float(np.mean(v)) for v in grounded.values() if v]
    counts = {"videos_scored": len(per_video), "questions_scored": sum(len(g) for g in groups.values()),
              "questions_skipped_for_recall (no predicted mask or phrase)": recall_skipped,
              "questions_without_gt_masks (mIoU 0 by definition)": sum(
                  1 for e in per_video.values() for q in e["questions"] if not q["num_gt_masks"]),
              "diagnostic_miou_grounded_questions_only": float(np.mean(grounded_means)) if grounded_means else None}
    return scores, per_video, counts, notes


def run_bench_g(
    settings: Any,
    options: BenchGOptions,
    *,
    predictor: Any = None,
    similarity: Any = None,
    meteor: bool = True,
    allow_approximate: bool = False,
    judge: Any = None,
) -> tuple[Path | None, str]:
    """Full Bench-G run: (predict,) validate, score, write the report to ``settings.out``.

    Returns (summary.json path, message); the path is None when this process only wrote one prediction shard.
    """
    from sama.evaluate.benchmarks.runner import prepare
    from sama.evaluate.report import write_report

    bench = load_bench_g(settings.data, options)
    prepared = prepare(bench, settings, predictor, stamp={"dialogue": options.dialogue})
    if not prepared.complete:
        return None, (f"wrote shard {prepared.path} ({prepared.counts['predictions_produced']} new); merge the "
                      "shards with `sama evaluate merge` and score the merged file")
    similarity = similarity or make_text_similarity(options.text_similarity)
    scores, per_video, counts, notes = score_bench_g(bench, prepared.rows, options, similarity=similarity,
                                                     meteor=meteor, allow_approximate=allow_approximate, judge=judge,
                                                     progress=settings.progress)
    record = {**settings.record(), "recall_mode": options.recall_mode, "gt_mode": options.gt_mode,
              "dialogue": options.dialogue, "prompt_masks": "box" if options.box_prompts else "raw",
              "text_similarity": getattr(similarity, "name", options.text_similarity),
              "captions": options.captions, "meteor": meteor, "approximate_captions": allow_approximate,
              "judge": notes.get("judge", "none"), "caption_tokenizer": notes.get("caption_tokenizer"),
              "caption_unavailable": notes.get("caption_unavailable", {})}
    if settings.out is None:
        raise ConfigError("--out is required to write the results")
    paths = write_report(settings.out, benchmark="sama-bench-g", scores=scores, options=record,
                         counts={**prepared.counts, **counts}, per_item=per_video, unit="video", plot_metric="miou")
    return paths["summary_json"], "done"
