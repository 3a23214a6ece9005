"""The compiled boundary-F kernel (``davis_kernel``) and its numpy fallback against a plain davis2017 transcription."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sama.errors import ConfigError
from sama.evaluate.metrics import davis

kernel = pytest.importorskip("sama.evaluate.metrics.davis_kernel", reason="numba is not installed")


def _plain_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """METRICS.md §1.2 done the obvious way: full-frame seg2bmap, full-frame dilation with the disk (OpenCV)."""
    fg_b, gt_b = davis.seg2bmap(pred), davis.seg2bmap(gt)
    se = davis.disk(radius).astype(np.uint8)
    fg_match = int(np.sum(fg_b & cv2.dilate(gt_b.astype(np.uint8), se).astype(bool)))
    gt_match = int(np.sum(gt_b & cv2.dilate(fg_b.astype(np.uint8), se).astype(bool)))
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    precision = 1.0 if n_fg == 0 else (0.0 if n_gt == 0 else fg_match / n_fg)
    recall = 0.0 if n_fg == 0 else (1.0 if n_gt == 0 else gt_match / n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _mask(draw: st.DrawFn, height: int, width: int) -> np.ndarray:
    """A mask of one of the shapes that break crop/edge logic: noise, empty, full, one pixel, an edge-touching box."""
    kind = draw(st.sampled_from(["noise", "empty", "full", "pixel", "box", "sparse"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    m = np.zeros((height, width), bool)
    if kind == "noise":
        m = rng.random((height, width)) < rng.uniform(0.1, 0.9)
    elif kind == "sparse":
        m = rng.random((height, width)) < 0.03
    elif kind == "full":
        m[:] = True
    elif kind == "pixel":
        m[rng.integers(height), rng.integers(width)] = True
    elif kind == "box":
        y0, x0 = int(rng.integers(height)), int(rng.integers(width))
        y1 = height if rng.random() < 0.5 else int(rng.integers(y0 + 1, height + 1))
        x1 = width if rng.random() < 0.5 else int(rng.integers(x0 + 1, width + 1))
        m[y0:y1, x0:x1] = True
    return m


@st.composite
def _volumes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    height = draw(st.integers(1, 24))
    width = draw(st.sampled_from([1, 2, 7, 8, 9, 31, 63, 64, 65, 127, 128, 129, 191, 200]))
    frames = draw(st.integers(1, 3))
    radius = draw(st.sampled_from([1, 2, 3, 5, 8, 13, 31, 63]))
    gt = np.stack([_mask(draw, height, width) for _ in range(frames)])
    pred = np.stack([_mask(draw, height, width) for _ in range(frames)])
    return gt, pred, radius


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_volumes())
def test_compiled_and_numpy_paths_equal_plain_reference(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    gt, pred, radius = case
    plain = [_plain_f(gt[t], pred[t], radius) for t in range(gt.shape[0])]
    np.testing.assert_allclose(davis._f_compiled(pred, gt, radius, kernel), plain, rtol=0, atol=1e-12)
    np.testing.assert_allclose(davis._f_packed(pred, gt, radius), plain, rtol=0, atol=1e-12)


def test_compiled_path_exact_on_real_frame_size_and_many_frames() -> None:
    """480×854 (DAVIS 480p) frames, more than one kernel call, objects of every size incl. touching the image edges."""
    rng = np.random.default_rng(0)
    frames = davis._KERNEL_FRAMES + 5
    yy, xx = np.mgrid[:480, :854]
    gt = np.zeros((frames, 480, 854), bool)
    pred = np.zeros_like(gt)
    for t in range(frames):
        cy, cx, ay, ax = rng.integers(0, 480), rng.integers(0, 854), rng.integers(1, 300), rng.integers(1, 500)
        gt[t] = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
        pred[t] = np.roll(gt[t], (int(rng.integers(-9, 10)), int(rng.integers(-9, 10))), axis=(0, 1))
    gt[3] = False
    pred[4] = False
    radius = davis.bound_pixels(480, 854)
    plain = [_plain_f(gt[t], pred[t], radius) for t in range(frames)]
    np.testing.assert_allclose(davis.db_eval_boundary(gt, pred), plain, rtol=0, atol=1e-12)


def test_counts_are_the_reference_integers() -> None:
    """The kernel's raw counts (not just F) equal the plain boundary sizes and match counts."""
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(4)
    gt = rng.random((2, 30, 150)) < 0.5
    pred = rng.random((2, 30, 150)) < 0.5
    out = np.zeros((2, 4), np.int64)
    kernel.boundary_counts(kernel.pack_volume(pred), kernel.pack_volume(gt), 2, 30, 150, *kernel.dilation_plan(4), out)
    se = davis.disk(4)
    for t in range(2):
        fg_b, gt_b = davis.seg2bmap(pred[t]), davis.seg2bmap(gt[t])
        expected = [fg_b.sum(), gt_b.sum(), (fg_b & binary_dilation(gt_b, se)).sum(), (gt_b & binary_dilation(fg_b, se)).sum()]
        assert out[t].tolist() == [int(v) for v in expected]


def test_dilation_plan_for_davis_radius() -> None:
    """r = 8 (480p, METRICS.md §1.2): disk row half-widths 8,7,7,7,6,6,5,3,0; levels 0,1,3,5,6,7,8."""
    base, step, level_of_dy = kernel.dilation_plan(8)
    widths = np.cumsum(step)  # each level widens the previous one
    assert base.tolist() == [0, 0, 1, 2, 3, 4, 5]
    assert widths.tolist() == [0, 1, 3, 5, 6, 7, 8]
    assert widths[level_of_dy].tolist() == [8, 7, 7, 7, 6, 6, 5, 3, 0]


@pytest.mark.parametrize("radius", range(1, 64))
def test_dilation_plan_covers_every_disk_row_without_gaps(radius: int) -> None:
    base, step, level_of_dy = kernel.dilation_plan(radius)
    widths = [0]
    for b, s in zip(base[1:], step[1:]):
        assert 1 <= s <= 2 * widths[b] + 1  # the shifted copies touch the original: no gap
        widths.append(widths[b] + s)
    assert [widths[i] for i in level_of_dy] == [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]


@pytest.mark.parametrize("radius", [0, 64])
def test_dilation_plan_rejects_radius_outside_a_word(radius: int) -> None:
    with pytest.raises(ValueError, match=r"needs 0 < radius < 64, got"):
        kernel.dilation_plan(radius)


def test_kernel_choice_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(davis.KERNEL_ENV, "fortran")
    with pytest.raises(ConfigError, match=r"SAMA_DAVIS_KERNEL='fortran': expected one of auto, numba, numpy"):
        davis.db_eval_boundary(np.ones((4, 4), bool), np.ones((4, 4), bool))
    monkeypatch.setenv(davis.KERNEL_ENV, "numpy")
    assert davis._compiled_kernel() is None
    monkeypatch.setenv(davis.KERNEL_ENV, "numba")
    assert davis._compiled_kernel() is kernel
    monkeypatch.setattr(davis, "_import_kernel", lambda: None)  # as if numba were not installed
    with pytest.raises(ConfigError, match=r"SAMA_DAVIS_KERNEL=numba but numba is not installed"):
        davis._compiled_kernel()
    monkeypatch.setenv(davis.KERNEL_ENV, "auto")
    assert davis._compiled_kernel() is None


def test_default_uses_compiled_kernel_and_numpy_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    gt = rng.random((5, 40, 90)) < 0.4
    pred = rng.random((5, 40, 90)) < 0.4
    monkeypatch.delenv(davis.KERNEL_ENV, raising=False)
    with monkeypatch.context() as patched:
        patched.setattr(davis, "_f_packed", lambda *a: pytest.fail("numpy path used although numba is installed"))
        compiled = davis.db_eval_boundary(gt, pred, bound_th=3)
    monkeypatch.setenv(davis.KERNEL_ENV, "numpy")
    with monkeypatch.context() as patched:
        patched.setattr(davis, "_f_compiled", lambda *a: pytest.fail("compiled path used under numpy"))
        fallback = davis.db_eval_boundary(gt, pred, bound_th=3)
    np.testing.assert_array_equal(compiled, fallback)
    np.testing.assert_allclose(compiled, [_plain_f(gt[t], pred[t], 3) for t in range(5)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 7), (2, 3, 5), (3, 8, 8), (2, 17, 129)])
def test_pack_volume_equals_numpy_packbits_even_for_non_canonical_bools(shape: tuple[int, int, int]) -> None:
    """Any non-zero byte is a set pixel, as in np.packbits (a 0/255 PNG viewed as bool must not corrupt the bits)."""
    rng = np.random.default_rng(sum(shape))
    raw = rng.choice(np.array([0, 1, 2, 128, 255], np.uint8), size=shape)
    volume = raw.view(bool)
    words = kernel.pack_volume(volume)
    expected = np.packbits(raw.reshape(-1) != 0, bitorder="little")
    assert words.dtype == np.uint64 and words.size * 8 >= expected.size + 8 * 3
    np.testing.assert_array_equal(words.view(np.uint8)[: expected.size], expected)
    assert not words.view(np.uint8)[expected.size :].any()  # the spare words are zero


@pytest.mark.parametrize("choice", ["numba", "numpy"])
@pytest.mark.parametrize("shape", [(2, 0, 5), (2, 5, 0), (1, 0, 0), (0, 4, 4)])
def test_frames_without_pixels_score_one_on_both_paths(monkeypatch: pytest.MonkeyPatch, choice: str,
                                                       shape: tuple[int, int, int]) -> None:
    monkeypatch.setenv(davis.KERNEL_ENV, choice)
    f = davis.db_eval_boundary(np.zeros(shape, bool), np.zeros(shape, bool))
    assert f.dtype == np.float64 and f.tolist() == [1.0] * shape[0]
