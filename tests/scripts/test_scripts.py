"""The experiment scripts in scripts/: RVOS by expression kind, the shared probe command line, the path probe and the
answer probe, on hand-made files, a tiny generated world and a sama-tiny checkpoint."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import answer_probe
import path_probe
import probe_cli
import rvos_by_kind

from sama.data.datasets import is_referring_turn, synthetic_dataset
from sama.data.synthetic import SceneConfig, generate_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_dataset(out, 4, seed=2, config=SceneConfig(height=32, width=48, num_frames=6),
                     split_fractions=(0.5, 0.5, 0.0), progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from sama.model.factory import create_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    create_model("sama-tiny").save_pretrained(folder)
    return folder


def _write_rvos(tmp_path: Path, scores: dict[str, float], expressions: dict[str, str]) -> tuple[Path, Path]:
    result, bench = tmp_path / "rvos", tmp_path / "bench"
    result.mkdir()
    bench.mkdir()
    (result / "per_expression.json").write_text(json.dumps({k: {"J&F": v} for k, v in scores.items()}))
    videos = {"v0": {"expressions": {exp_id: {"exp": text} for exp_id, text in expressions.items()}}}
    (bench / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    return result, bench


def test_rvos_by_kind_averages_each_kind(tmp_path, capsys) -> None:
    result, bench = _write_rvos(
        tmp_path,
        {"v0/0": 0.9, "v0/1": 0.7, "v0/2": 0.5, "v0/3": 0.2, "v0/4": 0.4, "v0/5": 0.1, "v0/6": 0.3},
        {"0": "the red object", "1": "the red circle", "2": "the red circle and the blue square",
         "3": "the object that moves left", "4": "the object that enters the frame", "5": "the triangle",
         "6": "the small square"},
    )
    rvos_by_kind.main(str(result), str(bench))
    lines = dict(line.split(" J&F ") for line in capsys.readouterr().out.strip().splitlines())
    assert {kind.strip(): value for kind, value in lines.items()} == {
        "colour": "0.900  (n 1)", "name": "0.367  (n 3)", "name: colour and shape": "0.700  (n 1)",
        "name: shape only": "0.100  (n 1)", "name: size and shape": "0.300  (n 1)", "pair": "0.500  (n 1)",
        "motion": "0.300  (n 2)"}


def test_rvos_by_kind_names_a_missing_file_or_expression(tmp_path) -> None:
    with pytest.raises(SystemExit, match=r"per_expression.json: not found"):
        rvos_by_kind.main(str(tmp_path / "none"), str(tmp_path))
    result, bench = _write_rvos(tmp_path, {"v0/9": 0.5}, {"0": "the red object"})
    with pytest.raises(SystemExit, match=r"expression 'v0/9' is not in"):
        rvos_by_kind.main(str(result), str(bench))


def test_probe_command_line_checks_the_splits_then_loads(tmp_path, tiny_checkpoint, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["probe", str(tiny_checkpoint), "--data", str(tmp_path), "--threads", "1"])
    with pytest.raises(SystemExit, match=r"no synthetic val split \(val.json\)"):
        probe_cli.probe_inputs("probe", ["val"])
    (tmp_path / "val.json").write_text("[]")
    threads = torch.get_num_threads()
    try:
        model, data = probe_cli.probe_inputs("probe", ["val"])
        assert data == tmp_path and not model.training and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_question_kind_takes_the_first_matching_kind() -> None:
    assert answer_probe.question_kind("What colour is <mask>?") == "colour"
    assert answer_probe.question_kind("How does <mask> move?") == "motion"
    assert answer_probe.question_kind("Please describe <mask>.") == "description"
    assert answer_probe.question_kind("Hello?") == "other"


def test_motion_label_needs_exactly_one_motion_phrase() -> None:
    assert path_probe.MOTIONS[path_probe.motion_label("A small red circle bounces up and down.")] == "bounce_v"
    assert path_probe.MOTIONS[path_probe.motion_label("It moves left.")] == "left"
    assert path_probe.motion_label("It is red.") is None


def test_fit_and_score_reads_separable_features_and_not_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    classes = len(path_probe.MOTIONS)
    labels = torch.arange(200) % classes
    centres = torch.randn(classes, 8, generator=generator) * 3
    features = centres[labels] + 0.1 * torch.randn(200, 8, generator=generator)
    accuracy, bounces = path_probe.fit_and_score(features[:140], labels[:140], features[140:], labels[140:])
    assert accuracy == 1.0 and bounces == 1.0
    noise = torch.randn(200, 8, generator=generator)
    accuracy, _ = path_probe.fit_and_score(noise[:140], labels[:140], noise[140:], labels[140:])
    assert accuracy < 0.5


def test_path_features_cover_every_described_object(world, tiny_checkpoint) -> None:
    from sama.model.modeling import SamaModel

    model = SamaModel.from_pretrained(tiny_checkpoint).eval()
    features, labels = path_probe.path_features(model, world, "val", points=8)
    assert set(features) == set(path_probe.SETTINGS) and len(labels) > 0
    assert all(f.shape == (len(labels), 32) and torch.isfinite(f).all() for f in features.values())
    assert int(labels.min()) >= 0 and int(labels.max()) < len(path_probe.MOTIONS)


def test_answer_probe_asks_every_referring_val_turn(world, tiny_checkpoint) -> None:
    from sama.model.modeling import SamaModel

    model = SamaModel.from_pretrained(tiny_checkpoint).eval()
    result = answer_probe.probe(model, world)
    dataset = synthetic_dataset(world, "val", tasks=["chat", "description"], training=False)
    turns = [t for i in range(len(dataset)) for t in dataset[i].turns if is_referring_turn(t)]
    kinds = [answer_probe.question_kind(t.question) for t in turns]
    asked_questions = sum(asked for kind, (_, asked) in result.items() if "/" not in kind)
    assert asked_questions == sum(kind != "description" for kind in kinds) > 0
    assert all(0 <= right <= asked for right, asked in result.values())
    # The val attribute questions, apart: every object asked each kind once.
    attributes = synthetic_dataset(world, "val", tasks=["attributes"], training=False)
    objects = sum(len(r["anno_map"]) for r in json.loads((world / "val_attributes.json").read_text()))
    assert {k: asked for k, (_, asked) in result.items() if k.startswith("attributes/")} == {
        f"attributes/{kind}": objects for kind in ("colour", "identity", "motion", "shape", "size")}
    assert len(attributes) > 0
