"""Benchmark sama.data.video on a long mp4: sparse-load speed against raw PyAV, and peak memory per video length.

Writes synthetic H.264 clips with PyAV into a temporary folder, then measures (best of ``--repeats``):

1. the 32 sparse frames of SAMA.md §1.2 loaded with ``open_video(path).frames(idx)`` (index + decode), against
   raw PyAV decoding the same frames (a) by decoding the whole stream and keeping the wanted frames, and
   (b) by seeking to every wanted frame;
2. peak memory (RSS growth and tracemalloc peak, each measured in a fresh child process) of our sparse load for
   several video lengths, next to decoding the whole video into one array.

Run: ``.venv/bin/python benchmarks/bench_video.py`` (about half a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from sama.data.sampling import sparse_indices
from sama.data.video import open_video


def write_clip(path: Path, num_frames: int, height: int, width: int, gop: int) -> Path:
    """A moving square on a gradient, H.264 (libx264 ultrafast, B-frames on), ``gop`` frames per keyframe."""
    gradient = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    side = max(4, height // 4)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.options = {"g": str(gop), "bf": "2", "preset": "ultrafast"}
        for index in range(num_frames):
            image = gradient.copy()
            x = (index * 3) % (width - side)
            y = (index * 2) % (height - side)
            image[y : y + side, x : x + side] = (255, 64, 32)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ours(path: Path, indices: list[int]) -> np.ndarray:
    with open_video(path) as video:
        return video.frames(indices)


def raw_decode_all(path: Path, indices: list[int]) -> np.ndarray:
    """Naive PyAV: decode every frame in order, keep the wanted ones."""
    wanted, kept = set(indices), {}
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                kept[position] = frame.to_ndarray(format="rgb24")
            if len(kept) == len(wanted):
                break
    return np.stack([kept[i] for i in indices])


def raw_seek_each(path: Path, indices: list[int]) -> np.ndarray:
    """PyAV seeking to every wanted frame's timestamp, decoding forward from the keyframe."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = round(1 / (stream.average_rate * stream.time_base))
        for index in indices:
            target = index * step
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    out.append(frame.to_ndarray(format="rgb24"))
                    break
    return np.stack(out)


def best_of(repeats: int, function: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` value in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _memory_child(path: str, mode: str, queue: mp.Queue) -> None:
    """Measure one load in a fresh process: peak RSS growth and tracemalloc peak, in MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        base = _status_kib("VmRSS")
    except OSError:  # not Linux: fall back to the lifetime peak
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    if mode == "sparse":
        with open_video(path) as video:
            result = video.frames(sparse_indices(len(video)))
    else:
        with av.open(path) as container:
            result = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    try:
        grown = _status_kib("VmHWM") - base
    except OSError:
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    queue.put((grown / 1024, peak / 2**20, result.shape[0]))


def measure_memory(path: Path, mode: str) -> tuple[float, float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_memory_child, args=(str(path), mode, queue))
    process.start()
    result = queue.get(timeout=120)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="length of the long clip")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    parser.add_argument("--gop", type=int, default=30, help="frames per keyframe (x264 -g)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[300, 1000, 3000], help="lengths for the memory table"
    )
    args = parser.parse_args()
    height, width = args.size

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        long_clip = write_clip(Path(tmp) / "long.mp4", args.frames, height, width, args.gop)
        print(
            f"wrote {args.frames} frames {width}x{height} gop {args.gop}: "
            f"{long_clip.stat().st_size / 1024:.0f} KiB in {time.perf_counter() - start:.1f} s"
        )
        indices = sparse_indices(args.frames)
        reference = ours(long_clip, indices)
        for name, function in (("raw decode-all", raw_decode_all), ("raw seek-each", raw_seek_each)):
            if not np.array_equal(function(long_clip, indices), reference):
                raise SystemExit(f"{name} returned different frames from ours")
        t_ours = best_of(args.repeats, lambda: ours(long_clip, indices))
        t_open = best_of(args.repeats, lambda: open_video(long_clip).close())
        t_all = best_of(args.repeats, lambda: raw_decode_all(long_clip, indices))
        t_seek = best_of(args.repeats, lambda: raw_seek_each(long_clip, indices))
        print(f"\n{len(indices)} sparse frames of {args.frames} (best of {args.repeats}):")
        print(
            f"  ours (open + index + decode) {t_ours * 1000:8.1f} ms   (open + packet index alone {t_open * 1000:.1f} ms)"
        )
        print(f"  raw PyAV decode-all          {t_all * 1000:8.1f} ms   ratio raw/ours {t_all / t_ours:5.2f}x")
        print(f"  raw PyAV seek-each           {t_seek * 1000:8.1f} ms   ratio raw/ours {t_seek / t_ours:5.2f}x")

        print("\npeak memory per load (fresh process each; RSS growth / tracemalloc peak, MiB):")
        print(f"  {'frames':>6} {'ours sparse RSS':>16} {'tracemalloc':>12} {'decode-all RSS':>15} {'tracemalloc':>12}")
        for length in args.lengths:
            clip = (
                long_clip
                if length == args.frames
                else write_clip(Path(tmp) / f"clip{length}.mp4", length, height, width, args.gop)
            )
            sparse_rss, sparse_peak, _ = measure_memory(clip, "sparse")
            full_rss, full_peak, _ = measure_memory(clip, "all")
            print(f"  {length:>6} {sparse_rss:>16.1f} {sparse_peak:>12.1f} {full_rss:>15.1f} {full_peak:>12.1f}")


if __name__ == "__main__":
    main()
