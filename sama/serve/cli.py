"""``sama chat`` (interactive grounded video chat), ``sama predict`` (batch benchmark predictions) and ``sama demo``
(a three-turn example on a synthetic video). Heavy modules are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sama.errors import ConfigError

DEFAULT_MODEL = "sama-smol"  # sama.model.adapter.DEFAULT_MODEL (kept here so --help needs no model import)


def register(subparsers: Any) -> None:
    chat = subparsers.add_parser("chat", help="interactive grounded chat about a video (questions on stdin)")
    chat.add_argument("video", help="frame folder or video file")
    chat.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint folder or preset (default: the shipped "
                      "sama-smol weights, else the untrained preset)")
    chat.add_argument("--box", action="append", default=[], metavar="FRAME:x1,y1,x2,y2",
                      help="a box reference for the first question with <mask> (repeatable; the flags' references "
                      "fill its <mask>s in the order boxes, points, masks)")
    chat.add_argument("--point", action="append", default=[], metavar="FRAME:x,y", help="a click reference")
    chat.add_argument("--mask", action="append", default=[], metavar="FILE.png[:FRAME]", help="a mask reference")
    chat.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit (tokens)")
    chat.add_argument("--save", type=Path, help="write the masks of every answer under DIR/turnN/")
    chat.set_defaults(func=_run_chat)

    predict = subparsers.add_parser("predict", help="write benchmark predictions (resumable JSONL) with a model")
    predict.add_argument("--model", required=True, help="checkpoint folder or preset")
    predict.add_argument("--data", type=Path, required=True, help="benchmark JSON file (or folder)")
    predict.add_argument("--mask-dict", type=Path, help="mask dictionary JSON of --data")
    predict.add_argument("--video-root", type=Path, help="folder holding <video>/<frame>.jpg (default: next to --data)")
    predict.add_argument("--out", type=Path, required=True, help="prediction JSONL (appended to / resumed)")
    predict.add_argument("--task", choices=("sama-bench-g", "sama-bench-c", "rvos"), default="sama-bench-g")
    predict.add_argument("--dialogue", choices=("independent", "history"), default="independent",
                         help="Bench-G: each question alone (release) or after the earlier turns with their "
                         "ground-truth answers")
    predict.add_argument("--shard", help="only shard i/n of the questions (writes <out>.shard-i-of-n.jsonl)")
    predict.add_argument("--limit", type=int, help="only the first N questions")
    predict.add_argument("--max-new-tokens", type=int, help="answer length limit (default 256; captions 512)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(func=_run_predict)

    demo = subparsers.add_parser("demo", help="three-turn grounded chat on a fresh synthetic video; writes masks, "
                                 "overlays (GIF/MP4) and the dialogue")
    demo.add_argument("--out", type=Path, required=True, help="output folder")
    demo.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint folder or preset (default: sama-smol)")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (demo stream, disjoint from training data)")
    demo.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (tokens)")
    demo.set_defaults(func=_run_demo)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")


def _run_chat(args: argparse.Namespace) -> int:
    from sama.data.video import open_video
    from sama.model.adapter import load_model, resolve_model
    from sama.model.session import ChatSession
    from sama.serve.chat import ChatLoop, parse_box, parse_mask, parse_point

    _positive(args.max_new_tokens, "--max-new-tokens")
    refs = [parse_box(b) for b in args.box] + [parse_point(p) for p in args.point] + [parse_mask(m) for m in args.mask]
    source = resolve_model(args.model)
    video = open_video(args.video)
    print(f"loading {source.describe()} …", file=sys.stderr, flush=True)
    if not source.trained:
        print("note: untrained model — answers are not meaningful", file=sys.stderr)
    model = load_model(source)
    print(f"encoding {len(video)} frames ({video.width}x{video.height}) …", file=sys.stderr, flush=True)
    session = ChatSession(model, video, max_new_tokens=args.max_new_tokens)
    loop = ChatLoop(session, sys.stdout, refs, autosave=args.save)
    print("ready: type a question (<mask> marks a referred region), /help for commands, /quit to leave",
          file=sys.stderr, flush=True)
    loop.run(sys.stdin, prompt="> " if sys.stdin.isatty() else "")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from sama.evaluate.predictions import parse_shard
    from sama.serve.predict import PredictJob, run_predict

    _positive(args.max_new_tokens, "--max-new-tokens")
    options = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    if args.model in ("oracle",) or args.model.startswith("perturbed:"):
        options = {}
    job = PredictJob(model=args.model, data=args.data, out=args.out, task=args.task, mask_dict=args.mask_dict,
                     video_root=args.video_root, dialogue=args.dialogue,
                     shard=parse_shard(args.shard) if args.shard else None, limit=args.limit,
                     progress=not args.no_progress, model_options=options)
    path, produced, total = run_predict(job)
    print(f"{produced} new prediction(s) for {total} question(s) written to {path}", file=sys.stderr)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from sama.serve.demo import run_demo

    _positive(args.max_new_tokens, "--max-new-tokens")
    run_demo(args.out, args.model, args.seed, max_new_tokens=args.max_new_tokens)
    return 0
