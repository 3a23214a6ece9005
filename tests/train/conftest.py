"""Fixtures of the training-engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import standin_config, write_yaml


@pytest.fixture
def standin_yaml(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "train.yaml", standin_config(tmp_path))
