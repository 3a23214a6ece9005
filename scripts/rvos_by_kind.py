"""Referring-VOS J&F of a synthetic-bench run grouped by expression kind (colour / name or shape / pair / motion), and
the names split by what they give: colour and shape ("the red circle"), shape only ("the triangle"), size and shape
("the small square").

    python scripts/rvos_by_kind.py outputs/eval/sama-smol/rvos [outputs/data/synthetic-smol/rvos/bench]

Reads the evaluation's per_expression.json (keys ``video/exp_id``) and the bench's meta_expressions.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sama.data.synthetic.language import expression_kind
from sama.data.synthetic.scene import SIZE_FRACTIONS

NAME_KINDS = ("colour and shape", "shape only", "size and shape")


def name_kind(expression: str) -> str:
    """What a "name" expression gives: "shape only" ("the triangle"), "size and shape" ("the small square"), else
    "colour and shape" ("the red circle")."""
    words = expression.split()
    if len(words) == 2:
        return "shape only"
    return "size and shape" if words[1] in SIZE_FRACTIONS else "colour and shape"


def main(result_dir: str, bench_dir: str = "outputs/data/synthetic-smol/rvos/bench") -> None:
    per_exp_path = Path(result_dir) / "per_expression.json"
    meta_path = Path(bench_dir) / "meta_expressions.json"
    for path in (per_exp_path, meta_path):
        if not path.is_file():
            raise SystemExit(f"{path}: not found (expected `sama evaluate mevis --out` results and the bench folder)")
    per_exp = json.loads(per_exp_path.read_text())
    videos = json.loads(meta_path.read_text())["videos"]
    groups: dict[str, list[float]] = {}
    for qid, scores in per_exp.items():
        video, _, exp_id = qid.partition("/")
        expression = videos.get(video, {}).get("expressions", {}).get(exp_id)
        if expression is None:
            raise SystemExit(f"{per_exp_path}: expression {qid!r} is not in {meta_path}")
        kind = expression_kind(expression["exp"])
        groups.setdefault(kind, []).append(scores["J&F"])
        if kind == "name":
            groups.setdefault(f"name: {name_kind(expression['exp'])}", []).append(scores["J&F"])
    for kind in ("colour", "name", *(f"name: {k}" for k in NAME_KINDS), "pair", "motion"):
        values = groups.get(kind, [])
        if values or ":" not in kind:
            mean = sum(values) / len(values) if values else float("nan")
            print(f"{kind:7s} J&F {mean:.3f}  (n {len(values)})")


if __name__ == "__main__":
    main(*sys.argv[1:])
