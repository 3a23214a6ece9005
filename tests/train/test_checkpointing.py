"""Checkpoint files: atomic layout, 'latest' resolution after a crash mid-write, safe loading, RNG round trips."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from sama.errors import CheckpointError
from sama.train import checkpointing as ckpt


def _write(out: Path, step: int, keep_last: int = 2) -> Path:
    state = ckpt.TrainerState(step=step, position=ckpt.DataPosition(0, step * 2), model_name="m")
    tensors = {"w": torch.full((2,), float(step))}
    optimizer = {"state": {"w": {"step": torch.tensor(float(step)), "exp_avg": torch.zeros(2)}}, "param_groups": []}
    ckpt.write_rank_rng(out, step, rank=0)
    return ckpt.write_checkpoint(out, state, tensors, optimizer, keep_last=keep_last)


def test_layout_pruning_and_latest(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        _write(tmp_path, step)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-0000002", "step-0000003"]
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-0000003"
    assert sorted(p.name for p in latest.iterdir()) == [
        "model.safetensors",
        "optimizer.pt",
        "rank0.safetensors",
        "trainer_state.json",
    ]
    state = ckpt.read_state(latest)
    assert (state.step, state.position.index, state.model_name) == (3, 6, "m")
    assert torch.equal(ckpt.load_model_tensors(latest)["w"], torch.full((2,), 3.0))
    assert ckpt.load_optimizer_state(latest)["state"]["w"]["step"].item() == 3.0


def test_half_written_checkpoint_is_never_picked(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-0000002-999").mkdir()  # a writer killed before os.replace
    (root / "step-0000005").mkdir()  # a folder without trainer_state.json
    assert ckpt.latest_checkpoint(tmp_path).name == "step-0000001"
    (root / "latest").write_text("step-0000009\n")  # pointer to something gone → newest complete one
    assert ckpt.latest_checkpoint(tmp_path).name == "step-0000001"
    assert ckpt.resolve_resume(tmp_path / "elsewhere", True) is None  # nothing to resume yet


def test_unsafe_optimizer_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, 1)
    torch.save({"state": Fraction(1, 3)}, path / "optimizer.pt")  # any non-tensor class needs unpickling code
    with pytest.raises(CheckpointError, match="cannot load optimiser state safely"):
        ckpt.load_optimizer_state(path)


def test_rng_states_round_trip() -> None:
    py_state, np_state = ckpt.capture_python_numpy_rng()
    torch_state = ckpt.torch_rng_tensors()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.restore_python_numpy_rng(py_state, np_state)
    ckpt.restore_torch_rng(torch_state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_format_version_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, 1)
    text = (path / "trainer_state.json").read_text().replace('"format_version": 1', '"format_version": 99')
    (path / "trainer_state.json").write_text(text)
    with pytest.raises(CheckpointError, match="checkpoint format 99"):
        ckpt.read_state(path)
