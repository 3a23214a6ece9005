"""The ``sama`` command line: one sub-command group per package layer, each registered by its own ``cli`` module."""

from __future__ import annotations

import argparse
import importlib
import sys

from sama.errors import SamaError

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parsers. Heavy imports stay inside ``func``.
COMMAND_MODULES = ("sama.data.cli", "sama.evaluate.cli", "sama.train.cli", "sama.serve.cli", "sama.model.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sama",
        description="SAMA: multi-turn referential grounded video chat. Synthesize data, train, evaluate, chat.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a layer that is not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SamaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
