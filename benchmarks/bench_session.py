"""Benchmark: what a multi-turn ChatSession costs per turn and how that scales with video length.

Measured on a random model of a preset's architecture (default ``sama-tiny``; ``--preset sama-smol`` for the real
SmolLM2-135M LLM with random towers), all in one run, reported as ratios (CPU timings are noisy on a shared machine):

1. latency of turn 5 vs turn 1 within one session (goal ≤ 0.3×) — turn 1 with and without the per-video work
   (frame sampling + vision tower + spatial Q-Former, done once in ``ChatSession.__init__``);
2. LLM input tokens fed per turn (turn 1 and turn 2) for videos of 100, 1,000 and 10,000 frames (goal: constant);
3. peak memory of one grounded answer — the [SEG] masks propagated by SAM2 over every frame and kept as RLEs — for
   10,000 vs 100 frames (goal ≤ 1.2×), each length in a fresh child process, with a lazily generated video.

Every answer is forced to the same length (``--answer-tokens``, the stop word is masked out) so turns are comparable.

    .venv/bin/python benchmarks/bench_session.py                         # all three (minutes on CPU)
    .venv/bin/python benchmarks/bench_session.py --memory-frames 50 500  # a quick check
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sama.data.video import Video

LATENCY_GOAL = 0.3  # turn-5 / turn-1 latency (task goal)
MEMORY_GOAL = 1.2  # peak memory 10,000 / 100 frames (task goal)


class LazyVideo(Video):
    """A video whose frames are synthesised when read (a square moving on noise); nothing is held in memory."""

    def __init__(self, num_frames: int, height: int = 64, width: int = 80, side: int = 18) -> None:
        self.num_frames, self.height, self.width, self.side = num_frames, height, width, side

    def __len__(self) -> int:
        return self.num_frames

    def frame_at(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        image = rng.integers(0, 50, size=(self.height, self.width, 3), dtype=np.uint8)
        x = (2 * index) % (self.width - self.side)
        y = (self.height - self.side) // 2
        image[y:y + self.side, x:x + self.side] = (220, 60, 60)
        return image

    def _read_many(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            yield index, self.frame_at(index)

    def describe(self) -> str:
        return f"lazy synthetic video of {self.num_frames} frames"


def build_model(preset: str) -> Any:
    import torch

    from sama.model.factory import create_model

    torch.manual_seed(0)
    return create_model(preset, load_llm_weights=False).eval()


def fixed_length_answers(model: Any, tokens: int) -> None:
    """Make every answer exactly ``tokens`` long: the stop words can never win the argmax."""
    import torch

    from sama.model.processing import CHAT_TEMPLATES

    suffix = CHAT_TEMPLATES[model.config.llm.chat_template]["SUFFIX"]
    stop = set(model.tokenizer.encode(suffix, add_special_tokens=False)[:1]) | {model.tokenizer.eos_token_id}
    stop.discard(None)
    head = model.backbone.vlm.get_output_embeddings()
    with torch.no_grad():
        if head.bias is not None:
            head.bias[list(stop)] = -1e4
        else:
            head.register_forward_hook(lambda _m, _i, out: out.index_fill(-1, torch.tensor(sorted(stop)), -1e4))


QUESTIONS = ("What is <mask> doing?", "What colour is it?", "What happens to it after that?",
             "Which objects can you see?", "Where is it at the end?")


# ChatSession methods timed per turn: the turn's visual tokens (temporal Q-Former + prompt encoder), LLM forwards.
TIMED_PARTS = {"_turn_embeddings": "aggregator+prompts", "_step": "llm_forward"}


class PartTimer:
    """Accumulates the wall time spent in named ChatSession methods (the per-turn cost breakdown)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(TIMED_PARTS.values(), 0.0)

    def install(self) -> None:
        from sama.model.session import ChatSession

        for method, label in TIMED_PARTS.items():
            original = getattr(ChatSession, method)

            def timed(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_label] += time.perf_counter() - start

            setattr(ChatSession, method, timed)

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, dict.fromkeys(TIMED_PARTS.values(), 0.0)
        return out


def latency(model: Any, frames: int, answer_tokens: int, repeats: int) -> dict[str, Any]:
    """Per-turn wall time of a 5-turn dialogue (median over ``repeats`` sessions) and where it goes."""
    from sama.model.prompts import Box
    from sama.model.session import ChatSession

    timer = PartTimer()
    timer.install()
    video = LazyVideo(frames)
    per_turn: list[list[float]] = [[] for _ in QUESTIONS]
    parts: list[list[dict[str, float]]] = [[] for _ in QUESTIONS]
    setup: list[float] = []
    tokens: list[int] = []
    for _ in range(repeats + 1):  # the first session warms up
        start = time.perf_counter()
        session = ChatSession(model, video, max_new_tokens=answer_tokens)
        setup.append(time.perf_counter() - start)
        tokens = []
        for k, question in enumerate(QUESTIONS):
            refs = [Box(xyxy=(10, 20, 40, 50), frame=0)] if "<mask>" in question else []
            timer.take()
            start = time.perf_counter()
            turn = session.ask(question, refs)
            per_turn[k].append(time.perf_counter() - start)
            parts[k].append(timer.take())
            tokens.append(turn.new_tokens)
    turn_s = [float(np.median(t[1:])) for t in per_turn]
    setup_s = float(np.median(setup[1:]))
    breakdown = [{label: float(np.median([p[label] for p in turn_parts[1:]])) for label in turn_parts[0]}
                 for turn_parts in parts]
    return {"frames": frames, "answer_tokens": answer_tokens, "setup_s": setup_s, "turn_s": turn_s,
            "breakdown_s": breakdown,
            "llm_tokens_fed": tokens, "turn5_over_turn1": turn_s[4] / turn_s[0],
            "turn5_over_turn1_with_setup": turn_s[4] / (turn_s[0] + setup_s)}


def tokens_per_turn(model: Any, lengths: list[int]) -> dict[int, list[int]]:
    from sama.model.prompts import Box
    from sama.model.session import ChatSession

    out = {}
    for length in lengths:
        session = ChatSession(model, LazyVideo(length), max_new_tokens=2)
        first = session.ask(QUESTIONS[0], [Box(xyxy=(10, 20, 40, 50), frame=0)]).new_tokens
        out[length] = [first, session.ask(QUESTIONS[1]).new_tokens, len(session.sparse)]
    return out


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def memory_child(preset: str, frames: int, objects: int, threads: int, queue: Any) -> None:
    """Child process: a warm-up grounded answer on a short video, then one on ``frames`` frames."""
    import torch

    from sama.model.session import ChatSession

    torch.set_num_threads(threads)
    model = build_model(preset)
    fixed_length_answers(model, 2)

    from sama.data.masks import rle_encode

    def grounded_answer(length: int, report_every: int = 0) -> int:
        """Propagate K [SEG] masks over every frame, keeping compact RLEs (what ``sama predict`` stores)."""
        session = ChatSession(model, LazyVideo(length), max_new_tokens=2)
        turn = session.ask("Which objects can you see?")
        turn.seg_hidden = torch.randn(objects, model.grounding.input_size)  # as if K [SEG] were generated
        rles: list[list[Any]] = [[] for _ in range(objects)]
        for index, masks in turn.iter_masks():
            for k, mask in enumerate(masks):
                rles[k].append(rle_encode(mask) if mask.any() else None)
            if report_every and (index + 1) % report_every == 0:  # partial results survive an interrupted run
                print(f"  [{length} frames] {index + 1} done, peak RSS {peak_rss_kib() / 1024:.0f} MiB", flush=True)
        return sum(r is not None for per_object in rles for r in per_object)

    grounded_answer(20)
    baseline = peak_rss_kib()
    start = time.perf_counter()
    nonempty = grounded_answer(frames, report_every=max(frames // 10, 1) if frames >= 1000 else 0)
    queue.put({"frames": frames, "rss_baseline_mib": baseline / 1024, "rss_peak_mib": peak_rss_kib() / 1024,
               "rss_growth_mib": (peak_rss_kib() - baseline) / 1024, "seconds": time.perf_counter() - start,
               "nonempty_masks": nonempty})


def memory(preset: str, lengths: list[int], objects: int, threads: int) -> list[dict[str, Any]]:
    context = mp.get_context("spawn")
    results = []
    for frames in lengths:
        queue = context.Queue()
        child = context.Process(target=memory_child, args=(preset, frames, objects, threads, queue))
        child.start()
        results.append(queue.get())
        child.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sama-tiny", help="architecture (random weights): sama-tiny | sama-smol")
    parser.add_argument("--latency-frames", type=int, default=100)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--token-frames", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--memory-frames", type=int, nargs="+", default=[100, 10000])
    parser.add_argument("--objects", type=int, default=2, help="[SEG] objects in the grounded answer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=("latency", "tokens", "memory"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"preset": args.preset, "weights": "random (load_llm_weights=False)"}
    model = build_model(args.preset)
    fixed_length_answers(model, args.answer_tokens)
    if "latency" not in args.skip:
        report["latency"] = lat = latency(model, args.latency_frames, args.answer_tokens, args.repeats)
        print(f"latency ({lat['frames']} frames, {lat['answer_tokens']}-token answers): turns "
              + ", ".join(f"{t * 1000:.0f} ms" for t in lat["turn_s"]) + f"; per-video setup {lat['setup_s'] * 1000:.0f} ms")
        print(f"  LLM tokens fed per turn: {lat['llm_tokens_fed']}")
        for k in (0, 4):
            print(f"  turn {k + 1} breakdown: " + ", ".join(f"{label} {sec * 1000:.0f} ms"
                                                        for label, sec in lat["breakdown_s"][k].items()))
        print(f"  turn 5 / turn 1 = {lat['turn5_over_turn1']:.2f}× (with setup in turn 1: "
              f"{lat['turn5_over_turn1_with_setup']:.2f}×; goal ≤ {LATENCY_GOAL}×)")
    if "tokens" not in args.skip:
        report["tokens"] = toks = tokens_per_turn(model, args.token_frames)
        for length, (first, second, sparse) in toks.items():
            print(f"tokens: {length:>6} frames → turn 1 {first}, turn 2 {second} LLM input tokens ({sparse} sparse)")
    if "memory" not in args.skip:
        report["memory"] = mem = memory(args.preset, args.memory_frames, args.objects, args.threads)
        for row in mem:
            print(f"memory: {row['frames']:>6} frames → peak RSS {row['rss_peak_mib']:.0f} MiB (growth during the "
                  f"answer {row['rss_growth_mib']:.1f} MiB), {row['seconds']:.1f} s, {row['nonempty_masks']} masks")
        ratio = mem[-1]["rss_peak_mib"] / mem[0]["rss_peak_mib"]
        report["memory_peak_ratio"] = ratio
        print(f"  peak RSS {mem[-1]['frames']} / {mem[0]['frames']} frames = {ratio:.3f}× (goal ≤ {MEMORY_GOAL}×)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
