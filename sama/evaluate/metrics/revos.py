"""ReVOS metrics (METRICS.md §5): per-frame J, F, accuracy A and robustness R; category and overall means.

Value convention: our API takes bool masks and converts them to 0/1 uint8 before A and R, which is what the VISA
script expects from correct 0/1 prediction PNGs. ``faithful_uint8=True`` instead uses the raw uint8 values exactly as
``cilinyan/VISA:tools/metrics.py`` does: a 0/255 prediction corrupts A and R, and an overlap-summed GT value of 2 makes
``1 - gt`` underflow to 255 in R (uint8 arithmetic wraps modulo 256).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from sama.errors import DataError
from sama.evaluate.metrics.davis import BOUND_TH, j_and_f

# METRICS.md §5: R normalises false positives by the foreground area plus this epsilon.
ROBUSTNESS_EPS = 1e-6
# METRICS.md §5: expression categories by `type_id` (2 is defined but unused and enters neither mean).
TYPE_REFERRING = 0
TYPE_REASON = 1
CATEGORY_NAMES: dict[int, str] = {TYPE_REFERRING: "referring", TYPE_REASON: "reason"}
METRIC_KEYS: tuple[str, ...] = ("J", "F", "A", "R", "JF")


def _volume(x: np.ndarray, name: str, faithful_uint8: bool) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"expected an (H, W) or (T, H, W) mask, got shape {arr.shape}", field=name)
    if faithful_uint8:
        return arr.astype(np.uint8, copy=False)
    return (arr != 0).astype(np.uint8)


def revos_accuracy(gt: np.ndarray, pred: np.ndarray, faithful_uint8: bool = False) -> np.ndarray:
    """A per frame: ``mean(gt == pred)`` over pixels (§5), float64 array of shape (T,)."""
    g, p = _volume(gt, "gt", faithful_uint8), _volume(pred, "pred", faithful_uint8)
    if g.shape != p.shape:
        raise DataError(f"ground truth {g.shape} and prediction {p.shape} shapes differ", field="pred")
    return (g == p).mean(axis=(-2, -1), dtype=np.float64)


def revos_robustness(
    gt: np.ndarray, pred: np.ndarray, foreground: np.ndarray, faithful_uint8: bool = False
) -> np.ndarray:
    """R per frame: ``max(1 − Σ((1 − gt)·pred) / (Σ foreground + 1e-6), 0)`` (§5), float64 array of shape (T,).

    ``foreground`` is the union of all annotated objects of the video in that frame.
    """
    g = _volume(gt, "gt", faithful_uint8)
    p = _volume(pred, "pred", faithful_uint8)
    fg = _volume(foreground, "foreground", faithful_uint8)
    if not g.shape == p.shape == fg.shape:
        raise DataError(f"shapes differ: gt {g.shape}, pred {p.shape}, foreground {fg.shape}", field="foreground")
    # uint8 arithmetic on purpose: in faithful mode it wraps exactly like the reference; with 0/1 values it cannot.
    neg = ((np.uint8(1) - g) * p).sum(axis=(-2, -1), dtype=np.float64)
    pos = fg.sum(axis=(-2, -1), dtype=np.float64)
    return np.maximum(1 - neg / (pos + ROBUSTNESS_EPS), 0.0)


@dataclass(frozen=True)
class RevosExpressionScore:
    """Means over the frames of one expression, as fractions."""

    j: float
    f: float
    a: float
    r: float
    type_id: int

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def revos_expression_scores(
    gt_volume: np.ndarray,
    pred_volume: np.ndarray | None,
    foreground_volume: np.ndarray,
    type_id: int,
    faithful_uint8: bool = False,
    bound_th: float = BOUND_TH,
) -> RevosExpressionScore:
    """J, F, A, R of one expression: per-frame values averaged over all frames (§5).

    A missing prediction (``None``) scores 0 on every metric, as the VISA script does for a missing video folder.
    """
    if pred_volume is None:
        return RevosExpressionScore(0.0, 0.0, 0.0, 0.0, type_id)
    j, f = j_and_f(gt_volume, pred_volume, bound_th=bound_th)
    a = revos_accuracy(gt_volume, pred_volume, faithful_uint8)
    r = revos_robustness(gt_volume, pred_volume, foreground_volume, faithful_uint8)
    return RevosExpressionScore(float(j.mean()), float(f.mean()), float(a.mean()), float(r.mean()), type_id)


def aggregate_revos(
    scores: Iterable[RevosExpressionScore] | Mapping[str, RevosExpressionScore], faithful_rounding: bool = False
) -> dict[str, dict[str, float]]:
    """Category means and overall (§5): ``{referring|reason|overall: {J, F, A, R, JF}}`` as fractions.

    - category mean = mean over the expressions with that ``type_id`` (0 referring, 1 reason; 2 ignored);
      its JF = (J + F)/2 of the category means;
    - overall = the mean of the two category means (not a pooled mean).

    ``faithful_rounding=True`` rounds each expression's ×100 values to 2 decimals before averaging, as VISA does
    (results are still returned as fractions). A category with no expression raises ``DataError``.
    """
    items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    out: dict[str, dict[str, float]] = {}
    for type_id, name in CATEGORY_NAMES.items():
        rows = [s for s in items if s.type_id == type_id]
        if not rows:
            raise DataError(f"no {name} expressions (type_id {type_id}); the overall ReVOS score needs both categories")
        vals = np.array([[s.j, s.f, s.a, s.r] for s in rows], dtype=np.float64)
        if faithful_rounding:
            vals = np.round(vals * 100, 2) / 100
        j, f, a, r = vals.mean(axis=0)
        out[name] = {"J": float(j), "F": float(f), "A": float(a), "R": float(r), "JF": float((j + f) / 2)}
    out["overall"] = {k: (out["referring"][k] + out["reason"][k]) / 2 for k in METRIC_KEYS}
    return out
