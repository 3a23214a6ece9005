"""The JSONL training log and its loss plot (warm-start stages drawn beside the training curve)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from sama.train.grounding_warmup import GroundingWarmupResult
from sama.train.tracking import JsonlLogger, plot_losses, read_log


def _log(path: Path, warmups: list[dict]) -> Path:
    logger = JsonlLogger(path)
    for record in warmups:
        logger.log(record)
    for step in range(1, 6):
        logger.log({"step": step, "split": "train", "loss": 1.0 / step, "loss_mask": 0.5 / step})
    logger.close()
    return path


def test_the_plot_draws_warmup_stages_beside_training_when_logged(tmp_path: Path) -> None:
    stage = GroundingWarmupResult(seconds=2.0, losses=[1.8, 1.1, 0.6, 0.4], pairs=9)
    record = {"step": 0, "split": "grounding_warmup", **dataclasses.asdict(stage)}
    with_stage = _log(tmp_path / "with.jsonl", [record])
    assert read_log(with_stage)[0]["losses"] == [1.8, 1.1, 0.6, 0.4]  # every step's loss survives the log
    plain = _log(tmp_path / "plain.jsonl", [])
    wide = Image.open(plot_losses(with_stage, tmp_path / "with.png")).size
    narrow = Image.open(plot_losses(plain, tmp_path / "plain.png")).size
    assert wide[0] > 1.4 * narrow[0] and wide[1] == narrow[1]  # a second panel for the stage curves
    # an old log whose warm-up record has no per-step losses plots as before
    old = {k: v for k, v in record.items() if k != "losses"}
    assert Image.open(plot_losses(_log(tmp_path / "old.jsonl", [old]), tmp_path / "old.png")).size == narrow
