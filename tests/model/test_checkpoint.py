"""Tests for sama.model.checkpoint: atomic safetensors round trip, strict load errors, presets, pickle refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from sama.config import SamaConfig
from sama.errors import CheckpointError
from sama.model.checkpoint import (
    CONFIG_FILE,
    MAX_LISTED_KEYS,
    WEIGHTS_FILE,
    load_checkpoint,
    read_checkpoint_config,
    save_checkpoint,
)


class Toy(nn.Module):
    """A base LM (tied head) plus a head, with a buffer: enough structure for prefix / tie / shape cases."""

    def __init__(self, width: int = 4, config: SamaConfig | None = None) -> None:
        super().__init__()
        self.base = nn.ModuleDict({"embed": nn.Embedding(6, width), "lm_head": nn.Linear(width, 6, bias=False)})
        self.base["lm_head"].weight = self.base["embed"].weight  # tied, as in the LLMs we wrap
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
        self.register_buffer("scale", torch.tensor([1.5]))
        if config is not None:
            self.config = config


def make(seed: int, **kwargs: object) -> Toy:
    torch.manual_seed(seed)
    return Toy(**kwargs)  # type: ignore[arg-type]


def test_round_trip_is_identical(tmp_path: Path) -> None:
    config = SamaConfig.from_name("sama-tiny")
    source, target = make(0, config=config), make(1, config=config)
    save_checkpoint(tmp_path / "ckpt", source, config)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert read_checkpoint_config(tmp_path / "ckpt")["name"] == "sama-tiny"
    report = load_checkpoint(tmp_path / "ckpt", target)
    assert report.ok and not report.excluded
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key
    assert target.base["lm_head"].weight.data_ptr() == target.base["embed"].weight.data_ptr()  # tie survives


def test_save_is_atomic_and_replaces(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt", make(0))
    newer = make(5)
    save_checkpoint(tmp_path / "ckpt", newer)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no staging or retired folders left behind
    loaded = make(9)
    load_checkpoint(tmp_path / "ckpt", loaded)
    assert torch.equal(loaded.head[0].weight, newer.head[0].weight)


def test_failed_save_leaves_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = make(0)
    save_checkpoint(tmp_path / "ckpt", original)

    def explode(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("sama.model.checkpoint.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ckpt", make(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    loaded = make(9)
    load_checkpoint(tmp_path / "ckpt", loaded)
    assert torch.equal(loaded.head[0].weight, original.head[0].weight)


@pytest.mark.parametrize(("name", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_reduced_precision_save(tmp_path: Path, name: str, dtype: torch.dtype) -> None:
    source = make(0)
    save_checkpoint(tmp_path / "ckpt", source, dtype=name)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ckpt" / WEIGHTS_FILE), framework="pt") as handle:
        assert handle.get_tensor("head.0.weight").dtype == dtype
        assert handle.metadata()["dtype"] == name
    loaded = make(1)
    load_checkpoint(tmp_path / "ckpt", loaded)
    assert loaded.head[0].weight.dtype == torch.float32  # cast back to the model's dtype
    assert torch.allclose(loaded.head[0].weight, source.head[0].weight, atol=1e-2)


def test_unknown_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"unknown checkpoint dtype 'int8'; expected one of \['bf16'"):
        save_checkpoint(tmp_path / "ckpt", make(0), dtype="int8")


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    source = make(0)
    tensors = {k: v.clone() for k, v in source.state_dict().items() if k != "head.2.bias"}
    tensors["head.9.weight"] = torch.zeros(2)
    (tmp_path / "ckpt").mkdir()
    save_file(tensors, str(tmp_path / "ckpt" / WEIGHTS_FILE))
    target = make(1)
    before = target.head[0].weight.clone()
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "ckpt", target)
    message = str(error.value)
    assert "checkpoint does not match the model" in message
    assert "1 missing keys: head.2.bias" in message
    assert "1 unexpected keys: head.9.weight" in message
    assert torch.equal(target.head[0].weight, before)  # nothing loaded on a strict failure
    report = load_checkpoint(tmp_path / "ckpt", target, strict=False)
    assert report.missing == ["head.2.bias"] and report.unexpected == ["head.9.weight"]
    assert torch.equal(target.head[0].weight, source.head[0].weight)


def test_shape_mismatch_is_listed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt", make(0, width=4))
    with pytest.raises(CheckpointError, match=r"shape mismatches: .*head\.0\.weight \(checkpoint \[4, 4\] vs model \[8, 8\]\)"):
        load_checkpoint(tmp_path / "ckpt", make(0, width=8))


def test_long_key_lists_are_truncated(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    extra = {f"extra.{i}": torch.zeros(1) for i in range(MAX_LISTED_KEYS + 5)}
    save_file({**{k: v.clone() for k, v in make(0).state_dict().items()}, **extra}, str(tmp_path / "ckpt" / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=rf"{MAX_LISTED_KEYS + 5} unexpected keys: .* and 5 more"):
        load_checkpoint(tmp_path / "ckpt", make(1))


def test_excluded_prefixes_may_be_missing(tmp_path: Path) -> None:
    source = make(0)
    save_checkpoint(tmp_path / "ckpt", source, exclude_prefixes=["base"])
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ckpt" / WEIGHTS_FILE), framework="pt") as handle:
        assert not any(key.startswith("base.") for key in handle.keys())  # noqa: SIM118
    target = make(1)
    base_before = target.base["embed"].weight.clone()
    report = load_checkpoint(tmp_path / "ckpt", target)
    assert report.ok and sorted(report.excluded) == ["base.embed.weight", "base.lm_head.weight"]
    assert torch.equal(target.base["embed"].weight, base_before)  # untouched: it comes from elsewhere
    assert torch.equal(target.head[2].weight, source.head[2].weight)


def test_allowed_missing_prefixes_at_load(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    tensors = {k: v.clone() for k, v in make(0).state_dict().items() if not k.startswith("head.")}
    save_file(tensors, str(tmp_path / "ckpt" / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=r"4 missing keys: head\.0\.weight, head\.0\.bias, head\.2\.weight"):
        load_checkpoint(tmp_path / "ckpt", make(1))
    assert load_checkpoint(tmp_path / "ckpt", make(1), allowed_missing_prefixes=["head."]).ok
    with pytest.raises(CheckpointError, match="missing keys"):  # a prefix matches whole name parts only
        load_checkpoint(tmp_path / "ckpt", make(1), allowed_missing_prefixes=["hea"])


def test_preset_mismatch_is_refused(tmp_path: Path) -> None:
    tiny = SamaConfig.from_name("sama-tiny")
    save_checkpoint(tmp_path / "ckpt", make(0), tiny)
    with pytest.raises(CheckpointError, match=r"saved from preset 'sama-tiny' but the model is 'sama-smol'.*llm\.hidden_size"):
        load_checkpoint(tmp_path / "ckpt", make(1, config=SamaConfig.from_name("sama-smol")))
    other = tiny.replace(name="sama-tiny-variant")
    with pytest.raises(CheckpointError, match="saved from preset 'sama-tiny'"):
        load_checkpoint(tmp_path / "ckpt", make(1), config=other)
    assert load_checkpoint(tmp_path / "ckpt", make(1), config=tiny).ok


def test_pickle_is_refused_unless_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    source = make(0)
    torch.save(source.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: refusing to read a pickle checkpoint \(\.bin\)"):
        load_checkpoint(folder, make(1))
    with pytest.raises(CheckpointError, match="refusing to read a pickle checkpoint"):
        load_checkpoint(folder / "pytorch_model.bin", make(1))
    target = make(1)
    assert load_checkpoint(folder, target, allow_pickle=True).ok
    assert torch.equal(target.head[0].weight, source.head[0].weight)


def test_pickle_with_code_is_rejected_even_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"head.0.weight": torch.zeros(4, 4), "hook": Toy}, path)  # a class object is not weights-only
    with pytest.raises(CheckpointError, match=r"cannot load with torch.load\(weights_only=True\)"):
        load_checkpoint(path, make(1), allow_pickle=True)


def test_bad_locations_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nowhere", make(0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors \(or pickle weights\)"):
        load_checkpoint(tmp_path / "empty", make(0))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable safetensors file"):
        load_checkpoint(tmp_path / "bad", make(0))
    (tmp_path / "badcfg").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "badcfg" / WEIGHTS_FILE))
    (tmp_path / "badcfg" / CONFIG_FILE).write_text(json.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="checkpoint config must be a JSON object, got list"):
        load_checkpoint(tmp_path / "badcfg", make(0))


def test_grounding_round_trip(tmp_path: Path) -> None:
    from sama.model.grounding import SamaGrounding

    config = SamaConfig.from_name("sama-tiny")
    torch.manual_seed(0)
    source = SamaGrounding(config.sam2, config.llm.hidden_size)
    torch.manual_seed(1)
    target = SamaGrounding(config.sam2, config.llm.hidden_size)
    save_checkpoint(tmp_path / "g", source, config, dtype="bf16")
    assert load_checkpoint(tmp_path / "g", target, config=config).ok
    for key, value in source.state_dict().items():
        assert torch.allclose(value.float(), target.state_dict()[key].float(), atol=2e-2, rtol=1e-2), key


def test_excluded_prefixes_accept_wildcards() -> None:
    from sama.model.checkpoint import _has_prefix

    patterns = ("llm.layers.*.base_layer.", "llm.norm.")
    assert _has_prefix("llm.layers.3.self_attn.q_proj.base_layer.weight", patterns)
    assert not _has_prefix("llm.layers.3.self_attn.q_proj.lora_A.default.weight", patterns)
    assert _has_prefix("llm.norm.weight", patterns) and not _has_prefix("llm.normalizer.weight", patterns)


def test_saved_files_are_readable_like_any_new_file(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        folder = save_checkpoint(tmp_path / "ckpt", make(0), SamaConfig.from_name("sama-tiny"))
    finally:
        os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "model.safetensors": 0o644, "config.json": 0o644}
