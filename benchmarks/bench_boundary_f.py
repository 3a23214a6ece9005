"""Benchmark: DAVIS boundary F, ``sama.evaluate.metrics.davis`` vs a plain full-frame implementation of davis2017.

The baseline below is a straightforward implementation of the reference algorithm (METRICS.md §1.2): full-frame
``seg2bmap`` for both masks, two full-frame ``cv2.dilate`` calls with the disk, per frame. ``db_eval_boundary`` runs
the compiled numba kernel (``davis_kernel``: bit-packed crop, word-wide seg2bmap, a chain of horizontal dilation
levels OR-ed over the disk's rows, popcounts) when numba is installed, else the numpy bit-packed path
(``SAMA_DAVIS_KERNEL=numpy`` forces it). The kernel's one-off warm-up (numba import + JIT compile, or loading the
compiled code from ``__pycache__``) is timed separately and kept out of the per-frame figures. Both run
single-threaded (``cv2.setNumThreads(1)``) on the same generated 480×854 masks; values are checked to be identical
first. Then the
process-pool speed-up of ``map_videos`` over whole videos (each worker makes its video's masks and scores them, as a
real run reads and scores a video's PNGs) is measured side by side with the serial loop, best of 2 interleaved runs.

    python benchmarks/bench_boundary_f.py [--frames 40] [--videos 8] [--pool-frames 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from sama.evaluate.metrics.davis import (
    _compiled_kernel,
    bound_pixels,
    db_eval_boundary,
    disk,
    map_videos,
    seg2bmap,
)

HEIGHT, WIDTH = 480, 854


def baseline_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> np.ndarray:
    """Per-frame F exactly as davis2017 computes it: full-frame boundary maps and full-frame disk dilations."""
    out = np.zeros(gt.shape[0])
    kernel = disk(bound_pixels(gt.shape[1], gt.shape[2], bound_th)).astype(np.uint8)
    for t in range(gt.shape[0]):
        fg_b, gt_b = seg2bmap(pred[t]), seg2bmap(gt[t])
        fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel)
        gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel)
        fg_match, gt_match = np.sum(fg_b * gt_dil), np.sum(gt_b * fg_dil)
        n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
        if n_fg == 0 and n_gt == 0:
            p, r = 1.0, 1.0
        elif n_fg == 0:
            p, r = 1.0, 0.0
        elif n_gt == 0:
            p, r = 0.0, 1.0
        else:
            p, r = fg_match / n_fg, gt_match / n_gt
        out[t] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return out


def make_video(kind: str, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (T, H, W) GT / prediction pair: an ellipse of a given size moving, the prediction jittered and reshaped."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((frames, HEIGHT, WIDTH), np.uint8)
    pred = np.zeros_like(gt)
    if kind == "empty":
        return gt.astype(bool), pred.astype(bool)
    axes = {"small": (25, 40), "medium": (70, 110), "large": (150, 260)}[kind]
    for t in range(frames):
        cx, cy = 200 + 8 * t % 400, 240 + int(30 * np.sin(t / 5))
        cv2.ellipse(gt[t], (cx, cy), axes, 0, 0, 360, 1, -1)
        jitter = rng.integers(-6, 7, 2)
        cv2.ellipse(pred[t], (cx + int(jitter[0]), cy + int(jitter[1])), (axes[0] + 3, axes[1] - 4), 5, 0, 360, 1, -1)
    return gt.astype(bool), pred.astype(bool)


def per_frame_ms(fns: list, gt: np.ndarray, pred: np.ndarray, repeats: int = 5) -> list[float]:
    """Best-of-``repeats`` ms per frame of each function, runs interleaved so machine load hits all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn(gt, pred)
            best[k] = min(best[k], time.perf_counter() - start)
    return [b / gt.shape[0] * 1e3 for b in best]


POOL_KINDS = ("small", "medium", "large")


def _video_f(job: tuple[int, int]) -> float:
    """Mean F of one generated video (``job`` = (seed, frames)); object sizes vary over the videos."""
    seed, frames = job
    gt, pred = make_video(POOL_KINDS[seed % len(POOL_KINDS)], frames, seed)
    return float(db_eval_boundary(gt, pred).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--pool-frames", type=int, default=60)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    start = time.perf_counter()
    db_eval_boundary(np.ones((1, 8, 8), bool), np.zeros((1, 8, 8), bool))  # imports / compiles the kernel
    path = "numba kernel" if _compiled_kernel() is not None else "numpy bit-packed path"
    print(f"sama F path: {path}; warm-up (kernel import + JIT compile or cache load) "
          f"{time.perf_counter() - start:.2f} s, not in the per-frame figures")
    print(f"frame {HEIGHT}x{WIDTH}, {args.frames} frames per case, single thread, best of 5 interleaved")
    print(f"{'case':8s} {'baseline ms/frame':>18s} {'sama ms/frame':>14s} {'speed-up':>9s}")
    total_base = total_ours = 0.0
    for kind in ("empty", "small", "medium", "large"):
        gt, pred = make_video(kind, args.frames, seed=1)
        np.testing.assert_allclose(db_eval_boundary(gt, pred), baseline_f(gt, pred), atol=1e-12)
        base, ours = per_frame_ms([baseline_f, db_eval_boundary], gt, pred)
        total_base, total_ours = total_base + base, total_ours + ours
        print(f"{kind:8s} {base:18.3f} {ours:14.3f} {base / ours:8.1f}x")
    print(f"{'mean':8s} {total_base / 4:18.3f} {total_ours / 4:14.3f} {total_base / total_ours:8.1f}x")

    jobs = [(seed, args.pool_frames) for seed in range(args.videos)]
    best_serial = best_pool = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        serial = map_videos(_video_f, jobs, workers=1)
        best_serial = min(best_serial, time.perf_counter() - start)
        start = time.perf_counter()
        parallel = map_videos(_video_f, jobs, workers=args.workers)
        best_pool = min(best_pool, time.perf_counter() - start)
        assert serial == parallel
    print(f"map_videos: {args.videos} videos x {args.pool_frames} frames, serial {best_serial:.2f} s, "
          f"{args.workers} workers {best_pool:.2f} s, speed-up {best_serial / best_pool:.2f}x")


if __name__ == "__main__":
    main()
