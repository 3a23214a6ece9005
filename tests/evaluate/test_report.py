"""Report files: summary JSON (NaN → null, options recorded), Markdown table, per-item JSON and the bar plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from sama.evaluate.report import MAX_PLOT_BARS, format_score, markdown_summary, write_report


def test_write_report_files(tmp_path: Path) -> None:
    per_video = {"v1": {"miou": 0.5, "recall": float("nan")}, "v2": {"miou": 0.25, "recall": 1.0}}
    paths = write_report(tmp_path / "out", benchmark="sama-bench-g", scores={"miou": 0.375, "SPICE": None},
                         options={"recall_mode": "fixed"}, counts={"skipped": {"mask_count": 2}}, per_item=per_video,
                         unit="video", plot_metric="miou")
    summary = json.loads(paths["summary_json"].read_text())
    assert summary == {"benchmark": "sama-bench-g", "scores": {"miou": 0.375, "SPICE": None},
                       "options": {"recall_mode": "fixed"}, "counts": {"skipped": {"mask_count": 2}}}
    assert json.loads(paths["per_item_json"].read_text())["v1"]["recall"] is None  # NaN is not valid JSON
    assert paths["per_item_json"].name == "per_video.json"
    markdown = paths["summary_md"].read_text()
    assert "| miou | SPICE |" in markdown and "| 37.50 | n/a |" in markdown and "recall_mode: `fixed`" in markdown
    with Image.open(paths["plot"]) as image:
        assert image.format == "PNG" and image.width > 100


def test_format_score() -> None:
    assert format_score(0.12345) == "12.35"
    assert format_score(None) == "n/a"
    assert format_score(3, percent=False) == "3"
    assert format_score("x") == "x"


def test_markdown_lists_counts() -> None:
    text = markdown_summary("t", {"J&F": 1.0}, {}, {"predictions_excluded": {"missing": 3}})
    assert '- predictions_excluded: {"missing": 3}' in text and "| 100.00 |" in text


@pytest.mark.parametrize("count", [3, MAX_PLOT_BARS + 5])
def test_plot_handles_many_items(tmp_path: Path, count: int) -> None:
    per_item = {f"e{i}": {"J&F": i / (count + 1)} for i in range(count)}
    paths = write_report(tmp_path, benchmark="mevis", scores={"J&F": 0.5}, options={}, counts={}, per_item=per_item,
                         unit="expression", plot_metric="J&F")
    assert paths["plot"].stat().st_size > 0
