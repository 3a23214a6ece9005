"""``sama evaluate …``: one sub-command per benchmark (score a prediction JSONL, or produce it first with --model)
and ``sama evaluate merge`` for shard files. Heavy modules are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sama.errors import ConfigError

BENCHMARKS = ("sama-bench-g", "sama-bench-c", "mevis", "revos", "davis17", "ref-ytvos")


def _common(parser: argparse.ArgumentParser, *, needs_out: bool = True) -> None:
    parser.add_argument("--data", type=Path, required=True, help="benchmark folder")
    parser.add_argument("--pred", type=Path, required=True,
                        help="prediction JSONL to score (with --model: written/resumed first)")
    parser.add_argument("--out", type=Path, required=needs_out, help="folder for the results")
    parser.add_argument("--model", help="produce predictions first: checkpoint folder or preset "
                        "(needs the model layer), or 'oracle' / 'perturbed:S' for pipeline checks")
    parser.add_argument("--shard", help="with --model: only shard i/n of the questions (e.g. 0/4); default from "
                        "RANK/WORLD_SIZE; merge the shard files with `sama evaluate merge`")
    parser.add_argument("--lenient", action="store_true", help="count and exclude bad/missing predictions instead "
                        "of stopping (always reported in the summary)")
    parser.add_argument("--workers", type=int, default=1, help="processes for J/F (RVOS benchmarks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="with a model: bound on generated tokens per answer (default: the adapter's)")


def _text_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-captions", action="store_true", help="skip the caption metrics (Java)")
    parser.add_argument("--no-meteor", action="store_true", help="caption metrics without METEOR (no JVM)")
    parser.add_argument("--approximate-captions", action="store_true",
                        help="without Java: Python tokenizer for BLEU/ROUGE/CIDEr (reported as approximate)")
    parser.add_argument("--judge", choices=("none", "clair", "minilm-caption-sim"), default="none",
                        help="caption judge: CLAIR via an OpenAI-compatible endpoint (--judge-url or "
                        "SAMA_JUDGE_BASE_URL), or a local MiniLM similarity (a different metric); default none")
    parser.add_argument("--judge-url", help="CLAIR judge base URL (…/v1)")
    parser.add_argument("--judge-model", help="CLAIR judge model (default gpt-3.5-turbo, METRICS.md §10)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("evaluate", help="score benchmarks (SAMA-Bench-G/C, MeViS, ReVOS, Ref-DAVIS17, "
                                   "Ref-YTVOS submission) and merge prediction shards")
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    g = sub.add_parser("sama-bench-g", help="grounded multi-turn chat: mIoU, recall, caption metrics, CLAIR")
    _common(g)
    _text_options(g)
    g.add_argument("--recall-mode", choices=("faithful", "fixed"), default="faithful",
                   help="faithful: as released (transposed matrices, METRICS.md §7.3); fixed: consistent orientation")
    g.add_argument("--gt-mode", choices=("faithful", "fixed"), default="fixed",
                   help="empty groundtruth entry: faithful repeats the previous mask (release), fixed skips it")
    g.add_argument("--dialogue", choices=("independent", "history"), default="independent",
                   help="independent (release) or with the earlier turns of the dialogue as history")
    g.add_argument("--text-sim", default="minilm", help="recall phrase similarity: minilm | bert:PATH | exact")
    g.add_argument("--raw-prompts", action="store_true", help="raw object masks as prompts instead of boxes")
    g.set_defaults(func=_run_bench_g)

    c = sub.add_parser("sama-bench-c", help="region captioning: caption metrics and CLAIR per video")
    _common(c)
    _text_options(c)
    c.set_defaults(func=_run_bench_c)

    for name, helptext in (("mevis", "MeViS J&F (METRICS.md §3)"), ("revos", "ReVOS J, F, A, R (§5)"),
                           ("davis17", "Ref-DAVIS17 J&F, both protocols (§2)")):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--missing-as-zero", action="store_true", help="score an expression without prediction "
                       "J = F = 0 as the official scripts do (reported); default: error (or excluded with --lenient)")
        if name == "revos":
            p.add_argument("--faithful", action="store_true", help="reproduce VISA's uint8 underflow in R and its "
                           "per-expression rounding (METRICS.md §5)")
        if name == "davis17":
            p.add_argument("--protocol", choices=("sama", "referformer", "both"), default="both",
                           help="sama: per-expression means (release script); referformer: 4 annotation sets")
        p.set_defaults(func=_run_rvos, rvos=name)

    y = sub.add_parser("ref-ytvos", help="Ref-YouTube-VOS (or MeViS val/test): write the CodaLab submission zip")
    _common(y)
    y.add_argument("--layout", choices=("ytvos", "mevis"), default="ytvos",
                   help="ytvos: Annotations/<vid>/<exp>/<frame>.png; mevis: <vid>/<exp>/<frame>.png at the top level")
    y.set_defaults(func=_run_rvos, rvos="ref-ytvos")

    f = sub.add_parser("facts", help="synthetic world: exact attribute/motion answer accuracy against facts.json")
    f.add_argument("--data", type=Path, required=True, help="synthetic dataset folder (holds facts.json)")
    f.add_argument("--pred", type=Path, required=True, help="prediction JSONL (e.g. from sama-bench-g --model)")
    f.add_argument("--out", type=Path, required=True, help="folder for the results")
    f.add_argument("--split", default="bench", help="which split's questions to score (default bench)")
    f.add_argument("--kinds", default="colour,shape,size,identity,motion", help="comma-separated fact kinds")
    f.add_argument("--followups", action="store_true",
                   help="also score follow-up questions (only meaningful for --dialogue history predictions)")
    f.add_argument("--lenient", action="store_true", help="skip questions without a prediction (counted)")
    f.set_defaults(func=_run_facts)

    m = sub.add_parser("merge", help="merge prediction shard files into one (detects duplicates/conflicts)")
    m.add_argument("inputs", nargs="+", type=Path, help="shard JSONL files")
    m.add_argument("--out", type=Path, required=True, help="merged JSONL")
    m.set_defaults(func=_run_merge)


def _settings(args: argparse.Namespace) -> Any:
    from sama.evaluate.benchmarks.runner import RunSettings
    from sama.evaluate.predictions import parse_shard

    if args.shard and not args.model:
        raise ConfigError("--shard only applies when producing predictions with --model")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    return RunSettings(data=args.data, pred=args.pred, out=args.out, model=args.model,
                       shard=parse_shard(args.shard) if args.shard else None, lenient=args.lenient,
                       missing_as_zero=getattr(args, "missing_as_zero", False),
                       progress=not args.no_progress,
                       model_options={"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {})


def _judge(args: argparse.Namespace) -> Any:
    if args.judge == "none":
        return None
    if args.judge == "minilm-caption-sim":
        from sama.evaluate.metrics.clair import MiniLMCaptionSimilarity

        return MiniLMCaptionSimilarity()
    from sama.evaluate.metrics.clair import ClairJudge

    judge = ClairJudge.from_env(base_url=args.judge_url, model=args.judge_model)
    if judge is None:
        raise ConfigError("--judge clair needs --judge-url or SAMA_JUDGE_BASE_URL (an OpenAI-compatible endpoint)")
    return judge


def _print_result(summary_path: Path | None, message: str) -> int:
    if summary_path is not None:
        summary = json.loads(summary_path.read_text())
        print(json.dumps(summary["scores"], indent=2))
        print(f"results written to {summary_path.parent}", file=sys.stderr)
    else:
        print(message, file=sys.stderr)
    return 0


def _run_bench_g(args: argparse.Namespace) -> int:
    from sama.evaluate.benchmarks.sama_bench_g import BenchGOptions, run_bench_g

    options = BenchGOptions(recall_mode=args.recall_mode, gt_mode=args.gt_mode, dialogue=args.dialogue,
                            box_prompts=not args.raw_prompts, text_similarity=args.text_sim,
                            captions=not args.no_captions)
    summary, message = run_bench_g(_settings(args), options, meteor=not args.no_meteor,
                                   allow_approximate=args.approximate_captions, judge=_judge(args))
    return _print_result(summary, message)


def _run_bench_c(args: argparse.Namespace) -> int:
    from sama.evaluate.benchmarks.sama_bench_c import run_bench_c

    summary, message = run_bench_c(_settings(args), captions=not args.no_captions, meteor=not args.no_meteor,
                                   allow_approximate=args.approximate_captions, judge=_judge(args))
    return _print_result(summary, message)


def _run_rvos(args: argparse.Namespace) -> int:
    from sama.evaluate.benchmarks.rvos import run_rvos

    summary, message = run_rvos(args.rvos, _settings(args), workers=args.workers,
                                protocol=getattr(args, "protocol", "both"),
                                revos_faithful=getattr(args, "faithful", False),
                                layout=getattr(args, "layout", "ytvos"))
    return _print_result(summary, message)


def _run_facts(args: argparse.Namespace) -> int:
    from sama.evaluate.benchmarks.synthetic_facts import score_facts

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    score_facts(args.data, args.pred, args.out, split=args.split, kinds=kinds, followups=args.followups,
                lenient=args.lenient)
    return _print_result(args.out / "summary.json", "")


def _run_merge(args: argparse.Namespace) -> int:
    from sama.evaluate.predictions import merge

    report = merge(args.inputs, args.out)
    print(json.dumps(report.as_dict()))
    print(f"merged {len(args.inputs)} files into {args.out}", file=sys.stderr)
    return 0
