"""Benchmark: the AdamW step over a preset's trainable parameters — the per-tensor loop (torch's CPU default) vs the
foreach and fused kernels (what ``sama.train.warm_start.adamw`` picks), measured side by side in one run and reported
as ratios to the fused step, plus the fused result's largest difference from the reference update.

The preset's freeze policy decides the parameters (``sama-smol``: LoRA, vision tower, projector, aggregator, prompt
encoder, grounding and SAM2, and the new-token embedding rows: 15.5 M values; before those rows were their own
parameter the whole 28.3 M-value embedding matrix was in the step).

    .venv/bin/python benchmarks/bench_optimizer.py                   # sama-smol, 1 thread
    .venv/bin/python benchmarks/bench_optimizer.py --preset sama-tiny --steps 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from sama.model.factory import create_model

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="sama-smol")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one untimed step)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.preset)
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"{args.preset}: {len(params)} trainable tensors, {sum(p.numel() for p in params) / 1e6:.1f} M values")
    torch.manual_seed(0)
    grads = [torch.randn_like(p) * 1e-3 for p in params]
    start = [p.detach().clone() for p in params]
    seconds, results = {}, {}
    for name, kwargs in VARIANTS.items():
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, **kwargs)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer.step()
        begin = time.perf_counter()
        for _ in range(args.steps):
            optimizer.step()
        seconds[name] = (time.perf_counter() - begin) / args.steps
        results[name] = [p.detach().clone() for p in params]
        del optimizer
    for name, value in seconds.items():
        print(f"{name:>8}: {value:.3f} s/step = {value / seconds['fused']:.1f}x the fused step")
    diff = max(float((a - b).abs().max()) for a, b in zip(results["fused"], results["loop"]))
    print(f"largest |fused - loop| parameter difference after {args.steps + 1} steps: {diff:.2e}")


if __name__ == "__main__":
    main()
