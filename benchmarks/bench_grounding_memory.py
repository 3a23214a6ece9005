"""Benchmark: peak memory of a grounded SAM2 propagation does not grow with video length (streaming, bounded memory).

A tiny random SAM2 (the ``sama-tiny`` sam2 section) propagates K [SEG] prompts, conditioned on 5 frames, through a
lazily synthesised video (a square moving on a noisy background, each frame generated when SAM2 asks for it), once
for each length (default 100 and 10,000 frames). Each length runs in a fresh child process, after a short warm-up,
and we report:

- RSS growth: peak resident set size (``ru_maxrss``) during the propagation minus the peak after the warm-up;
- tracemalloc peak: Python-heap allocations during the propagation (torch tensors are not traced by tracemalloc);
- the SAM2 session size at the end (stored per-frame outputs) and wall time.

The masks are consumed as per-frame RLEs and dropped, as a caller storing results would. Goal: the 10,000-frame
peak is at most 1.2× the 100-frame peak. Run::

    .venv/bin/python benchmarks/bench_grounding_memory.py                 # 100 vs 10,000 frames (minutes)
    .venv/bin/python benchmarks/bench_grounding_memory.py --frames 50 500 # a quick check
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import tracemalloc

import numpy as np

GOAL_RATIO = 1.2
WARMUP_FRAMES = 20


class MovingSquareVideo:
    """A (T, H, W, 3) uint8 video whose frames are generated on demand (never held in memory)."""

    def __init__(self, num_frames: int, height: int = 96, width: int = 128, side: int = 24) -> None:
        self.num_frames, self.height, self.width, self.side = num_frames, height, width, side

    def __len__(self) -> int:
        return self.num_frames

    def frame(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        image = rng.integers(0, 50, size=(self.height, self.width, 3), dtype=np.uint8)
        x = (3 * index) % (self.width - self.side)
        y = (self.height - self.side) // 2
        image[y:y + self.side, x:x + self.side] = (220, 60, 60)
        return image


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_one(num_frames: int, num_objects: int, threads: int, queue: mp.Queue) -> None:
    """Child process: warm up, then measure one full propagation of ``num_frames`` frames."""
    import torch

    from sama.config import SamaConfig
    from sama.model.grounding import SamaGrounding

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = SamaConfig.from_name("sama-tiny")
    grounding = SamaGrounding(config.sam2, config.llm.hidden_size).eval()
    seg = torch.randn(num_objects, grounding.input_size)
    cond_frames = [0, 3, 6, 9, 12]  # e.g. the first five sparse frames (interval 3), SAMA.md §1.2
    for _ in grounding.propagate(MovingSquareVideo(WARMUP_FRAMES), seg, cond_frames).rle():
        pass

    baseline_kib = peak_rss_kib()
    tracemalloc.start()
    start = time.perf_counter()
    propagation = grounding.propagate(MovingSquareVideo(num_frames), seg, cond_frames)
    foreground = 0
    for _frame_idx, rles in propagation.rle():
        foreground += sum(1 for rle in rles if rle["counts"])
    seconds = time.perf_counter() - start
    _current, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queue.put({
        "frames": num_frames, "seconds": seconds, "rss_growth_mib": (peak_rss_kib() - baseline_kib) / 1024,
        "peak_rss_mib": peak_rss_kib() / 1024, "tracemalloc_peak_mib": traced_peak / 2**20,
        "stored_outputs": propagation.session.stored_frame_outputs(), "frames_encoded": propagation.frames_encoded,
    })


def measure(num_frames: int, num_objects: int, threads: int) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run_one, args=(num_frames, num_objects, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 10_000], help="video lengths to compare")
    parser.add_argument("--objects", type=int, default=1, help="number of [SEG] prompts propagated together")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny ops run fastest on one)")
    args = parser.parse_args()

    results = [measure(n, args.objects, args.threads) for n in args.frames]
    print(f"{'frames':>7} {'time s':>8} {'ms/frame':>9} {'peak RSS MiB':>13} {'RSS growth MiB':>15} "
          f"{'tracemalloc MiB':>16} {'stored outputs':>15} {'encoded':>8}")
    for r in results:
        print(f"{r['frames']:>7} {r['seconds']:>8.1f} {1000 * r['seconds'] / r['frames']:>9.1f} "
              f"{r['peak_rss_mib']:>13.1f} {r['rss_growth_mib']:>15.2f} {r['tracemalloc_peak_mib']:>16.3f} "
              f"{r['stored_outputs']:>15} {r['frames_encoded']:>8}")
    short, long = results[0], results[-1]
    rss_ratio = long["peak_rss_mib"] / short["peak_rss_mib"]
    traced_ratio = long["tracemalloc_peak_mib"] / max(short["tracemalloc_peak_mib"], 1e-9)
    verdict = "OK" if rss_ratio <= GOAL_RATIO else "ABOVE GOAL"
    print(f"peak RSS ratio {long['frames']}/{short['frames']} frames: {rss_ratio:.3f} (goal ≤ {GOAL_RATIO}) {verdict}")
    print(f"tracemalloc peak ratio: {traced_ratio:.3f}")


if __name__ == "__main__":
    main()
