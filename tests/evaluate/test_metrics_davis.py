"""DAVIS J/F, statistics, MeViS and Ref-DAVIS17 helpers against METRICS.md §1–§3 and the davis2017 reference values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as cocomask

from sama.errors import ConfigError, DataError
from sama.evaluate.metrics import davis

FIXTURE = Path(__file__).parent / "fixtures" / "davis_reference.json"


def _square(h: int = 480, w: int = 854, shift: int = 0) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[100:200, 100 + shift : 200 + shift] = True
    return m


def _reference_dilation_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """Plain full-frame transcription of METRICS.md §1.2 (scipy dilation), an independent check of the fast path."""
    from scipy.ndimage import binary_dilation

    fg_b, gt_b = davis.seg2bmap(pred), davis.seg2bmap(gt)
    se = davis.disk(radius)
    fg_match = np.sum(fg_b & binary_dilation(gt_b, se))
    gt_match = np.sum(gt_b & binary_dilation(fg_b, se))
    return davis._f_from_counts(int(fg_b.sum()), int(gt_b.sum()), int(fg_match), int(gt_match))


# ------------------------------------------------------------------------------------------------ constants
def test_constants_pinned() -> None:
    assert davis.BOUND_TH == 0.008
    assert davis.RECALL_THRESHOLD == 0.5
    assert davis.DECAY_BINS == 4
    assert davis.MAX_UNSUPERVISED_PROPOSALS == 20
    assert davis.REF_DAVIS_ANNOTATORS == 4
    assert davis.REF_DAVIS_SCORE_THRESHOLD == 0.5 and davis.REF_DAVIS_BACKGROUND_SCORE == 0.1


@pytest.mark.parametrize(
    ("h", "w", "expected"), [(480, 854, 8), (360, 640, 6), (720, 1280, 12), (1080, 1920, 18), (256, 256, 3)]
)
def test_bound_pix_table(h: int, w: int, expected: int) -> None:
    assert davis.bound_pixels(h, w) == expected


def test_bound_pixels_absolute_and_errors() -> None:
    assert davis.bound_pixels(480, 854, 5) == 5
    with pytest.raises(ConfigError, match="integer"):
        davis.bound_pixels(480, 854, 2.5)
    with pytest.raises(ConfigError, match="> 0"):
        davis.bound_pixels(480, 854, 0)


def test_disk_matches_definition() -> None:
    d = davis.disk(8)
    assert d.shape == (17, 17) and int(d.sum()) == 197
    assert d[8, 0] and d[0, 8] and not d[0, 0] and not d[1, 2]
    assert davis.disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


# ------------------------------------------------------------------------------------------------ seg2bmap
def test_seg2bmap_square_has_400_pixels_offset_towards_origin() -> None:
    b = davis.seg2bmap(_square())
    assert int(b.sum()) == 400
    assert b[99, 150] and b[150, 99]  # outside pixels just above / left of the object
    assert not b[100, 150] and b[199, 150]  # the first object row is not marked, the last one is


def test_seg2bmap_last_row_and_column_rules() -> None:
    m = np.zeros((4, 5), bool)
    m[-1, 2] = True  # last row: only the east neighbour counts
    b = davis.seg2bmap(m)
    assert b[-1].astype(int).tolist() == [0, 1, 1, 0, 0]
    m = np.ones((3, 3), bool)
    assert not davis.seg2bmap(m).any()  # full mask: no boundary, bottom-right is 0
    vol = np.stack([m, np.zeros_like(m)])
    assert davis.seg2bmap(vol).shape == (2, 3, 3)


# ------------------------------------------------------------------------------------------------ J and F
@pytest.mark.parametrize(
    ("gt_empty", "pred_kind", "j", "f"),
    [(True, "empty", 1.0, 1.0), (True, "square", 0.0, 0.0), (False, "empty", 0.0, 0.0), (False, "same", 1.0, 1.0)],
)
def test_empty_mask_cases(gt_empty: bool, pred_kind: str, j: float, f: float) -> None:
    gt = np.zeros((60, 80), bool) if gt_empty else _block(60, 80)
    pred = {"empty": np.zeros((60, 80), bool), "square": _block(60, 80), "same": gt.copy()}[pred_kind]
    jj, ff = davis.j_and_f(gt, pred)
    assert jj.shape == (1,) and ff.shape == (1,)
    assert jj[0] == j and ff[0] == f


def _block(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[10:30, 20:50] = True
    return m


@pytest.mark.parametrize(
    ("shift", "j", "f"),
    [(0, 1.0, 1.0), (5, 0.904762, 1.0), (8, 0.851852, 1.0), (9, 0.834862, 0.54), (10, 0.818182, 0.535),
     (20, 0.666667, 0.485)],
)
def test_shifted_square_table(shift: int, j: float, f: float) -> None:
    gt, pred = _square(), _square(shift=shift)
    jj, ff = davis.j_and_f(gt, pred)
    assert jj[0] == pytest.approx(j, abs=1e-6)
    assert ff[0] == pytest.approx(f, abs=1e-6)
    assert ff[0] == pytest.approx(_reference_dilation_f(gt, pred, 8), abs=1e-12)


def test_void_masks_reference_case() -> None:
    gt = np.zeros((2, 200, 200), bool)
    void = np.zeros_like(gt)
    mask = np.zeros_like(gt)
    gt[:, 100:150, 100:150] = True
    void[:, 50:100, 100:150] = True
    mask[:, 50:150, 100:150] = True
    assert davis.db_eval_iou(gt, mask, void).mean() == 1.0
    assert davis.db_eval_boundary(gt, mask, void).mean() == 1.0
    assert davis.db_eval_iou(gt, mask).mean() == pytest.approx(0.5)  # without void the extra half counts


def test_matches_davis2017_reference_fixture() -> None:
    doc = json.loads(FIXTURE.read_text())
    assert doc["bound_th"] == davis.BOUND_TH and len(doc["cases"]) >= 10

    def dec(r: dict | None) -> np.ndarray | None:
        if r is None:
            return None
        return cocomask.decode({"size": r["size"], "counts": r["counts"].encode()}).astype(bool)

    for case in doc["cases"]:
        gt, pred, void = dec(case["gt"]), dec(case["pred"]), dec(case["void"])
        j, f = davis.j_and_f(gt, pred, void)
        assert j[0] == pytest.approx(case["J"], abs=1e-6), case["name"]
        assert f[0] == pytest.approx(case["F"], abs=1e-6), case["name"]


def test_fast_f_equals_plain_dilation_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for h, w in [(1, 1), (1, 9), (7, 1), (12, 17), (40, 33)]:
        gt = rng.random((6, h, w)) < 0.4
        pred = rng.random((6, h, w)) < 0.4
        fast = davis.db_eval_boundary(gt, pred, bound_th=2)
        plain = [_reference_dilation_f(gt[t], pred[t], 2) for t in range(6)]
        np.testing.assert_allclose(fast, plain, atol=1e-12)


def test_packed_canvas_matches_per_frame_path_across_chunks() -> None:
    """> 32 frames with very different crops (tiny, full-frame, touching every edge): no leakage between crops."""
    rng = np.random.default_rng(3)
    frames = 70
    gt = np.zeros((frames, 48, 70), bool)
    pred = np.zeros_like(gt)
    for t in range(frames):
        y0, x0 = rng.integers(0, 40), rng.integers(0, 60)
        y1, x1 = rng.integers(y0 + 1, 49), rng.integers(x0 + 1, 71)
        gt[t, y0:y1, x0:x1] = True
        pred[t] = np.roll(gt[t], (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
        if t % 7 == 0:
            pred[t] |= rng.random((48, 70)) < 0.05
        if t % 11 == 0:
            gt[t] = False
    kernel = davis.disk(3).view(np.uint8)
    per_frame = [davis._f_frame(pred[t].view(np.uint8), gt[t].view(np.uint8), kernel) for t in range(frames)]
    np.testing.assert_allclose(davis.db_eval_boundary(gt, pred, bound_th=3), per_frame, atol=1e-12)


@pytest.mark.parametrize(("height", "width", "radius"), [(9, 63, 5), (12, 64, 8), (7, 65, 17), (10, 129, 30),
                                                      (5, 200, 63)])
def test_packed_path_exact_at_word_boundaries_and_radii(height: int, width: int, radius: int) -> None:
    """Crops starting at every bit offset, touching every image edge, spanning word boundaries, radius 1…63."""
    rng = np.random.default_rng(height * width + radius)
    frames = 24
    gt = np.zeros((frames, height, width), bool)
    pred = np.zeros_like(gt)
    for t in range(frames):
        x0 = t % 9 if t % 3 else int(rng.integers(0, width))  # every col0 % 8, plus random starts
        x1 = width if t % 4 == 0 else int(rng.integers(x0 + 1, width + 1))  # some crops reach the right edge
        y0, y1 = (0, height) if t % 5 == 0 else (int(rng.integers(0, height)), height if t % 2 else height - 1)
        gt[t, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        pred[t] = np.roll(gt[t], int(rng.integers(-radius - 2, radius + 3)), axis=1) ^ (rng.random((height, width)) < 0.03)
    fast = davis.db_eval_boundary(gt, pred, bound_th=radius)
    plain = [_reference_dilation_f(gt[t], pred[t], radius) for t in range(frames)]
    np.testing.assert_allclose(fast, plain, atol=1e-12)


def test_packed_groups_mix_tiny_and_full_frame_crops() -> None:
    """More frames than one packing chunk, with crop sizes that force several canvas groups of different shapes."""
    rng = np.random.default_rng(11)
    frames = 40
    gt = np.zeros((frames, 90, 300), bool)
    pred = np.zeros_like(gt)
    for t in range(frames):
        if t % 3 == 0:
            gt[t] = rng.random((90, 300)) < 0.5  # full-frame noise
        elif t % 3 == 1:
            gt[t, 40:43, 150:152] = True  # a few pixels
        pred[t] = np.roll(gt[t], (int(rng.integers(-2, 3)), int(rng.integers(-4, 5))), axis=(0, 1))
    fast = davis.db_eval_boundary(gt, pred, bound_th=4)
    plain = [_reference_dilation_f(gt[t], pred[t], 4) for t in range(frames)]
    np.testing.assert_allclose(fast, plain, atol=1e-12)


def test_large_radius_falls_back_to_opencv_dilation() -> None:
    rng = np.random.default_rng(5)
    gt = rng.random((2, 30, 200)) < 0.3
    pred = rng.random((2, 30, 200)) < 0.3
    fast = davis.db_eval_boundary(gt, pred, bound_th=70)  # radius ≥ 64: per-frame OpenCV path
    np.testing.assert_allclose(fast, [_reference_dilation_f(gt[t], pred[t], 70) for t in range(2)], atol=1e-12)


def test_volume_and_frame_inputs_agree_and_dtype() -> None:
    rng = np.random.default_rng(0)
    gt = rng.random((3, 30, 40)) < 0.3
    pred = (rng.random((3, 30, 40)) < 0.3).astype(np.uint8) * 255  # any non-zero is foreground
    j, f = davis.j_and_f(gt, pred)
    assert j.dtype == np.float64 and f.dtype == np.float64 and j.shape == (3,)
    for t in range(3):
        jt, ft = davis.j_and_f(gt[t], pred[t])
        assert jt[0] == j[t] and ft[0] == f[t]


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(DataError, match=r"field pred.*shapes differ"):
        davis.db_eval_iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(DataError, match="field void"):
        davis.db_eval_boundary(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"\(H, W\) or \(T, H, W\)"):
        davis.db_eval_iou(np.zeros(4), np.zeros(4))


# ------------------------------------------------------------------------------------------------ statistics
def test_statistics_worked_example() -> None:
    x = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert davis.decay_bin_indices(10).tolist() == [0, 2, 5, 7, 9]
    m, r, d = davis.db_statistics(x)
    assert m == pytest.approx(0.55) and r == pytest.approx(0.5) and d == pytest.approx(0.7)


def test_statistics_uint8_wrap_faithful_vs_fixed() -> None:
    assert davis.decay_bin_indices(300, faithful=True).tolist() == [0, 75, 150, 224, 43]
    assert davis.decay_bin_indices(300).tolist() == [0, 75, 150, 224, 299]
    x = np.linspace(1, 0, 300)
    assert np.isnan(davis.db_statistics(x, faithful=True)[2])
    fixed = davis.db_statistics(x)[2]
    assert fixed == pytest.approx(np.mean(x[0:76]) - np.mean(x[224:300]))
    short = np.linspace(1, 0, 200)
    assert davis.db_statistics(short, faithful=True) == davis.db_statistics(short)


def test_statistics_nan_handling_and_errors() -> None:
    m, r, _ = davis.db_statistics([np.nan, 1.0, 0.0, 0.6])
    assert m == pytest.approx(1.6 / 3) and r == pytest.approx(0.5)  # NaN > 0.5 is False and still counted
    with pytest.raises(DataError, match="non-empty 1-D"):
        davis.db_statistics([])


# ------------------------------------------------------------------------------------------------ MeViS / Ref-DAVIS
def test_mevis_expression_and_aggregation() -> None:
    gt = np.zeros((4, 20, 20), bool)
    gt[:2, 5:10, 5:10] = True
    pred = gt.copy()
    pred[1] = False
    j, f = davis.mevis_expression_scores(gt, pred)
    assert j == pytest.approx(0.75) and f == pytest.approx(0.75)  # frames 2–3 both empty → 1
    assert davis.mevis_expression_scores(gt, None) == (0.0, 0.0)
    agg = davis.aggregate_expressions([(0.75, 0.75), (0.25, 0.5)])
    assert agg["J"] == pytest.approx(0.5) and agg["F"] == pytest.approx(0.625)
    assert agg["J&F"] == pytest.approx(0.5625) and agg["num_expressions"] == 2
    assert davis.ref_davis_expression_protocol([(1.0, 0.0)])["J&F"] == 0.5
    with pytest.raises(DataError, match="no expressions"):
        davis.aggregate_expressions([])


def test_merge_annotator_masks_threshold_and_background() -> None:
    a = np.array([[[0.9, 0.4, 0.6]]])
    b = np.array([[[0.7, 0.45, 0.8]]])
    labels = davis.merge_annotator_masks([a, b])
    assert labels.tolist() == [[[1, 0, 2]]]


def test_unsupervised_matching_permuted_gt_scores_one() -> None:
    gt = np.zeros((3, 20, 30), np.int64)
    gt[:, 2:8, 2:8] = 1
    gt[:, 10:18, 12:25] = 2
    proposals = np.where(gt == 1, 2, np.where(gt == 2, 1, 0))  # swapped labels
    res = davis.unsupervised_davis_scores(gt, proposals)
    assert res["assignment"] == [2, 1]
    assert np.all(res["J"] == 1.0) and np.all(res["F"] == 1.0)
    missing = davis.unsupervised_davis_scores(gt, np.where(gt == 1, 1, 0))
    assert missing["assignment"] == [1, 0] and np.all(missing["J"][1] == 0.0)
    with pytest.raises(DataError, match="at most 20"):
        davis.unsupervised_davis_scores(gt, np.full_like(gt, 21))


def test_ref_davis_annotator_protocol_mean_over_sets() -> None:
    gt = np.zeros((2, 16, 16), np.int64)
    gt[:, 4:10, 4:10] = 1
    perfect = {"v": gt.copy()}
    empty: dict[str, np.ndarray] = {}
    res = davis.ref_davis_annotator_protocol({"v": gt}, [perfect, perfect, empty, empty])
    assert [s["J"] for s in res["per_annotator"]] == [1.0, 1.0, 0.0, 0.0]
    assert res["J"] == 0.5 and res["F"] == 0.5 and res["J&F"] == 0.5


def _score_video(seed: int) -> float:
    rng = np.random.default_rng(seed)
    gt = rng.random((2, 20, 20)) < 0.5
    return float(davis.db_eval_boundary(gt, gt ^ (rng.random(gt.shape) < 0.1)).mean())


def test_map_videos_process_pool_keeps_order() -> None:
    serial = davis.map_videos(_score_video, range(4), workers=1)
    parallel = davis.map_videos(_score_video, range(4), workers=2)
    assert serial == parallel and len(serial) == 4

