"""The command line the checkpoint probes share: a checkpoint, the synthetic data it is probed on, the thread count."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from sama.model.modeling import SamaModel


def probe_inputs(description: str, splits: Sequence[str]) -> tuple[SamaModel, Path]:
    """Parse ``CHECKPOINT [--data DIR] [--threads N]``, check ``DIR`` holds ``splits``, and load the model (eval)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="outputs/data/synthetic-smol")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    for split in splits:
        if not (data / f"{split}.json").is_file():
            raise SystemExit(f"{args.data}: no synthetic {split} split ({split}.json); run `sama data synth --out "
                             f"{args.data}`")
    torch.set_num_threads(args.threads)
    return SamaModel.from_pretrained(args.checkpoint).eval(), data
