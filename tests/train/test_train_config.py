"""YAML config loading and the errors raised before any compute starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import standin_config, write_yaml

from sama.errors import ConfigError
from sama.train.config import config_from_dict, load_config
from sama.train.engine import Trainer, train


def test_load_and_override(tmp_path: Path, standin_yaml: Path) -> None:
    cfg = load_config(standin_yaml, ["optim.lr=3e-4", "data.train.0.repeat=3", "max_steps=5"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.train[0].repeat == 3
    assert cfg.max_steps == 5
    assert cfg.model.name == "train-standin"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    data = standin_config(tmp_path)
    data["optim"]["learning_rate"] = 1.0
    path = write_yaml(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'optim\.learning_rate'"):
        load_config(path)


def test_unknown_key_from_set_is_rejected(standin_yaml: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'data\.bach_size'"):
        load_config(standin_yaml, ["data.bach_size=4"])


def test_wrong_type_and_bad_set_syntax(tmp_path: Path, standin_yaml: Path) -> None:
    data = standin_config(tmp_path)
    data["data"]["batch_size"] = "two"
    with pytest.raises(ConfigError, match=r"data\.batch_size must be int"):
        load_config(write_yaml(tmp_path / "typed.yaml", data))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(standin_yaml, ["optim.lr"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("strategy", "fsdp1", "strategy 'fsdp1' is not one of"),
        ("precision", "fp8", "precision 'fp8' is not one of"),
        ("max_steps", 0, "max_steps must be >= 1"),
    ],
)
def test_bad_values(tmp_path: Path, key: str, value: object, message: str) -> None:
    data = standin_config(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=message):
        load_config(write_yaml(tmp_path / "v.yaml", data))


def test_unknown_dataset_kind(tmp_path: Path) -> None:
    data = standin_config(tmp_path)
    data["data"]["train"][0]["kind"] = "coco"
    with pytest.raises(ConfigError, match=r"data\.train\[0\]\.kind 'coco'"):
        load_config(write_yaml(tmp_path / "k.yaml", data))


def test_missing_data_path_fails_before_compute(tmp_path: Path) -> None:
    data = standin_config(tmp_path)
    data["data"]["train"] = [{"kind": "grounded_chat", "name": "sama239k", "annotations": str(tmp_path / "nope.json")}]
    cfg = load_config(write_yaml(tmp_path / "p.yaml", data))
    built = []
    with pytest.raises(ConfigError, match=r"data\.train\[0\]\.annotations \(sama239k\): path .*nope\.json"):
        Trainer(cfg, model_factory=lambda c: built.append(c))  # type: ignore[arg-type, func-returns-value]
    assert not built


def test_checkpoint_from_another_preset_is_refused(tmp_path: Path, standin_yaml: Path) -> None:
    cfg = load_config(standin_yaml, ["max_steps=3", "save_every=3"])
    train(cfg)
    other = load_config(standin_yaml, ["model.overrides.hidden=8"])
    with pytest.raises(ConfigError, match=r"model overrides .* differ"):
        Trainer(other, resume=True)
    renamed = load_config(standin_yaml)
    renamed.model.name = "sama-tiny"
    with pytest.raises(ConfigError, match="trained with model 'train-standin', the config asks for 'sama-tiny'"):
        Trainer(renamed, resume=True)


def test_resume_path_that_is_not_a_checkpoint(tmp_path: Path, standin_yaml: Path) -> None:
    with pytest.raises(ConfigError, match="not a training checkpoint"):
        Trainer(load_config(standin_yaml), resume=str(tmp_path))


def test_deepspeed_missing_gives_install_hint(standin_yaml: Path) -> None:
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(ConfigError, match="needs DeepSpeed, which is not installed"):
        train(load_config(standin_yaml, ["strategy=deepspeed_zero2"]))


def test_bundled_configs_load_by_name() -> None:
    for name in ("sama-tiny-synthetic", "sama-smol-synthetic"):
        cfg = load_config(name)
        assert cfg.model.name == name.removesuffix("-synthetic")
        assert cfg.data.train[0].kind == "synthetic" and "generate" in cfg.data.train[0].options
    with pytest.raises(ConfigError, match=r"no-such-config: config file not found \(bundled configs: .*sama-tiny"):
        load_config("no-such-config")


def test_unknown_model_preset_fails_before_compute(standin_yaml: Path) -> None:
    cfg = load_config(standin_yaml, ["model.name=sama-huge"])
    with pytest.raises(ConfigError, match="unknown model preset 'sama-huge'"):
        Trainer(cfg)


def test_cli_reports_config_errors_without_traceback(tmp_path: Path, standin_yaml: Path, capsys) -> None:
    from sama.cli import main

    assert main(["train", str(standin_yaml), "--set", "optim.momentum=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown key 'optim.momentum'" in err and "Traceback" not in err
    assert main(["train", str(standin_yaml), "--set", "max_steps=2", "--output-dir", str(tmp_path / "cli")]) == 0
    assert "trained 2 steps" in capsys.readouterr().out


def test_deepspeed_resume_is_refused_up_front(tmp_path: Path, standin_yaml: Path) -> None:
    train(load_config(standin_yaml, ["max_steps=3", "save_every=3"]))
    with pytest.raises(ConfigError, match="resuming a DeepSpeed run is not supported"):
        Trainer(load_config(standin_yaml, ["strategy=deepspeed_zero2"]), resume=True)


def test_lora_settings_reach_the_model_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sama
    from sama.train.engine import build_model

    seen: dict[str, object] = {}
    monkeypatch.setattr(sama, "create_model", lambda name, **overrides: seen.update(name=name, **overrides))
    data = standin_config(tmp_path)
    data["model"] = {"name": "sama-tiny", "overrides": {"seed": 3}, "lora": {"enabled": True, "rank": 4, "alpha": 8}}
    build_model(config_from_dict(data))
    assert seen["name"] == "sama-tiny" and seen["seed"] == 3
    assert seen["lora"] == {
        "enabled": True,
        "rank": 4,
        "alpha": 8,
        "dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }
    data["model"] = {"name": "sama-tiny", "lora": {"enabled": True, "target_modules": ["q_proj", "v_proj"]}}
    assert config_from_dict(data).model.lora.target_modules == ("q_proj", "v_proj")  # YAML list → the tuple field
    data["model"]["lora"]["target_modules"] = "q_proj"
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules must be a list"):
        config_from_dict(data)
    data["model"] = {"name": "train-standin", "lora": {"enabled": True}}
    with pytest.raises(ConfigError, match="has no LLM to adapt"):
        build_model(config_from_dict(data))
    data["model"] = {"name": "train-standin"}
    data["data"]["train"] = [{**data["data"]["train"][0], "referring_turns": 2}]
    with pytest.raises(ConfigError, match="referring_turns: the train-standin model has no dense-frame tokens"):
        build_model(config_from_dict(data))
