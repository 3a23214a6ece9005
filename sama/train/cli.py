"""``sama train CONFIG.yaml [--resume [CHECKPOINT]] [--set key=value ...]``: run the training engine from a YAML config."""

from __future__ import annotations

import argparse


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
