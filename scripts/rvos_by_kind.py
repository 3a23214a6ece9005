"""Referring-VOS J&F of a synthetic-bench run grouped by expression kind (colour / name or shape / pair / motion).

    python scripts/rvos_by_kind.py outputs/eval/sama-smol/rvos [outputs/data/synthetic-smol/rvos/bench]

Reads the evaluation's per_expression.json (keys ``video/exp_id``) and the bench's meta_expressions.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sama.data.synthetic.language import expression_kind


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
        groups.setdefault(expression_kind(expression["exp"]), []).append(scores["J&F"])
    for kind in ("colour", "name", "pair", "motion"):
        values = groups.get(kind, [])
        mean = sum(values) / len(values) if values else float("nan")
        print(f"{kind:7s} J&F {mean:.3f}  (n {len(values)})")


if __name__ == "__main__":
    main(*sys.argv[1:])
