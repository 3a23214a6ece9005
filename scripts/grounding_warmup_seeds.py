"""Grounding warm-up loss of the sama-smol recipe across SAM2 init draws: how much does the recipe depend on luck?

    python scripts/grounding_warmup_seeds.py [--steps 150] [--lr 1e-3] [--seeds 0 1 2 3 4] [--threads 2]

For each seed: ``torch.manual_seed(seed)``, a fresh ``sama-smol`` (seed 0 draws the shipped run's init), then the
recipe's grounding warm-up (configs/sama-smol-synthetic.yaml, with ``--steps`` / ``--lr`` overriding it) on the
recipe's training data. Prints one JSON line per seed: the mean step loss of every 30-step window and of the last 20.
A warm-up that has learned to follow the phrase ends near 0.3-0.4; one stuck near 0.7 predicts masks that ignore it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from sama.model.factory import create_model
from sama.train.config import load_config
from sama.train.engine import build_mix, model_sampling
from sama.train.grounding_warmup import warmup_grounding
from sama.train.warm_start import LOSS_WINDOW

WINDOW = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sama-smol-synthetic.yaml")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's grounding_warmup.steps")
    parser.add_argument("--lr", type=float, default=None, help="default: the config's grounding_warmup.lr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    warmup = cfg.grounding_warmup
    warmup.steps = args.steps or warmup.steps
    warmup.lr = args.lr or warmup.lr
    samples = build_mix(cfg.data.train, cfg.seed, "train", model_sampling(cfg)).whole_samples()

    for seed in args.seeds:
        torch.manual_seed(seed)
        model = create_model(cfg.model.name)
        start = time.time()
        result = warmup_grounding(model, samples, warmup, seed=cfg.seed, progress=False)
        windows = {f"mean_{a}_{a + LOSS_WINDOW}": round(float(np.mean(result.losses[a:a + LOSS_WINDOW])), 3)
                   for a in range(0, warmup.steps, WINDOW)}
        print(json.dumps({"init_seed": seed, "lr": warmup.lr, "steps": warmup.steps,
                          "seconds": round(time.time() - start), **windows,
                          "last20": round(result.last_loss, 3)}), flush=True)


if __name__ == "__main__":
    main()
