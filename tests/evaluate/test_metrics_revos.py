"""ReVOS A / R and aggregation (METRICS.md §5), including the raw-uint8 behaviour of the reference."""

from __future__ import annotations

import numpy as np
import pytest

from sama.errors import DataError
from sama.evaluate.metrics import revos


def test_constants_pinned() -> None:
    assert revos.ROBUSTNESS_EPS == 1e-6
    assert (revos.TYPE_REFERRING, revos.TYPE_REASON) == (0, 1)
    assert revos.CATEGORY_NAMES == {0: "referring", 1: "reason"}


def test_accuracy_bool_and_0_255_prediction() -> None:
    gt = np.zeros((1, 2, 5), bool)
    gt[0, 0, :2] = True
    pred = np.zeros((1, 2, 5), np.uint8)
    pred[0, 0, :3] = 255
    assert revos.revos_accuracy(gt, pred)[0] == pytest.approx(0.9)  # converted to 0/1: one wrong pixel
    # raw uint8: 255 never equals the GT's 1, so the two correct foreground pixels count as wrong too
    assert revos.revos_accuracy(gt, pred, faithful_uint8=True)[0] == pytest.approx(0.7)


def test_robustness_formula_and_clipping() -> None:
    gt = np.zeros((10, 10), bool)
    gt[:2] = True  # 20 px
    fg = gt.copy()
    pred = gt.copy()
    pred[2, :5] = True  # 5 false-positive px
    assert revos.revos_robustness(gt, pred, fg)[0] == pytest.approx(1 - 5 / (20 + 1e-6))
    pred[2:] = True  # 80 false positives > foreground: clipped at 0
    assert revos.revos_robustness(gt, pred, fg)[0] == 0.0
    assert revos.revos_robustness(gt, np.zeros_like(gt), np.zeros_like(gt))[0] == 1.0


def test_robustness_uint8_overlap_underflow() -> None:
    gt = np.zeros((1, 4, 4), np.uint8)
    gt[0, 0, :2] = 2  # two overlapping objects summed
    fg = (gt > 0).astype(np.uint8)
    pred = (gt > 0).astype(np.uint8)  # a perfect prediction
    assert revos.revos_robustness(gt, pred, fg)[0] == 1.0
    # raw uint8: (1 - 2) wraps to 255, so the two correct pixels count as 510 false positives → clipped at 0
    assert revos.revos_robustness(gt, pred, fg, faithful_uint8=True)[0] == 0.0


def test_expression_scores_and_missing_prediction() -> None:
    gt = np.zeros((2, 8, 8), bool)
    gt[:, 2:5, 2:5] = True
    s = revos.revos_expression_scores(gt, gt.copy(), gt.copy(), type_id=1)
    assert (s.j, s.f, s.a, s.r, s.jf) == (1.0, 1.0, 1.0, 1.0, 1.0)
    miss = revos.revos_expression_scores(gt, None, gt, type_id=0)
    assert (miss.j, miss.f, miss.a, miss.r) == (0.0, 0.0, 0.0, 0.0)


def test_aggregate_category_means_then_overall() -> None:
    e = revos.RevosExpressionScore
    scores = {
        "v_0": e(1.0, 1.0, 1.0, 1.0, 0),
        "v_1": e(0.0, 0.0, 0.0, 0.0, 0),
        "v_2": e(0.5, 0.5, 0.5, 0.5, 0),
        "v_3": e(0.9, 0.7, 0.8, 0.6, 1),
        "v_4": e(0.0, 0.0, 0.0, 0.0, 2),  # unused type: in neither category
    }
    out = revos.aggregate_revos(scores)
    assert out["referring"]["J"] == pytest.approx(0.5) and out["reason"]["J"] == pytest.approx(0.9)
    assert out["reason"]["JF"] == pytest.approx(0.8)
    assert out["overall"]["J"] == pytest.approx(0.7)  # (0.5 + 0.9)/2, not the pooled mean 0.6
    assert out["overall"]["JF"] == pytest.approx((0.5 + 0.8) / 2)


def test_aggregate_faithful_rounding() -> None:
    e = revos.RevosExpressionScore
    out = revos.aggregate_revos([e(0.123456, 0.0, 0.0, 0.0, 0), e(0.0, 0.0, 0.0, 0.0, 1)], faithful_rounding=True)
    assert out["referring"]["J"] == pytest.approx(0.1235)


def test_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="no reason expressions"):
        revos.aggregate_revos([revos.RevosExpressionScore(1, 1, 1, 1, 0)])
    with pytest.raises(DataError, match="field foreground"):
        revos.revos_robustness(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(DataError, match="field pred"):
        revos.revos_accuracy(np.zeros((2, 2)), np.zeros((2, 3)))
