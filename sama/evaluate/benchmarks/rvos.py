"""Referring video object segmentation runners: MeViS (METRICS.md §3), ReVOS (§5), Ref-DAVIS17 (§2, both
protocols) and the Ref-YouTube-VOS submission writer (§4).

Data folder: ``meta_expressions.json`` (MeViS schema ``{"videos": {vid: {"frames", "expressions": {exp_id: {"exp",
"anno_id", ["obj_id", "type_id"]}}}}}``; ReVOS' ``meta_expressions_valid_.json`` is accepted too) and
``mask_dict.json`` (``{str(anno_id): [RLE | null per frame]}``); ReVOS also ``mask_dict_foreground.json``.
Question ids are ``"<video_id>/<exp_id>"``; the predicted mask of an expression is the OR of its ``masks``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sama.data.masks import MaskDict, check_rle, rle_decode
from sama.errors import ConfigError, DataError
from sama.evaluate.benchmarks.base import TASK_RVOS, Bench, BenchQuestion, Reference
from sama.evaluate.predictions import PredictionRow

META_NAMES = ("meta_expressions.json", "meta_expressions_valid_.json", "meta_expressions/valid/meta_expressions.json")
MASK_DICT_NAME = "mask_dict.json"
FOREGROUND_NAME = "mask_dict_foreground.json"  # METRICS.md §5: union of all annotated objects per video
FRAME_FOLDERS = ("JPEGImages", "valid/JPEGImages", "", "../../videos")  # where <vid>/<frame>.jpg may live
# Submission zip roots: Ref-YTVOS Annotations/<video_id>/<exp_id>/<frame>.png (METRICS.md §4); MeViS val/test puts
# the video folders at the top level (METRICS.md §3, "Submission"). PNGs are grayscale 0/255.
SUBMISSION_ROOTS = {"ytvos": "Annotations/", "mevis": ""}
PNG_FOREGROUND = 255


def find_meta(data_dir: Path) -> Path:
    for name in META_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(f"no expressions file; expected one of {', '.join(META_NAMES)} in --data", file=str(data_dir))


def _frame_size(video_id: str, meta: Mapping[str, Any], anno_ids: Sequence[str], mask_dict: MaskDict | None,
                video_dir: Path | None, file: str) -> tuple[int, int]:
    """(H, W): from the meta, else the first RLE of the video's objects, else its first frame image."""
    if "height" in meta and "width" in meta:
        return int(meta["height"]), int(meta["width"])
    if mask_dict is not None:
        for anno_id in anno_ids:
            if anno_id not in mask_dict:
                continue
            for frame in range(mask_dict.num_frames(anno_id)):
                rle = mask_dict.frame_rle(anno_id, frame)
                rle = rle[0] if isinstance(rle, list) and rle else rle
                if isinstance(rle, dict):
                    return check_rle(rle)
    if video_dir is not None:
        from PIL import Image

        first = sorted(video_dir.glob("*.jpg")) + sorted(video_dir.glob("*.png"))
        if first:
            with Image.open(first[0]) as image:
                return image.height, image.width
    raise DataError("cannot tell the frame size: no height/width, no mask and no frame image", file=file,
                    record=video_id)


def _video_dir(data_dir: Path, video_id: str) -> Path | None:
    for folder in FRAME_FOLDERS:
        candidate = (data_dir / folder / video_id).resolve()
        if candidate.is_dir():
            return candidate
    return None


def load_rvos(name: str, data_dir: str | Path, *, with_masks: bool = True) -> Bench:
    """One question per expression. ``with_masks=False`` (Ref-YTVOS) reads no mask dictionary (no public GT)."""
    data_dir = Path(data_dir)
    meta_path = find_meta(data_dir)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", file=str(meta_path)) from exc
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise DataError("expected {'videos': {video_id: {...}}}", file=str(meta_path), field="videos")
    mask_dict = None
    if with_masks:
        mask_path = data_dir / MASK_DICT_NAME
        if not mask_path.is_file():
            raise DataError(f"ground-truth masks missing (expected {MASK_DICT_NAME} in --data)", file=str(mask_path))
        mask_dict = MaskDict.load(mask_path)
    questions: list[BenchQuestion] = []
    references: dict[str, Reference] = {}
    skipped: Counter[str] = Counter()
    for video_id in sorted(videos):
        video = videos[video_id]
        if not isinstance(video, dict) or not isinstance(video.get("frames"), list) or not isinstance(
                video.get("expressions"), dict):
            raise DataError("expected {'frames': [...], 'expressions': {...}}", file=str(meta_path), record=video_id)
        expressions = video["expressions"]
        all_ids = [str(a) for e in expressions.values() if isinstance(e, dict) for a in _as_list(e.get("anno_id"))]
        video_dir = _video_dir(data_dir, video_id)
        height, width = _frame_size(video_id, video, all_ids, mask_dict, video_dir, str(meta_path))
        for exp_id in sorted(expressions, key=_exp_sort_key):
            expression = expressions[exp_id]
            qid = f"{video_id}/{exp_id}"
            if not isinstance(expression, dict) or not isinstance(expression.get("exp"), str):
                raise DataError("expected an expression object with a string 'exp'", file=str(meta_path), record=qid,
                                field="exp")
            anno_ids = [str(a) for a in _as_list(expression.get("anno_id"))]
            if with_masks:
                unknown = [a for a in anno_ids if a not in mask_dict]
                if not anno_ids or unknown:
                    raise DataError(f"anno_id {unknown or anno_ids!r} not in {MASK_DICT_NAME}", file=str(meta_path),
                                    record=qid, field="anno_id")
            questions.append(BenchQuestion(
                qid, video_id, video_dir, [str(f) for f in video["frames"]], height, width, expression["exp"],
                TASK_RVOS, meta={"exp_id": exp_id, "type_id": expression.get("type_id"),
                                 "obj_id": expression.get("obj_id")}))
            references[qid] = Reference(expression["exp"], [anno_ids], mask_dict)
    return Bench(name, data_dir, questions, references, skipped, meta={"meta_file": str(meta_path)})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _exp_sort_key(exp_id: str) -> tuple[int, Any]:
    return (0, int(exp_id)) if str(exp_id).isdigit() else (1, str(exp_id))


def predicted_volume(row: PredictionRow, num_frames: int, height: int, width: int) -> np.ndarray:
    """The OR of a row's masks as a (T, H, W) bool volume (DESIGN.md: RVOS answer = union of the [SEG] masks)."""
    volume = np.zeros((num_frames, height, width), dtype=bool)
    for per_frame in row.masks:
        for t, rle in enumerate(per_frame[:num_frames]):
            if rle is not None:
                volume[t] |= rle_decode(rle, height, width)
    return volume


# ------------------------------------------------------------------------------------------------- scoring workers
def _jf_item(item: tuple[str, np.ndarray, np.ndarray]) -> tuple[str, float, float]:
    from sama.evaluate.metrics.davis import mevis_expression_scores

    qid, gt, pred = item
    j, f = mevis_expression_scores(gt, pred)
    return qid, j, f


def _revos_item(item: tuple[str, np.ndarray, np.ndarray, np.ndarray, int, bool]) -> tuple[str, Any]:
    from sama.evaluate.metrics.revos import revos_expression_scores

    qid, gt, pred, foreground, type_id, faithful = item
    return qid, revos_expression_scores(gt, pred, foreground, type_id, faithful_uint8=faithful)


def _gt_volume(bench: Bench, q: BenchQuestion, summed: bool = False) -> np.ndarray:
    """GT of an expression: union (bool) or, for ReVOS' A/R, the uint8 sum of its objects' masks (METRICS.md §5)."""
    ref = bench.references[q.question_id]
    if not summed:
        return ref.volumes(q.num_frames, q.height, q.width)[0]
    total = np.zeros((q.num_frames, q.height, q.width), dtype=np.uint8)
    for anno_id in ref.mask_groups[0]:
        total += ref.mask_dict.volume([anno_id], q.num_frames, q.height, q.width).astype(np.uint8)
    return total


def _scored(bench: Bench, rows: Mapping[str, PredictionRow], missing_as_zero: bool) -> list[BenchQuestion]:
    return [q for q in bench.questions if missing_as_zero or q.question_id in rows]


def _prediction(q: BenchQuestion, rows: Mapping[str, PredictionRow]) -> np.ndarray | None:
    row = rows.get(q.question_id)
    return None if row is None else predicted_volume(row, q.num_frames, q.height, q.width)


def score_jf(bench: Bench, rows: Mapping[str, PredictionRow], workers: int = 1, progress: bool = False,
             missing_as_zero: bool = False) -> dict[str, dict[str, float]]:
    """Per expression {J, F, J&F}: per-frame J and F averaged over all frames (METRICS.md §3 / §2(b)).

    ``missing_as_zero`` scores expressions without a prediction (0, 0), as the MeViS script does for a missing
    video folder; otherwise they are left out.
    """
    from tqdm import tqdm

    from sama.evaluate.metrics.davis import map_videos

    items = ((q.question_id, _gt_volume(bench, q), _prediction(q, rows))
             for q in tqdm(_scored(bench, rows, missing_as_zero), desc=f"{bench.name} J&F", unit="exp",
                           disable=not progress))
    results = map_videos(_jf_item, items, workers=workers)
    return {qid: {"J": j, "F": f, "J&F": (j + f) / 2} for qid, j, f in results}


def score_mevis(bench: Bench, rows: Mapping[str, PredictionRow], workers: int = 1, progress: bool = False,
                missing_as_zero: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """MeViS: J = mean of per-expression j, F likewise, J&F = (J + F)/2 (METRICS.md §3)."""
    from sama.evaluate.metrics.davis import aggregate_expressions

    per_exp = score_jf(bench, rows, workers, progress, missing_as_zero)
    if not per_exp:
        raise DataError("no expression has a usable prediction; nothing to score")
    return aggregate_expressions((v["J"], v["F"]) for v in per_exp.values()), per_exp


def _foreground(bench: Bench, video_id: str, questions: Sequence[BenchQuestion]) -> tuple[np.ndarray, str]:
    """The video's annotated foreground: ``mask_dict_foreground.json`` if present, else the union of every object of
    its expressions (the file's definition, METRICS.md §5)."""
    q = questions[0]
    fg_path = bench.data_dir / FOREGROUND_NAME
    if fg_path.is_file():
        if "foreground" not in bench.meta:
            bench.meta["foreground"] = MaskDict.load(fg_path)
        foreground: MaskDict = bench.meta["foreground"]
        if video_id not in foreground:
            raise DataError("video missing from the foreground masks", file=str(fg_path), record=video_id)
        return foreground.volume([video_id], q.num_frames, q.height, q.width), "file"
    ids = sorted({a for x in questions for a in bench.references[x.question_id].mask_groups[0]})
    return bench.references[q.question_id].mask_dict.volume(ids, q.num_frames, q.height, q.width), "derived"


def score_revos(bench: Bench, rows: Mapping[str, PredictionRow], workers: int = 1, progress: bool = False,
                faithful: bool = False, missing_as_zero: bool = False) -> tuple[dict[str, Any], dict[str, Any], str]:
    """ReVOS: per expression J, F, A, R; category means (referring / reason); overall = their mean (METRICS.md §5).

    ``faithful=True`` reproduces VISA's uint8 underflow in R and its per-expression rounding to 2 decimals (×100).
    """
    from sama.evaluate.metrics.davis import map_videos
    from sama.evaluate.metrics.revos import aggregate_revos

    by_video: dict[str, list[BenchQuestion]] = {}
    for q in _scored(bench, rows, missing_as_zero):
        by_video.setdefault(q.video_id, []).append(q)
    items, fg_source = [], "derived"
    for video_id, questions in by_video.items():
        foreground, fg_source = _foreground(bench, video_id, questions)
        for q in questions:
            type_id = q.meta.get("type_id")
            if not isinstance(type_id, int):
                raise DataError("ReVOS expressions need an integer type_id (0 referring, 1 reason)",
                                file=bench.meta["meta_file"], record=q.question_id, field="type_id")
            prediction = _prediction(q, rows)
            items.append((q.question_id, _gt_volume(bench, q, summed=True),
                          None if prediction is None else prediction.astype(np.uint8), foreground.astype(np.uint8),
                          type_id, faithful))
    results = dict(map_videos(_revos_item, items, workers=workers))
    if not results:
        raise DataError("no expression has a usable prediction; nothing to score")
    final = aggregate_revos(results, faithful_rounding=faithful)
    per_exp = {qid: {"J": s.j, "F": s.f, "A": s.a, "R": s.r, "J&F": s.jf, "type_id": s.type_id}
               for qid, s in results.items()}
    return final, per_exp, fg_source


def score_davis_referformer(bench: Bench, rows: Mapping[str, PredictionRow]) -> tuple[dict[str, Any], dict[str, int]]:
    """Ref-DAVIS17 protocol (a) (METRICS.md §2(a)): expressions of an object are its annotation sets 0..3 in
    expression order; per set, the objects' masks are merged into label maps and scored with the unsupervised DAVIS
    protocol; the result is the mean over the 4 sets. Expressions with several objects, and an object's expressions
    beyond the 4th, are not used (returned counts).
    """
    from sama.evaluate.metrics.davis import (
        REF_DAVIS_ANNOTATORS,
        merge_annotator_masks,
        ref_davis_annotator_protocol,
    )

    gt_labels: dict[str, np.ndarray] = {}
    sets: list[dict[str, np.ndarray]] = [{} for _ in range(REF_DAVIS_ANNOTATORS)]
    multi_object = beyond_sets = 0
    by_video: dict[str, dict[str, list[BenchQuestion]]] = {}
    for q in bench.questions:
        anno = bench.references[q.question_id].mask_groups[0]
        if len(anno) != 1:
            multi_object += 1
            continue
        by_video.setdefault(q.video_id, {}).setdefault(anno[0], []).append(q)
    for video_id, objects in by_video.items():
        first = next(iter(objects.values()))[0]
        shape = (first.num_frames, first.height, first.width)
        labels = np.zeros(shape, dtype=np.int64)
        per_set: list[list[np.ndarray]] = [[] for _ in range(REF_DAVIS_ANNOTATORS)]
        for k, (anno_id, questions) in enumerate(sorted(objects.items(), key=lambda kv: _exp_sort_key(kv[0]))):
            beyond_sets += max(0, len(questions) - REF_DAVIS_ANNOTATORS)
            labels[bench.references[questions[0].question_id].mask_dict.volume([anno_id], *shape)] = k + 1
            for a in range(REF_DAVIS_ANNOTATORS):
                q = questions[a] if a < len(questions) else None
                row = rows.get(q.question_id) if q is not None else None
                per_set[a].append(predicted_volume(row, *shape) if row is not None else np.zeros(shape, dtype=bool))
        gt_labels[video_id] = labels
        for a in range(REF_DAVIS_ANNOTATORS):
            sets[a][video_id] = merge_annotator_masks(per_set[a])
    if not gt_labels:
        raise DataError("no single-object expression to score with the ReferFormer protocol")
    return ref_davis_annotator_protocol(gt_labels, sets), {"multi_object_expressions": multi_object,
                                                           "expressions_beyond_4_per_object": beyond_sets}


def write_submission(bench: Bench, rows: Mapping[str, PredictionRow], zip_path: Path, layout: str = "ytvos") -> int:
    """CodaLab zip: ``[Annotations/]<vid>/<exp_id>/<frame>.png`` grayscale 0/255 (METRICS.md §4; MeViS §3).

    Returns the number of PNGs written; every expression must have a prediction (else DataError).
    """
    from PIL import Image

    if layout not in SUBMISSION_ROOTS:
        raise ConfigError(f"--layout {layout!r}: expected one of {', '.join(SUBMISSION_ROOTS)}")
    root = SUBMISSION_ROOTS[layout]
    missing = [q.question_id for q in bench.questions if q.question_id not in rows]
    if missing:
        raise DataError(f"the submission needs every expression; {len(missing)} have no prediction",
                        record=missing[0], field="question_id")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    count = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for q in bench.questions:
            volume = predicted_volume(rows[q.question_id], q.num_frames, q.height, q.width)
            exp_id = q.question_id.split("/", 1)[1]
            for frame, mask in zip(q.frames, volume):
                buffer = io.BytesIO()
                Image.fromarray(mask.astype(np.uint8) * PNG_FOREGROUND, mode="L").save(buffer, format="PNG")
                archive.writestr(f"{root}{q.video_id}/{exp_id}/{frame}.png", buffer.getvalue())
                count += 1
    tmp.replace(zip_path)
    return count


def run_rvos(name: str, settings: Any, *, workers: int = 1, protocol: str = "both", revos_faithful: bool = False,
             layout: str = "ytvos", predictor: Any = None) -> tuple[Path | None, str]:
    """Full RVOS run for ``mevis`` | ``revos`` | ``davis17`` | ``ref-ytvos``; returns (summary.json, message)."""
    from sama.evaluate.benchmarks.runner import prepare
    from sama.evaluate.report import write_report

    if name not in ("mevis", "revos", "davis17", "ref-ytvos"):
        raise ConfigError(f"unknown RVOS benchmark {name!r}")
    if protocol not in ("sama", "referformer", "both"):
        raise ConfigError(f"--protocol {protocol!r}: expected sama, referformer or both")
    if settings.out is None:
        raise ConfigError("--out is required to write the results")
    bench = load_rvos(name, settings.data, with_masks=name != "ref-ytvos")
    prepared = prepare(bench, settings, predictor)
    if not prepared.complete:
        return None, (f"wrote shard {prepared.path} ({prepared.counts['predictions_produced']} new); merge the "
                      "shards with `sama evaluate merge` and score the merged file")
    options: dict[str, Any] = {**settings.record(), "workers": workers, "bound_th": 0.008}  # METRICS.md §1.2
    counts = dict(prepared.counts)
    if settings.missing_as_zero:
        counts["expressions_scored_zero_without_prediction"] = sum(
            q.question_id not in prepared.rows for q in bench.questions)
    extra: dict[str, Any] = {}
    if name == "ref-ytvos":
        zip_path = Path(settings.out) / "submission.zip"
        counts["pngs_written"] = write_submission(bench, prepared.rows, zip_path, layout)
        options["layout"] = layout
        per_exp = {qid: {"frames": bench.question(qid).num_frames} for qid in prepared.rows}
        scores: dict[str, Any] = {"submission": str(zip_path)}
        write_report(settings.out, benchmark=name, scores=scores, options=options, counts=counts, per_item=per_exp,
                     unit="expression", plot_metric="none")
        return Path(settings.out) / "summary.json", f"submission written to {zip_path}"
    if name == "revos":
        final, per_exp, fg_source = score_revos(bench, prepared.rows, workers, settings.progress, revos_faithful,
                                                settings.missing_as_zero)
        options["foreground"] = fg_source
        options["revos_faithful"] = revos_faithful
        scores = {f"{cat}_{k}": v for cat, values in final.items() for k, v in values.items()}
        extra["categories"] = final
    else:
        scores, per_exp = score_mevis(bench, prepared.rows, workers, settings.progress, settings.missing_as_zero)
        scores = {k: v for k, v in scores.items() if k != "num_expressions"}
        counts["expressions_scored"] = len(per_exp)
        if name == "davis17":
            options["protocol"] = protocol
            if protocol in ("referformer", "both"):
                referformer, unused = score_davis_referformer(bench, prepared.rows)
                counts["referformer_unused_expressions"] = unused
                extra["referformer"] = referformer
                ref_scores = {f"referformer_{k}": referformer[k] for k in ("J", "F", "J&F")}
                scores = ref_scores if protocol == "referformer" else {
                    **{f"sama_{k}": v for k, v in scores.items()}, **ref_scores}
            else:
                scores = {f"sama_{k}": v for k, v in scores.items()}
    paths = write_report(settings.out, benchmark=name, scores=scores, options=options, counts=counts,
                         per_item=per_exp, unit="expression", plot_metric="J&F", extra=extra)
    return paths["summary_json"], "done"
