"""The ``sama data`` command group: ``validate`` here; other sub-commands register through ``SUBCOMMAND_HOOKS``.

``sama data validate FILE [--mask-dict F] [--lenient] [--allow-pickle]`` checks a SAMA-239K / SAMA-Bench records
file or an RVOS ``meta_expressions*.json`` and prints the validation report. Exit code 0 when clean (warnings
allowed), 1 when lenient mode found issues, 2 when strict mode stops at the first error (raised as ``DataError``
and printed by ``sama.cli.main``).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

# (module, function) pairs that add more sub-commands to ``sama data``; each takes the group's sub-parsers.
SUBCOMMAND_HOOKS: tuple[tuple[str, str], ...] = (("sama.data.synthetic.cli", "register_synth"),)
FORMATS: tuple[str, ...] = ("auto", "sama", "mevis", "ref_ytvos", "ref_davis", "revos")
EXIT_CLEAN, EXIT_ISSUES = 0, 1  # strict failures exit 2 through sama.cli.main


def _detect_format(path: Path) -> str:
    """``sama`` for a JSON list of records; an RVOS dataset name for a ``{"videos": …}`` object."""
    from sama.errors import DataError

    try:
        with path.open("r", encoding="utf-8") as handle:
            data: Any = json.load(handle)
    except FileNotFoundError as exc:
        raise DataError("file not found", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)) from exc
    if isinstance(data, list):
        return "sama"
    if isinstance(data, dict) and isinstance(data.get("videos"), dict):
        has_type_id = any(
            isinstance(video, dict)
            and isinstance(video.get("expressions"), dict)
            and any(isinstance(e, dict) and "type_id" in e for e in video["expressions"].values())
            for video in data["videos"].values()
        )
        return "revos" if has_type_id else "mevis"
    raise DataError(
        "cannot tell the format: expected a JSON list of video records or an object with a 'videos' mapping",
        file=str(path),
    )


def _validate(args: argparse.Namespace) -> int:
    from sama.data.masks import MaskDict
    from sama.data.rvos import load_meta_expressions
    from sama.data.schema import Issue, load_records

    path = Path(args.file)
    strict = not args.lenient
    file_format = _detect_format(path) if args.format == "auto" else args.format
    mask_dict = MaskDict.load(args.mask_dict, allow_pickle=args.allow_pickle) if args.mask_dict else None
    if file_format == "sama":
        report = load_records(path, strict=strict, mask_dict=mask_dict).report
    else:
        report = load_meta_expressions(
            path, file_format, strict=strict, mask_dict=mask_dict, sequential_anno_ids=args.sequential_anno_ids
        ).report
    if mask_dict is not None:
        for problem in mask_dict.validate():
            if strict:
                raise problem
            report.issues.append(
                Issue("invalid_rle", problem.reason, problem.file, problem.record, None, problem.field, "reported")
            )
    print(f"format: {file_format}")
    print(report.summary(max_issues=args.max_issues))
    return EXIT_CLEAN if report.ok else EXIT_ISSUES


def register_validate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate`` to the ``sama data`` sub-command group."""
    validate = subparsers.add_parser(
        "validate",
        help="check a SAMA-239K / SAMA-Bench JSON or an RVOS meta_expressions file",
        description="Exit 0 when clean, 1 when --lenient found issues, 2 when strict validation fails.",
    )
    validate.add_argument("file", help="records JSON (list of videos) or meta_expressions*.json")
    validate.add_argument("--mask-dict", default=None, help="mask dictionary to check object ids and RLEs against")
    validate.add_argument("--lenient", action="store_true", help="drop bad turns like the official loader; report all")
    validate.add_argument("--allow-pickle", action="store_true", help="allow a pickled mask dictionary (trusted only)")
    validate.add_argument("--format", choices=FORMATS, default="auto", help="file format (default: detect)")
    validate.add_argument(
        "--sequential-anno-ids",
        action="store_true",
        help="RVOS: number expressions in sorted order as anno ids (SAMA's Ref-DAVIS17 script)",
    )
    validate.add_argument("--max-issues", type=int, default=20, help="issues listed in the report (default 20)")
    validate.set_defaults(func=_validate)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` group to the ``sama`` command line."""
    data = subparsers.add_parser("data", help="validate, synthesize and preview datasets")
    group = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    register_validate(group)
    for module_name, function_name in SUBCOMMAND_HOOKS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a sub-command module that is not built yet
            if exc.name != module_name:
                raise
            continue
        getattr(module, function_name)(group)
