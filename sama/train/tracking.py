"""Training logs: the JSONL loss log (resumable), optional TensorBoard mirror, and the loss-curve PNG."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss.png"


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a JSONL log (a torn last line from a killed run is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class JsonlLogger:
    """Appends one JSON object per line and flushes it. On resume, records after ``keep_until_step`` (written by the
    interrupted run after its last checkpoint) are dropped, so the log continues exactly where the weights do."""

    def __init__(self, path: str | Path, keep_until_step: int | None = None, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_until_step is None:
            self.path.write_text("")
        else:
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= keep_until_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.path.open("a")
        self._tb = _tensorboard_writer(tensorboard_dir) if tensorboard_dir is not None else None

    def log(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "split"):
                    self._tb.add_scalar(f"{prefix}/{key}", value, record.get("step", 0))

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(log_dir: str | Path) -> Any:
    """A SummaryWriter when tensorboard is importable, else None (it is optional)."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


def plot_losses(log_path: str | Path, out_path: str | Path) -> Path | None:
    """Loss curves (train loss and its parts, validation loss; beside them each warm-start stage's step losses when the
    log has them) from the JSONL log to a PNG; None if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train = [r for r in records if r.get("split", "train") == "train" and _finite(r.get("loss"))]
    val = [r for r in records if r.get("split") == "val" and _finite(r.get("loss"))]
    stages = [r for r in records if r.get("split", "train").endswith("warmup") and isinstance(r.get("losses"), list)]
    if not train:
        return None
    if stages:
        fig, (ax, stage_ax) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
        for record in stages:
            stage_ax.plot(record["losses"], label=record["split"].replace("_", " "), linewidth=0.8)
        stage_ax.set_xlabel("warm-up step")
        stage_ax.set_ylabel("loss")
        stage_ax.set_yscale("log")
        stage_ax.legend(loc="best", fontsize=8)
        stage_ax.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", linewidth=1.5)
    parts = sorted({k for r in train for k in r if k.startswith("loss_")})
    for part in parts:
        points = [(r["step"], r[part]) for r in train if _finite(r.get(part))]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=part, linewidth=0.8, alpha=0.7)
    if val:
        ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="val loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
