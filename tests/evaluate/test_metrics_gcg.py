"""SAMA-Bench-G mIoU / recall (METRICS.md §7.2–§7.3) and GT assembly modes (SAMA.md §6 item 16)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from sama.errors import ConfigError, DataError
from sama.evaluate.metrics import gcg


def exact_sim(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Similarity 1 for identical words, 0 otherwise (the §7.3 example's assumption)."""
    return np.array([[1.0 if x == y else 0.0 for y in b] for x in a]).reshape(len(a), len(b))


def vol(*cells: tuple[int, int]) -> np.ndarray:
    """A (2, 4, 4) volume with the given (row, col) pixels set in both frames."""
    v = np.zeros((2, 4, 4), bool)
    for r, c in cells:
        v[:, r, c] = True
    return v


def test_thresholds_pinned() -> None:
    assert gcg.RECALL_IOU_THRESHOLD == 0.5 and gcg.RECALL_TEXT_THRESHOLD == 0.5


def test_compute_iou_volume_and_empty_union() -> None:
    a, b = vol((0, 0), (0, 1)), vol((0, 1), (0, 2))
    assert gcg.compute_iou(a, b) == pytest.approx(1 / 3)
    assert gcg.compute_iou(np.zeros((2, 4, 4)), np.zeros((2, 4, 4))) == 0.0  # unlike DAVIS J
    assert gcg.compute_iou(None, a) == 0.0
    with pytest.raises(DataError, match="differ in shape"):
        gcg.compute_iou(a, np.zeros((1, 4, 4)))


@pytest.mark.parametrize(
    ("matrix", "score"),
    [([[0.9, 0.8], [0.85, 0.0]], 0.9), ([[0.9, 0.8], [0.85, 0.1]], 0.5), ([[0.3], [0.6], [0.0]], 0.6),
     ([[0.0, 0.0]], 0.0)],
)
def test_greedy_miou_table(matrix: list[list[float]], score: float) -> None:
    assert gcg.greedy_miou(np.array(matrix)) == pytest.approx(score)


def test_greedy_takes_first_maximum_row_major() -> None:
    # (0, 0) and (0, 1) tie; taking (0, 0) first leaves only 0.0, taking (0, 1) would leave 0.4.
    assert gcg.greedy_miou(np.array([[0.5, 0.5], [0.4, 0.0]])) == pytest.approx(0.5)


def test_question_miou_empty_rules_and_dict_order() -> None:
    a, b = vol((0, 0)), vol((3, 3))
    assert gcg.question_miou({}, {0: a}) == 0.0
    assert gcg.question_miou({0: a}, {}) == 0.0
    assert gcg.question_miou({1: b, 0: a}, {0: a}) == pytest.approx(1.0)
    assert gcg.question_miou([a, b], [b]) == pytest.approx(1.0)


def test_recall_orientation_example_faithful_vs_fixed() -> None:
    gt_masks = [vol((0, 0)), vol((1, 1))]
    pred_masks = [vol((1, 1)), vol((3, 3))]  # IoU(pred0, GT1) = 1 ≥ 0.9, all others 0
    gt_phr, pred_phr = ["man", "dog"], ["dog", "cat"]
    fixed = gcg.find_best_matches(gt_masks, pred_masks, gt_phr, pred_phr, exact_sim, mode="fixed")
    faithful = gcg.find_best_matches(gt_masks, pred_masks, gt_phr, pred_phr, exact_sim, mode="faithful")
    assert fixed == 1 and faithful == 0


def test_recall_one_mask_one_phrase_modes_agree() -> None:
    args = ([vol((0, 0))], [vol((0, 0))], ["dog"], ["dog"], exact_sim)
    assert gcg.find_best_matches(*args, mode="fixed") == gcg.find_best_matches(*args, mode="faithful") == 1


def test_recall_stops_instead_of_skipping() -> None:
    gt_masks = [vol((0, 0)), vol((2, 2))]
    pred_masks = [vol((0, 0)), vol((2, 2), (2, 3))]  # IoU 1.0 with wrong text, then IoU 0.5 with right text
    n = gcg.find_best_matches(gt_masks, pred_masks, ["cat", "dog"], ["bird", "dog"], exact_sim, mode="fixed")
    assert n == 0


def test_faithful_crops_to_min_sizes() -> None:
    # 2 predicted masks but 1 GT phrase: faithful crops the (pred × GT) IoU matrix to its first row and loses pred 1.
    gt_masks = [vol((0, 0))]
    pred_masks = [vol((3, 3)), vol((0, 0))]
    phrases = ["a"], ["x", "a"]
    assert gcg.find_best_matches(gt_masks, pred_masks, *phrases, exact_sim, mode="faithful") == 0
    assert gcg.find_best_matches(gt_masks, pred_masks, *phrases, exact_sim, mode="fixed") == 1


def test_video_recall_skip_rule_and_zero_ap() -> None:
    q_ok = gcg.GcgQuestion("q1", [vol((0, 0))], [vol((0, 0))], ["dog", "cat"], ["dog"])
    q_no_mask = gcg.GcgQuestion("q2", [vol((0, 0))], [], ["dog"], ["dog"])
    q_no_phrase = gcg.GcgQuestion("q3", [vol((0, 0))], [vol((0, 0))], ["dog"], [])
    res = gcg.video_recall([q_ok, q_no_mask, q_no_phrase], exact_sim, mode="fixed")
    assert res.recall == pytest.approx(0.5) and (res.true_positives, res.actual_positives) == (1, 2)
    assert res.num_skipped == 2 and res.skipped_question_ids == ["q2", "q3"] and res.num_questions == 3
    assert res.mode == "fixed"
    none = gcg.video_recall([q_no_mask], exact_sim)
    assert none.recall == 0.0 and none.actual_positives == 0 and none.mode == "faithful"


def test_assemble_gt_masks_modes() -> None:
    def volume(ids: Sequence[int | str]) -> np.ndarray:
        return vol(*[(int(i), int(i)) for i in ids])

    entries = [[], [1], [], [2, 3]]
    fixed = gcg.assemble_gt_masks(entries, volume, mode="fixed")
    faithful = gcg.assemble_gt_masks(entries, volume, mode="faithful")
    assert len(fixed) == 2 and fixed[1].sum() == 4
    assert len(faithful) == 4 and faithful[0] is None
    assert faithful[2] is faithful[1] and np.array_equal(faithful[1], fixed[0])


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="faithful, fixed"):
        gcg.find_best_matches([], [], [], [], exact_sim, mode="other")  # type: ignore[arg-type]


def test_averaging_helpers() -> None:
    assert gcg.mean_over_questions([0.5, 1.0]) == 0.75 and gcg.mean_over_questions([]) == 0.0
    out = gcg.mean_over_videos({"a": {"miou": 0.2, "SPICE": None}, "b": {"miou": 0.4, "SPICE": None}})
    assert out["miou"] == pytest.approx(0.3) and out["SPICE"] is None
