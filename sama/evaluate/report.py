"""Benchmark result files: summary JSON (scores + every option that produced them), per-item JSON, a Markdown table
and a bar plot (matplotlib, Agg backend). Written fresh on every run — nothing stale is ever reused.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PER_ITEM_JSON = "per_{unit}.json"
PLOT_PNG = "plot.png"
# At most this many bars in the per-item plot (the worst ones), so a 500-video benchmark stays readable.
MAX_PLOT_BARS = 60


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temporary file + rename); NaN/inf become null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def format_score(value: Any, percent: bool = True) -> str:
    """A score for the table: ×100 with 2 decimals, ``n/a`` for an unavailable (None) metric."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{100 * value:.2f}" if percent else f"{value:g}"


def markdown_summary(title: str, scores: Mapping[str, Any], options: Mapping[str, Any],
                     counts: Mapping[str, Any]) -> str:
    """Markdown: one table of the headline scores (×100), then the options and the counts (skips, exclusions)."""
    lines = [f"# {title}", "", "| " + " | ".join(scores) + " |", "|" + "---|" * len(scores),
             "| " + " | ".join(format_score(v) for v in scores.values()) + " |", "", "Scores ×100; n/a = not available.",
             "", "## Options", ""]
    lines += [f"- {key}: `{value}`" for key, value in options.items()]
    lines += ["", "## Counts", ""]
    lines += [f"- {key}: {json.dumps(_jsonable(value))}" for key, value in counts.items()]
    return "\n".join(lines) + "\n"


def plot_bars(path: str | Path, labels: Sequence[str], values: Sequence[float | None], title: str,
              ylabel: str) -> Path:
    """Horizontal bar plot of per-item values (the ``MAX_PLOT_BARS`` lowest when there are more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(str(label), float(v)) for label, v in zip(labels, values) if v is not None]
    if len(pairs) > MAX_PLOT_BARS:
        pairs = sorted(pairs, key=lambda p: p[1])[:MAX_PLOT_BARS]
        title = f"{title} (lowest {MAX_PLOT_BARS})"
    height = max(2.0, 0.28 * len(pairs) + 1.0)
    fig, ax = plt.subplots(figsize=(7, height))
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(ylabel)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(
    out_dir: str | Path,
    *,
    benchmark: str,
    scores: Mapping[str, Any],
    options: Mapping[str, Any],
    counts: Mapping[str, Any],
    per_item: Mapping[str, Any],
    unit: str,
    plot_metric: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write summary.json, summary.md, per_<unit>.json and plot.png into ``out_dir``; return their paths.

    ``plot_metric`` is the key of each per-item dict drawn in the plot (e.g. ``"J&F"`` per expression, ``"miou"``
    per video).
    """
    out = Path(out_dir)
    summary = {"benchmark": benchmark, "scores": dict(scores), "options": dict(options), "counts": dict(counts)}
    if extra:
        summary.update(extra)
    paths = {
        "summary_json": write_json(out / SUMMARY_JSON, summary),
        "per_item_json": write_json(out / PER_ITEM_JSON.format(unit=unit), per_item),
    }
    md_path = out / SUMMARY_MD
    md_path.write_text(markdown_summary(benchmark, scores, options, counts))
    paths["summary_md"] = md_path
    labels = list(per_item)
    values = [item.get(plot_metric) if isinstance(item, Mapping) else None for item in per_item.values()]
    paths["plot"] = plot_bars(out / PLOT_PNG, labels, values, f"{benchmark}: {plot_metric} per {unit}", plot_metric)
    return paths
