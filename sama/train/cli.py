"""``sama train CONFIG.yaml [--resume [CHECKPOINT]] [--set key=value ...]``: run the training engine from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML config (one CPU, one GPU, or torchrun / accelerate launch)",
        description="Train from a YAML config (see configs/*.yaml). Launch with torchrun or accelerate launch for "
        "several processes; the config's `strategy` picks DDP, FSDP2 or DeepSpeed.",
    )
    parser.add_argument(
        "config", help="YAML training config, or a bundled name: sama-tiny-synthetic (CI-sized), sama-smol-synthetic"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in output_dir (or the given checkpoint folder)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=1e-4 --set data.train.0.repeat=2 (repeatable)",
    )
    parser.add_argument("--output-dir", default=None, help="shortcut for --set output_dir=DIR")
    parser.set_defaults(func=run_train)

    warm = subparsers.add_parser(
        "warmup-sam2",
        help="teach a random SAM2 to segment box/click prompts on a dataset's masks (a start for small presets)",
        description="SAMA starts from a pretrained SAM2; for presets whose SAM2 is random (sama-smol), train SAM2 "
        "alone on box / point prompts, then start `sama train` from the result with --set model.init_from=OUT.",
    )
    warm.add_argument("--preset", default="sama-smol", help="model preset (default sama-smol)")
    warm.add_argument("--data", type=Path, required=True, help="SAMA-format dataset folder (e.g. `sama data synth`)")
    warm.add_argument("--split", default="train", help="split to read (<split>.json + <split>_mask_dict.json)")
    warm.add_argument("--out", type=Path, required=True, help="output folder (a save_pretrained checkpoint)")
    warm.add_argument("--steps", type=int, default=1500)
    warm.add_argument("--lr", type=float, default=1e-3)
    warm.add_argument("--frames-per-step", type=int, default=8)
    warm.add_argument("--seed", type=int, default=0)
    warm.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    warm.set_defaults(func=run_warmup)


def run_train(args: argparse.Namespace) -> int:
    from sama.train.config import load_config
    from sama.train.engine import Trainer

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)
    trainer = Trainer(cfg, resume=args.resume)
    result = trainer.fit()
    if trainer.info.is_main:
        loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
        print(
            f"trained {result.steps} steps, final loss {loss}; log {result.log_path}; "
            f"checkpoint {result.last_checkpoint}"
        )
    return 0


def run_warmup(args: argparse.Namespace) -> int:
    import torch

    import sama
    from sama.train.sam2_warmup import warmup_sam2

    if args.threads:
        torch.set_num_threads(args.threads)
    model = sama.create_model(args.preset)
    result = warmup_sam2(model, args.data, args.out, steps=args.steps, split=args.split,
                         frames_per_step=args.frames_per_step, lr=args.lr, seed=args.seed)
    print(f"SAM2 warm-up: {result.steps} steps in {result.seconds:.0f} s, loss {result.first_loss:.3f} -> "
          f"{result.last_loss:.3f}; wrote {args.out} (use --set model.init_from={args.out})")
    return 0
