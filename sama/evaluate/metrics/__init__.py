"""Evaluation metrics: DAVIS J/F (+ MeViS, Ref-DAVIS17), ReVOS A/R, Bench-G mIoU/recall, captions, CLAIR, text similarity.

Light modules are re-exported here; ``captions``, ``clair`` and ``text_sim`` load their heavy dependencies lazily.
"""

from sama.evaluate.metrics.davis import (
    BOUND_TH,
    aggregate_expressions,
    bound_pixels,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    j_and_f,
    map_videos,
    mevis_expression_scores,
    seg2bmap,
)
from sama.evaluate.metrics.gcg import (
    GcgQuestion,
    RecallResult,
    assemble_gt_masks,
    compute_iou,
    find_best_matches,
    greedy_miou,
    question_miou,
    video_recall,
)
from sama.evaluate.metrics.revos import aggregate_revos, revos_expression_scores

__all__ = [
    "BOUND_TH",
    "GcgQuestion",
    "RecallResult",
    "aggregate_expressions",
    "aggregate_revos",
    "assemble_gt_masks",
    "bound_pixels",
    "compute_iou",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "find_best_matches",
    "greedy_miou",
    "j_and_f",
    "map_videos",
    "mevis_expression_scores",
    "question_miou",
    "revos_expression_scores",
    "seg2bmap",
    "video_recall",
]
