"""Model weight checkpoints: atomic safetensors save and strict, explained load (no pickle unless asked).

A checkpoint is a folder::

    model.safetensors   the state dict (optionally cast to fp16/bf16), minus intentionally excluded prefixes
    config.json         the ``SamaConfig`` (or any JSON-able dict) the model was built from

The folder is written under a temporary name and renamed into place, so an interrupted save never leaves a partial
checkpoint. :func:`load_checkpoint` raises ``CheckpointError`` naming exactly the missing, unexpected and
wrong-shape keys, allows keys under excluded prefixes (e.g. a packaged base LLM) to be missing, refuses a checkpoint
saved from another preset, and reads pickle formats (``.bin``/``.pt``/``.pth``) only with ``allow_pickle=True``,
then through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from sama.errors import CheckpointError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
FORMAT_NAME = "sama"
FORMAT_VERSION = "1"
SAVE_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_LISTED_KEYS = 20  # keys shown per category in an error message; the rest are counted


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` found: keys loaded, and those missing / unexpected / of the wrong shape."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # missing on purpose (under an excluded prefix)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def _config_dict(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if isinstance(config, Mapping):
        return json.loads(json.dumps(dict(config)))
    raise CheckpointError(f"config must be a SamaConfig or a dict, got {type(config).__name__}")


def _has_prefix(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` lies under one of ``prefixes`` (a module path; ``*`` matches any run of characters, e.g.
    ``"llm.layers.*.base_layer."`` for the frozen weights under LoRA adapters)."""
    for p in prefixes:
        if "*" in p:
            if fnmatch.fnmatchcase(key, p + "*"):
                return True
        elif key == p.rstrip(".") or key.startswith(p if p.endswith(".") else p + "."):
            return True
    return False


def _state_to_save(model: nn.Module, exclude_prefixes: tuple[str, ...], dtype: torch.dtype | None,
                   ) -> dict[str, torch.Tensor]:
    """Detached, contiguous tensors; tensors sharing storage (tied weights) are cloned so safetensors accepts them."""
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[tuple[int, int]] = set()
    for key, value in model.state_dict().items():
        if _has_prefix(key, exclude_prefixes):
            continue
        tensor = value.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        storage = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if storage in seen_storage and tensor.numel() > 0:
            tensor = tensor.clone()
        seen_storage.add(storage)
        tensors[key] = tensor.contiguous()
    return tensors


def save_checkpoint(directory: str | Path, model: nn.Module, config: Any = None, *,
                    exclude_prefixes: Iterable[str] = (), dtype: str | None = None) -> Path:
    """Write ``model``'s weights (``model.safetensors``) and ``config`` (``config.json``) to ``directory`` atomically.

    ``exclude_prefixes`` leaves out sub-modules restored from elsewhere (e.g. ``"backbone.llm."``); they are recorded
    so :func:`load_checkpoint` accepts their absence. ``dtype`` ``"fp16"``/``"bf16"``/``"fp32"`` casts floating
    tensors. An existing checkpoint at ``directory`` is replaced only once the new one is complete.
    """
    if dtype is not None and dtype not in SAVE_DTYPES:
        raise CheckpointError(f"unknown checkpoint dtype {dtype!r}; expected one of {sorted(SAVE_DTYPES)}")
    target = Path(directory)
    prefixes = tuple(exclude_prefixes)
    tensors = _state_to_save(model, prefixes, SAVE_DTYPES[dtype] if dtype else None)
    config_data = _config_dict(config)
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "dtype": dtype or "native",
        "excluded_prefixes": json.dumps(list(prefixes)),
        "preset": str(config_data.get("name", "")) if config_data else "",
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        save_safetensors(tensors, staging / WEIGHTS_FILE, metadata=metadata)
        if config_data is not None:
            (staging / CONFIG_FILE).write_text(json.dumps(config_data, indent=2) + "\n")
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file``, then the mode a plain ``open(path, "w")`` would give the file under the current
    umask (safetensors creates its files 0600)."""
    save_file(tensors, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    Path(path).chmod(0o666 & ~umask)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside first and deleted afterwards."""
    if not target.exists():
        os.replace(staging, target)
        return
    if not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a checkpoint folder")
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def read_checkpoint_config(directory: str | Path) -> dict[str, Any] | None:
    """The ``config.json`` of a checkpoint folder as a dict (``None`` if it has none)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint config ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: checkpoint config must be a JSON object, got {type(data).__name__}")
    return data


def _weights_path(location: Path, allow_pickle: bool) -> Path:
    """The weights file of a checkpoint folder (or a weights file given directly); pickle only when allowed."""
    if location.is_file():
        candidate = location
    elif (location / WEIGHTS_FILE).is_file():
        return location / WEIGHTS_FILE
    elif location.is_dir():
        found = [location / name for name in PICKLE_WEIGHT_FILES if (location / name).is_file()]
        if not found:
            raise CheckpointError(f"{location}: no {WEIGHTS_FILE} (or pickle weights) in this checkpoint folder")
        candidate = found[0]
    else:
        raise CheckpointError(f"{location}: checkpoint not found")
    if candidate.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise CheckpointError(
            f"{candidate}: refusing to read a pickle checkpoint ({candidate.suffix}); pickle can run code. "
            "Convert it to safetensors, or pass allow_pickle=True if you trust the file"
        )
    if candidate.suffix not in (*PICKLE_SUFFIXES, ".safetensors"):
        raise CheckpointError(f"{candidate}: unknown weights format; expected .safetensors (or .bin/.pt/.pth)")
    return candidate


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                return {key: handle.get_tensor(key) for key in handle.keys()}, metadata  # noqa: SIM118
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load with torch.load(weights_only=True) ({exc})") from exc
    if isinstance(data, Mapping) and "state_dict" in data and isinstance(data["state_dict"], Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(data), {}


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED_KEYS])
    more = f" … and {len(items) - MAX_LISTED_KEYS} more" if len(items) > MAX_LISTED_KEYS else ""
    return f"{len(items)} {title}: {shown}{more}"


def _config_differences(saved: Any, current: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    if isinstance(saved, dict) and isinstance(current, dict):
        diffs: list[str] = []
        for key in sorted(set(saved) | set(current)):
            diffs += _config_differences(saved.get(key), current.get(key), f"{where}{key}.")
        return diffs
    return [] if saved == current else [f"{where.rstrip('.')}: checkpoint {saved!r} vs model {current!r}"]


def load_checkpoint(directory: str | Path, model: nn.Module, *, strict: bool = True, config: Any = None,
                    allowed_missing_prefixes: Iterable[str] = (), allow_pickle: bool = False) -> LoadReport:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` and report what matched.

    ``config`` (default: ``model.config`` when it has ``to_dict``) is compared with the checkpoint's
    ``config.json``: a different preset ``name`` is refused. With ``strict`` any missing (outside excluded prefixes),
    unexpected or wrong-shape key raises ``CheckpointError`` listing them all and nothing is loaded; otherwise
    the matching keys are loaded and the report lists the rest. Tensors are cast to the model's dtypes.
    """
    location = Path(directory)
    saved_config = read_checkpoint_config(location) if location.is_dir() else None
    current = config if config is not None else getattr(model, "config", None)
    current_config = _config_dict(current) if hasattr(current, "to_dict") or isinstance(current, Mapping) else None
    config_diffs = _config_differences(saved_config, current_config) if saved_config and current_config else []
    comparable = bool(saved_config and current_config and "name" in saved_config and "name" in current_config)
    if comparable and saved_config["name"] != current_config["name"]:  # type: ignore[index]
        raise CheckpointError(
            f"{location}: checkpoint was saved from preset {saved_config.get('name')!r} but the model is "
            f"{current_config.get('name')!r}; build the model with the checkpoint's preset. Differences: "
            + "; ".join(config_diffs[:MAX_LISTED_KEYS])
        )
    weights_path = _weights_path(location, allow_pickle)
    tensors, metadata = _read_tensors(weights_path)
    try:
        excluded_prefixes = [*json.loads(metadata.get("excluded_prefixes", "[]")), *allowed_missing_prefixes]
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{weights_path}: malformed excluded_prefixes metadata ({exc})") from exc

    report = LoadReport()
    expected = model.state_dict()
    for key, target in expected.items():
        if key not in tensors:
            (report.excluded if _has_prefix(key, excluded_prefixes) else report.missing).append(key)
        elif tuple(tensors[key].shape) != tuple(target.shape):
            report.mismatched.append((key, tuple(tensors[key].shape), tuple(target.shape)))
        else:
            report.loaded.append(key)
    report.unexpected = sorted(set(tensors) - set(expected))

    if strict and not report.ok:
        parts = [f"{location}: checkpoint does not match the model"]
        if report.missing:
            parts.append(_listing("missing keys", report.missing))
        if report.unexpected:
            parts.append(_listing("unexpected keys", report.unexpected))
        if report.mismatched:
            parts.append(_listing("shape mismatches",
                                  [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in report.mismatched]))
        if config_diffs:
            parts.append("config differences: " + "; ".join(config_diffs[:MAX_LISTED_KEYS]))
        raise CheckpointError("\n  ".join(parts))
    model.load_state_dict({key: tensors[key] for key in report.loaded}, strict=False)
    return report
