"""SAMA-Bench-C runner (region captioning, METRICS.md §8): one question per ``description`` entry, caption
metrics per video (pycocoevalcap) and an optional judge, then the mean over videos.

Same data folder as Bench-G (``bench.json`` + ``bench_mask_dict.json``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sama.data.schema import clean_text, normalize_aliases
from sama.errors import ConfigError, DataError
from sama.evaluate.benchmarks.base import TASK_CAPTION, Bench, BenchQuestion, Reference
from sama.evaluate.benchmarks.sama_bench_g import BENCH_JSON, add_text_metrics, judge_key, load_bench_files
from sama.evaluate.metrics import gcg

# METRICS.md §8: the fixed Bench-C question (one referred object, raw mask prompt).
BENCH_C_QUESTION = "Please describe the region <mask> in the video in detail."


def load_bench_c(data_dir: str | Path) -> Bench:
    """One caption question per ``description`` entry ``objN`` → object ``anno_map[N]`` (raw-mask prompt)."""
    data_dir = Path(data_dir)
    records, mask_dict = load_bench_files(data_dir)
    json_path = data_dir / BENCH_JSON
    questions: list[BenchQuestion] = []
    references: dict[str, Reference] = {}
    for record in records:
        folder = data_dir / record.frame_folder(".")
        for key, obj_id in record.description_objects().items():
            qid = str(record.description_id.get(key, f"{record.video_id}/{key}"))
            if qid in references:
                raise DataError(f"description id {qid!r} is used twice", file=str(json_path),
                                record=record.record_index, field=f"description_id.{key}")
            questions.append(BenchQuestion(qid, record.video, folder if folder.is_dir() else None,
                                           list(record.frames), record.height, record.width, BENCH_C_QUESTION,
                                           TASK_CAPTION, ref_object_ids=[str(obj_id)], box_prompts=False,
                                           mask_dict=mask_dict, meta={"description_key": key}))
            references[qid] = Reference(normalize_aliases(record.description[key]), [[str(obj_id)]], mask_dict)
    skipped = Counter({rule: n for rule, n in records.report.counts_by_rule().items()
                       if rule in ("description_key", "record_type", "missing_field", "field_type")})
    return Bench("sama-bench-c", data_dir, questions, references, skipped)


def run_bench_c(
    settings: Any,
    *,
    captions: bool = True,
    meteor: bool = True,
    allow_approximate: bool = False,
    judge: Any = None,
    predictor: Any = None,
) -> tuple[Path | None, str]:
    """Full Bench-C run: (predict,) validate, per-video caption metrics (+ judge), mean over videos, report."""
    from sama.evaluate.benchmarks.runner import prepare
    from sama.evaluate.report import write_report

    if settings.out is None:
        raise ConfigError("--out is required to write the results")
    if not captions and judge is None:
        raise ConfigError("Bench-C has only text metrics: drop --no-captions or pass --judge")
    bench = load_bench_c(settings.data)
    prepared = prepare(bench, settings, predictor)
    if not prepared.complete:
        return None, (f"wrote shard {prepared.path} ({prepared.counts['predictions_produced']} new); merge the "
                      "shards with `sama evaluate merge` and score the merged file")
    pairs_by_video: dict[str, list[tuple[str, str]]] = {}
    for q in bench.questions:
        if q.question_id in prepared.rows:
            pairs_by_video.setdefault(q.video_id, []).append(
                (clean_text(bench.references[q.question_id].text), clean_text(prepared.rows[q.question_id].text)))
    per_video: dict[str, dict[str, Any]] = {video: {"num_descriptions": len(p)} for video, p in pairs_by_video.items()}
    notes = add_text_metrics(per_video, pairs_by_video, captions=captions, meteor=meteor,
                             allow_approximate=allow_approximate, judge=judge)
    flat = {video: {**e.get("caption_scores", {}), **({judge_key(judge): e[judge_key(judge)]} if judge else {})}
            for video, e in per_video.items()}
    scores = gcg.mean_over_videos(flat)
    for video, entry in per_video.items():  # plot value: BLEU-4 (or the judge) per video
        entry["plot"] = flat[video].get("Bleu_4", flat[video].get(judge_key(judge)) if judge else None)
    options = {**settings.record(), "prompt_masks": "raw", "question": BENCH_C_QUESTION, "captions": captions,
               "meteor": meteor, "approximate_captions": allow_approximate, "judge": notes.get("judge", "none"),
               "caption_tokenizer": notes.get("caption_tokenizer"),
               "caption_unavailable": notes.get("caption_unavailable", {})}
    counts = {**prepared.counts, "videos_scored": len(per_video),
              "descriptions_scored": sum(len(p) for p in pairs_by_video.values())}
    paths = write_report(settings.out, benchmark="sama-bench-c", scores=scores, options=options, counts=counts,
                         per_item=per_video, unit="video", plot_metric="plot")
    return paths["summary_json"], "done"
