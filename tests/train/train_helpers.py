"""Helpers for the training-engine tests: a tiny stand-in config written to a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def standin_config(tmp_path: Path, **top: Any) -> dict[str, Any]:
    """A CI-sized config on the engine stand-in model and procedural clips."""
    data: dict[str, Any] = {
        "model": {"name": "train-standin", "overrides": {}},
        "data": {
            "train": [{"kind": "random", "name": "clips", "options": {"num_samples": 24}}],
            "batch_size": 2,
            "grad_accum": 2,
        },
        "optim": {"lr": 1e-2},
        "max_steps": 8,
        "save_every": 3,
        "progress": False,
        "plot": False,
        "output_dir": str(tmp_path / "out"),
    }
    data.update(top)
    return data


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
