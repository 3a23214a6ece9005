"""SAMA-Bench-G grounding metrics (METRICS.md §7): spatio-temporal mask IoU, greedy mIoU, phrase+mask recall.

Two modes are offered where the release has defects (SAMA.md §6 items 15–16):

- ``faithful``: exactly as released — the recall IoU matrix is (pred × GT) while the text-similarity matrix is
  (GT × pred), both cropped to ``min`` sizes; an empty ``groundtruth`` entry repeats the previous entry's mask.
- ``fixed``: consistent (GT × pred) orientation with no cropping; empty ``groundtruth`` entries are skipped.

Every result records the mode that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sama.errors import ConfigError, DataError

Mode = Literal["faithful", "fixed"]
MODES: tuple[str, ...] = ("faithful", "fixed")

# METRICS.md §7.3: a (mask, phrase) pair is a match when IoU ≥ 0.5 and text similarity ≥ 0.5.
RECALL_IOU_THRESHOLD = 0.5
RECALL_TEXT_THRESHOLD = 0.5


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown GCG metric mode {mode!r}; expected one of {', '.join(MODES)}")


def compute_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """IoU of two masks over the whole (T, H, W) volume; **0.0 when the union is empty** (§7.2, unlike DAVIS J).

    ``None`` (a faithful-mode GT entry with no mask, see ``assemble_gt_masks``) scores 0.0.
    """
    if a is None or b is None:
        return 0.0
    x, y = np.asarray(a).astype(bool, copy=False), np.asarray(b).astype(bool, copy=False)
    if x.shape != y.shape:
        raise DataError(f"mask volumes differ in shape: {x.shape} vs {y.shape}", field="masks")
    union = np.count_nonzero(x | y)
    if union == 0:
        return 0.0
    return float(np.count_nonzero(x & y) / union)


def iou_matrix(rows: Sequence[np.ndarray | None], cols: Sequence[np.ndarray | None]) -> np.ndarray:
    """M[i, j] = compute_iou(rows[i], cols[j]) as a float64 (len(rows), len(cols)) array."""
    out = np.zeros((len(rows), len(cols)), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[i, j] = compute_iou(r, c)
    return out


def greedy_miou(matrix: np.ndarray) -> float:
    """Greedy matching score of an IoU matrix (§7.2).

    Repeatedly takes the first maximum in row-major order while it is > 0, records it and deletes its row and column;
    returns the mean of the recorded values, 0 if none. Unmatched rows/columns are not penalised.
    """
    m = np.array(matrix, dtype=np.float64, copy=True)
    if m.ndim != 2:
        raise DataError(f"expected a 2-D IoU matrix, got shape {m.shape}", field="matrix")
    recorded: list[float] = []
    while m.size > 0 and m.max() > 0:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        recorded.append(float(m[i, j]))
        m = np.delete(np.delete(m, i, axis=0), j, axis=1)
    return float(np.mean(recorded)) if recorded else 0.0


def _ordered(masks: Mapping[int, np.ndarray] | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(masks, Mapping):
        return [masks[k] for k in sorted(masks)]
    return list(masks)


def question_miou(
    pred_masks: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    gt_masks: Mapping[int, np.ndarray] | Sequence[np.ndarray],
) -> float:
    """mIoU of one question (§7.2): 0 if either side has no mask, else ``greedy_miou`` of the (pred × GT) matrix."""
    preds, gts = _ordered(pred_masks), _ordered(gt_masks)
    if not preds or not gts:
        return 0.0
    return greedy_miou(iou_matrix(preds, gts))


def find_best_matches(
    gt_masks: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    gt_phrases: Sequence[str],
    pred_phrases: Sequence[str],
    similarity: Callable[[Sequence[str], Sequence[str]], np.ndarray],
    mode: Mode = "faithful",
    iou_threshold: float = RECALL_IOU_THRESHOLD,
    text_threshold: float = RECALL_TEXT_THRESHOLD,
) -> int:
    """Number of (mask, phrase) matches of one question (§7.3).

    Args:
        similarity: ``similarity(a, b) -> (len(a), len(b))`` cosine matrix (e.g. ``TextSimilarity.matrix``).
        mode: ``faithful`` — IoU as (pred × GT), similarity as (GT phrase × pred phrase), both cropped to
            (min(N_pred_masks, N_gt_phrases), min(N_gt_masks, N_pred_phrases)) and indexed with the same (i, j);
            ``fixed`` — both (GT × pred), no cropping (GT mask i ↔ GT phrase i, pred mask j ↔ pred phrase j; entries
            with no counterpart phrase/mask cannot match).

    The loop takes the IoU argmax, **stops** (not skips) at the first pair below either threshold, and otherwise
    counts a match and zeroes that row and column in both matrices.
    """
    _check_mode(mode)
    if mode == "faithful":
        ious = iou_matrix(pred_masks, gt_masks)
        sims = np.asarray(similarity(gt_phrases, pred_phrases), dtype=np.float64).reshape(
            len(gt_phrases), len(pred_phrases)
        )
        rows = min(ious.shape[0], sims.shape[0])
        cols = min(ious.shape[1], sims.shape[1])
        ious, sims = ious[:rows, :cols].copy(), sims[:rows, :cols].copy()
    else:
        ious_full = iou_matrix(gt_masks, pred_masks)
        sims_full = np.asarray(similarity(gt_phrases, pred_phrases), dtype=np.float64).reshape(
            len(gt_phrases), len(pred_phrases)
        )
        # Pad both to a common shape; a GT mask without a GT phrase (or a prediction without a phrase) never matches.
        rows = max(ious_full.shape[0], sims_full.shape[0])
        cols = max(ious_full.shape[1], sims_full.shape[1])
        ious = np.zeros((rows, cols))
        sims = np.zeros((rows, cols))
        ious[: ious_full.shape[0], : ious_full.shape[1]] = ious_full
        sims[: sims_full.shape[0], : sims_full.shape[1]] = sims_full
    matches = 0
    while ious.size > 0:
        i, j = np.unravel_index(int(np.argmax(ious)), ious.shape)
        if ious[i, j] < iou_threshold or sims[i, j] < text_threshold:
            break
        matches += 1
        ious[i, :] = 0
        ious[:, j] = 0
        sims[i, :] = 0
        sims[:, j] = 0
    return matches


@dataclass
class RecallResult:
    """Recall of one video (§7.3): TP / AP (0 if AP = 0), with the skipped-question count and the mode used."""

    recall: float
    true_positives: int
    actual_positives: int
    num_questions: int
    num_skipped: int
    mode: str
    skipped_question_ids: list[str] = field(default_factory=list)


@dataclass
class GcgQuestion:
    """What recall and mIoU need from one Bench-G question."""

    question_id: str
    gt_masks: Sequence[np.ndarray]
    pred_masks: Sequence[np.ndarray]
    gt_phrases: Sequence[str]
    pred_phrases: Sequence[str]


def video_recall(
    questions: Iterable[GcgQuestion],
    similarity: Callable[[Sequence[str], Sequence[str]], np.ndarray],
    mode: Mode = "faithful",
) -> RecallResult:
    """Recall of one video (§7.3).

    Questions with no predicted mask or no predicted phrase are **skipped** (counted in ``num_skipped``, not as
    misses); the others add ``len(gt_phrases)`` to AP and their match count to TP.
    """
    _check_mode(mode)
    tp = ap = total = 0
    skipped: list[str] = []
    for q in questions:
        total += 1
        if len(q.pred_masks) == 0 or len(q.pred_phrases) == 0:
            skipped.append(q.question_id)
            continue
        ap += len(q.gt_phrases)
        tp += find_best_matches(q.gt_masks, q.pred_masks, q.gt_phrases, q.pred_phrases, similarity, mode=mode)
    return RecallResult(
        recall=tp / ap if ap > 0 else 0.0,
        true_positives=tp,
        actual_positives=ap,
        num_questions=total,
        num_skipped=len(skipped),
        mode=mode,
        skipped_question_ids=skipped,
    )


def assemble_gt_masks(
    groundtruth: Sequence[Sequence[int | str]],
    volume: Callable[[Sequence[int | str]], np.ndarray],
    mode: Mode = "fixed",
) -> list[np.ndarray | None]:
    """GT mask volumes of one question from its ``groundtruth`` entries (§7.1, SAMA.md §6 item 16).

    Args:
        groundtruth: per ``[SEG]``, the list of object ids whose masks are OR-ed.
        volume: ``volume(obj_ids) -> (T, H, W)`` bool, the OR of those objects over all frames of the video.
        mode: ``fixed`` skips empty entries; ``faithful`` repeats the previous entry's volume for an empty entry
            (``None`` if it is the first), as the release does.
    """
    _check_mode(mode)
    out: list[np.ndarray | None] = []
    previous: np.ndarray | None = None
    for entry in groundtruth:
        if len(entry) == 0:
            if mode == "faithful":
                out.append(previous)
            continue
        previous = volume(entry)
        out.append(previous)
    return out


def mean_over_questions(values: Iterable[float]) -> float:
    """Per-video value: mean over the video's questions (0.0 for a video with no question)."""
    arr = np.asarray(list(values), dtype=np.float64)
    return float(arr.mean()) if arr.size else 0.0


def mean_over_videos(per_video: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    """Final scores (§7.6): per metric, the mean over videos of the per-video values.

    ``None`` values (an unavailable metric) are left out; a metric that is ``None`` for every video stays ``None``.
    """
    keys: list[str] = []
    for scores in per_video.values():
        keys.extend(k for k in scores if k not in keys)
    out: dict[str, float | None] = {}
    for key in keys:
        vals = [v[key] for v in per_video.values() if v.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out
