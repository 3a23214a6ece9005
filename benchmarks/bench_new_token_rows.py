"""Benchmark: one training step (forward, backward, clipping, AdamW) with the new-token rows as their own small
parameter (``SamaBackbone.enable_new_token_rows``, the default) against the form it replaced — the whole embedding
(and untied head) trainable, a gradient hook zeroing every other row — measured side by side in one run, the two
forms alternating, on the same batch; printed as seconds per step, their ratio and the loss of each form.

    .venv/bin/python benchmarks/bench_new_token_rows.py                  # sama-smol, 2 threads, 6 steps per form
    .venv/bin/python benchmarks/bench_new_token_rows.py --preset sama-tiny --steps 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from sama.data.sample import SampleTurn, TrainingSample
from sama.model.factory import create_model
from sama.train.warm_start import adamw


def full_matrix_form(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Switch ``model`` to the replaced form: hooks off, the rows written into the full matrices, which train with a
    gradient mask. Returns its trainable parameters (``new_token_rows`` left out)."""
    backbone = model.backbone
    for handle in backbone._row_hooks:
        handle.remove()
    backbone.sync_new_token_rows()
    backbone.new_token_rows.requires_grad_(False)
    mask = torch.zeros(backbone.input_embeddings().weight.shape[0], 1)
    mask[backbone.new_token_ids] = 1.0
    for matrix in backbone.new_token_row_parameters():
        matrix.requires_grad_(True)
        matrix.register_hook(lambda grad: grad * mask.to(grad))
    return [p for p in model.parameters() if p.requires_grad]


def chat_sample(frames: int = 24, size: int = 96) -> TrainingSample:
    """A 4-turn grounded chat like the synthetic world's (random pixels; one object referred to and grounded)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    obj = np.zeros((frames, size, size), dtype=bool)
    obj[:, 20:50, 30:60] = True
    pixels[obj] = 250
    turns = [SampleTurn("What is <mask> doing?", "The <p> bright square </p> [SEG] moves left.", [obj], [obj]),
             SampleTurn("What colour is it?", "It is white.", [], []),
             SampleTurn("Which object is the largest?", "The <p> bright square </p> [SEG].", [], [obj]),
             SampleTurn("Does anything enter the scene?", "No, nothing enters.", [], [])]
    return TrainingSample(frames=pixels, frame_indices=list(range(frames)), turns=turns, sample_id="bench-0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="sama-smol")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per form (after one untimed step each)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {"rows": create_model(args.preset), "full matrix": create_model(args.preset)}
    models["full matrix"].load_state_dict(models["rows"].state_dict())
    params = {"rows": [p for p in models["rows"].parameters() if p.requires_grad],
              "full matrix": full_matrix_form(models["full matrix"])}
    for name, group in params.items():
        print(f"{name:>11}: {sum(p.numel() for p in group) / 1e6:.1f} M trainable values")
    sample = chat_sample()
    processor = models["rows"].processor
    batch = processor.collate([processor(sample)])
    optimizers = {name: adamw([{"params": group, "weight_decay": 0.0}], lr=1e-4) for name, group in params.items()}

    def step(name: str) -> tuple[float, float]:
        model, optimizer = models[name], optimizers[name]
        begin = time.perf_counter()
        torch.manual_seed(1)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params[name], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - begin, float(loss)

    seconds: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, list[float]] = {name: [] for name in models}
    for name in models:
        step(name)  # untimed: first-call allocations
    for _ in range(args.steps):
        for name in models:
            took, loss = step(name)
            seconds[name].append(took)
            losses[name].append(loss)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    for name in models:
        print(f"{name:>11}: {median[name]:.3f} s/step (median of {args.steps}), losses "
              f"{', '.join(f'{v:.5f}' for v in losses[name])}")
    print(f"full matrix / rows: {median['full matrix'] / median['rows']:.2f}x the step time")


if __name__ == "__main__":
    main()
