"""The ``sama convert`` command: official SAMA / Sa2VA HF checkpoint folder → our checkpoint format.

``sama convert OFFICIAL_DIR --preset sama-1b --out DIR [--dtype bf16] [--allow-pickle]`` reads the official
``*.safetensors`` shards, converts them strictly (``sama.model.convert``), prints what was dropped / filled / adapted,
and writes ``DIR`` with ``SamaModel.save_pretrained`` (plus the official tokenizer under ``DIR/tokenizer`` when the
official folder has one).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TOKENIZER_SUBDIR = "tokenizer"


def register(subparsers: Any) -> None:
    """Add ``convert`` to the ``sama`` sub-commands."""
    parser = subparsers.add_parser("convert", help="convert an official SAMA/Sa2VA HF checkpoint to our format")
    parser.add_argument("official_dir", help="folder of the official checkpoint (config.json + *.safetensors)")
    parser.add_argument("--preset", required=True, help="our model preset with the same shapes, e.g. sama-1b")
    parser.add_argument("--out", required=True, help="output folder (written atomically by save_pretrained)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None,
                        help="cast floating tensors when saving (default: keep the model's dtype)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also read pytorch_model*.bin shards (torch.load weights_only=True); only if trusted")
    parser.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from sama.config import list_presets
    from sama.errors import ConfigError
    from sama.model.convert import ConversionReport, load_official_checkpoint

    if args.preset not in list_presets():
        raise ConfigError(f"unknown model preset {args.preset!r}; expected one of {list_presets()}")
    reports: list[ConversionReport] = []
    model = load_official_checkpoint(args.official_dir, args.preset, allow_pickle=args.allow_pickle,
                                     on_report=reports.append)
    print(reports[0].summary())
    out = model.save_pretrained(args.out, dtype=args.dtype)
    official_tokenizer = reports[0].tokenizer == "official"
    if official_tokenizer:
        model.tokenizer.save_pretrained(str(Path(out) / TOKENIZER_SUBDIR))
    print(f"wrote {out}" + (f" (official tokenizer in {out / TOKENIZER_SUBDIR})" if official_tokenizer else ""))
    return 0
