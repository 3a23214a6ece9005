"""Atomic, pickle-free training checkpoints: trainable weights, optimiser, scheduler, RNG states and data position.

Layout of ``<output_dir>/checkpoints/step-000123/``::

    model.safetensors     trainable parameters only (the frozen parts come from the preset / init weights)
    optimizer.pt          optimiser state dict (tensors + plain containers; loaded with weights_only=True)
    trainer_state.json    step, data position, scheduler state, preset identity, RNG states of python/numpy
    rng-rank<r>.safetensors  torch CPU/CUDA generator states of each rank

A checkpoint is written into a temporary folder and moved into place with ``os.replace``; ``latest`` (a text file,
also replaced atomically) names the newest complete checkpoint, so a SIGKILL never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from sama.errors import CheckpointError, ConfigError
from sama.model.checkpoint import save_safetensors

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"
FORMAT_VERSION = 1


@dataclass
class DataPosition:
    """Where the data stream stands: ``index`` micro-batches of ``epoch`` are consumed (per rank)."""

    epoch: int = 0
    index: int = 0


@dataclass
class TrainerState:
    """Everything besides tensors that a resumed run needs."""

    step: int = 0
    position: DataPosition = field(default_factory=DataPosition)
    scheduler: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    python_rng: list[Any] = field(default_factory=list)
    numpy_rng: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainerState:
        data = dict(data)
        data["position"] = DataPosition(**data.get("position", {}))
        return cls(**data)


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINT_DIR


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- RNG


def capture_python_numpy_rng() -> tuple[list[Any], dict[str, Any]]:
    """Python and numpy global RNG states as JSON-safe data."""
    version, internal, gauss = random.getstate()
    py_state = [version, list(internal), gauss]
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    np_state = {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached}
    return py_state, np_state


def restore_python_numpy_rng(py_state: list[Any], np_state: dict[str, Any]) -> None:
    if py_state:
        random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
    if np_state:
        np.random.set_state(
            (
                np_state["kind"],
                np.asarray(np_state["keys"], dtype=np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["cached"],
            )
        )


def torch_rng_tensors() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = state
    return states


def restore_torch_rng(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    if torch.cuda.is_available():
        cuda = [states[k] for k in sorted(k for k in states if k.startswith("cuda"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------- save / load


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters of ``model`` as contiguous CPU tensors (the freeze policy decides what is saved)."""
    return {
        name: param.detach().to("cpu").contiguous().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def write_checkpoint(
    output_dir: str | Path,
    state: TrainerState,
    model_tensors: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write a complete checkpoint atomically (rank 0 only) and prune old ones; returns its folder."""
    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(state.step)
    tmp = root / f".tmp-{step_dir_name(state.step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_safetensors(model_tensors, tmp / MODEL_FILE, metadata={"format": "sama-train", "step": str(state.step)})
    torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
    for rng_file in root.glob(f".rng-{step_dir_name(state.step)}-rank*.safetensors"):
        os.replace(rng_file, tmp / rng_file.name.split("-", 3)[-1])
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_text_atomic(root / LATEST_FILE, final.name + "\n")
    _prune(root, keep_last, protect=final)
    return final


def write_rank_rng(output_dir: str | Path, step: int, rank: int) -> None:
    """Each rank stages its torch RNG state next to the checkpoint; rank 0 moves it in with the rest."""
    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".rng-{step_dir_name(step)}-rank{rank}.safetensors.tmp"
    save_safetensors(torch_rng_tensors(), tmp)
    os.replace(tmp, root / f".rng-{step_dir_name(step)}-rank{rank}.safetensors")


def _prune(root: Path, keep_last: int, protect: Path) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[: max(0, len(done) - max(1, keep_last))]:
        if old != protect:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / STATE_FILE).is_file():
            return candidate
    done = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def resolve_resume(output_dir: str | Path, resume: str | bool | None) -> Path | None:
    """``True``/"latest" → newest checkpoint of ``output_dir`` (None when there is none yet); a path → that path."""
    if not resume:
        return None
    if resume is True or resume == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise ConfigError(f"--resume {resume}: not a training checkpoint (no {STATE_FILE} inside)")
    return path


def read_state(path: str | Path) -> TrainerState:
    path = Path(path)
    try:
        data = json.loads((path / STATE_FILE).read_text())
        state = TrainerState.from_json(data)
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path / STATE_FILE}: unreadable trainer state ({exc})") from exc
    if state.format_version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state.format_version}, this code reads {FORMAT_VERSION}")
    return state


def check_compatible(state: TrainerState, path: Path, model_name: str, model_overrides: dict[str, Any]) -> None:
    """A checkpoint from another preset (or other overrides) is refused before any compute starts."""
    if state.model_name != model_name:
        raise ConfigError(
            f"{path}: checkpoint was trained with model {state.model_name!r}, the config asks for {model_name!r}"
        )
    if json.dumps(state.model_overrides, sort_keys=True) != json.dumps(model_overrides, sort_keys=True):
        raise ConfigError(
            f"{path}: checkpoint model overrides {state.model_overrides} differ from the config's {model_overrides}"
        )


def load_model_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / MODEL_FILE))


def load_optimizer_state(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(Path(path) / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unsafe or corrupt file
        raise CheckpointError(f"{Path(path) / OPTIMIZER_FILE}: cannot load optimiser state safely ({exc})") from exc


def load_rank_rng(path: str | Path, rank: int) -> dict[str, torch.Tensor] | None:
    file = Path(path) / f"rank{rank}.safetensors"
    return load_file(str(file)) if file.is_file() else None


def load_trainable_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy saved trainable tensors into ``model``; missing or unexpected names raise CheckpointError."""
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: trainable weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise CheckpointError(
                    f"{source}: {name} has shape {tuple(tensor.shape)}, model has {tuple(params[name].shape)}"
                )
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
