"""The region-reading warm start: which turns it takes, their token layout, learning, what it touches, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sama.config import SamaConfig
from sama.data.sample import SampleTurn, TrainingSample
from sama.errors import ConfigError
from sama.model.backbone import IMG_CONTEXT
from sama.model.modeling import SamaModel
from sama.train.config import RegionWarmupConfig
from sama.train.region_warmup import (
    QuestionSampler,
    batch_loss,
    language_param_groups,
    referring_turns,
    warmup_regions,
)

COLOURS = {"red": (230, 30, 30), "blue": (30, 30, 230)}


def _model(train_llm: bool = False) -> SamaModel:
    config = SamaConfig.from_name("sama-tiny")
    config.trainable.llm = train_llm  # a random tiny LLM learns words fast only when it trains whole
    torch.manual_seed(0)
    return SamaModel(config)


def _samples(count: int = 6, size: int = 32) -> list[TrainingSample]:
    """A red or a blue square, referred by its mask and asked about; plus a grounded turn and a follow-up without a
    reference, which the warm-up must skip."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(count):
        colour = "red" if index % 2 == 0 else "blue"
        frames = np.full((4, size, size, 3), 40, dtype=np.uint8)
        mask = np.zeros((4, size, size), dtype=bool)
        x = int(rng.integers(0, size - 10))
        mask[:, 8:18, x : x + 10] = True
        frames[mask] = COLOURS[colour]
        turns = [SampleTurn("Where is it?", f"It is <p> the {colour} box </p> [SEG].", [], [mask]),
                 SampleTurn("What colour is <mask>?", f"It is {colour}.", [mask], []),
                 SampleTurn("What colour is it?", f"It is {colour}.", [], [])]
        samples.append(TrainingSample(frames, [0, 3, 6, 9], turns, source="toy", sample_id=f"s{index}"))
    return samples


def test_referring_turns_keep_only_their_own_slots() -> None:
    model = _model()
    sample = _samples(1)[0]
    items = referring_turns(model.processor, sample)
    assert len(items) == 1 and items[0].sample_id == "s0#1"  # only the turn with a <mask> and no [SEG]
    slot = model.img_context_id
    num_sparse, per_frame = sample.frames.shape[0], model.config.vision.tokens_per_frame
    own = num_sparse + 2  # the turn's context tokens (one per sparse frame) + 2 per referred object
    assert int((items[0].input_ids == slot).sum()) == own
    assert model.visual_embeddings(items[0].pixel_values, items[0].dense_positions, items[0].turns,
                                   dense_frames=False).shape[0] == own
    dense = referring_turns(model.processor, sample, dense_frames=True)[0]
    assert int((dense.input_ids == slot).sum()) == own + len(dense.dense_positions) * per_frame
    assert IMG_CONTEXT not in model.tokenizer.decode(items[0].labels[items[0].labels >= 0])  # answer-only labels
    for item in (items[0], dense):
        assert torch.isfinite(batch_loss(model, [item, item]))
    assert torch.isfinite(batch_loss(model, [items[0], dense]))  # the flag is per sample: layouts can share a batch


def test_warmup_learns_and_touches_only_the_language_side() -> None:
    model = _model(train_llm=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    result = warmup_regions(model, _samples(), RegionWarmupConfig(steps=30, lr=3e-3, turns_per_step=4),
                            progress=False)
    assert result.steps == 30 and result.turns == 30 * 4
    assert result.last_loss < 0.6 * result.first_loss  # mean of the last 20 steps
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("prompt_encoder.") for n in changed)
    assert any(n.startswith("aggregator.") for n in changed)
    assert not any(n.startswith("grounding.") for n in changed)
    assert all(flags[n] for n in changed)  # only what the freeze policy trains
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_warmup_errors_are_explained() -> None:
    model = _model()
    grounded_only = [TrainingSample(s.frames, s.frame_indices, s.turns[:1], sample_id=s.sample_id)
                     for s in _samples(2)]
    with pytest.raises(ConfigError, match="no turn that refers to an object"):
        warmup_regions(model, grounded_only, RegionWarmupConfig(steps=1), progress=False)
    with pytest.raises(ConfigError, match="from sources \\['synthetic_chat'\\]"):  # the samples' source is "toy"
        warmup_regions(model, _samples(), RegionWarmupConfig(steps=1, sources=["synthetic_chat"]), progress=False)
    with pytest.raises(ConfigError, match="steps"):
        warmup_regions(model, _samples(), RegionWarmupConfig(steps=0), progress=False)


def test_question_weights_set_how_often_turns_are_drawn() -> None:
    sampler = QuestionSampler({"move": 4.0, "colou?r": 0.5, "shape|move": 9.0}, np.random.default_rng(0))
    assert sampler.top == 9.0
    assert sampler.weight("How does <mask> move?") == 4.0  # the first matching pattern wins
    assert sampler.weight("What colour is <mask>?") == 0.5
    assert sampler.weight("What shape is <mask>?") == 9.0 and sampler.weight("Where is it?") == 1.0
    turns = {q: SampleTurn(q, "", [], []) for q in ("How does <mask> move?", "What colour is <mask>?", "Where?")}
    kept = {q: np.mean([sampler(turn) for _ in range(4000)]) for q, turn in turns.items()}
    assert kept["How does <mask> move?"] == pytest.approx(4 / 9, abs=0.03)
    assert kept["What colour is <mask>?"] == pytest.approx(0.5 / 9, abs=0.015)
    assert kept["Where?"] == pytest.approx(1 / 9, abs=0.02)


def test_warmup_draws_weighted_questions_more_often(monkeypatch) -> None:
    """With blue questions weighted 8x, the warm-up's batches hold ~8 blue turns per red one (plain draws: 1:1)."""
    import sama.train.region_warmup as region_warmup

    drawn: list[str] = []

    def counting(model, items):
        drawn.extend(item.sample_id for item in items)
        return batch_loss(model, items)

    monkeypatch.setattr(region_warmup, "batch_loss", counting)
    samples = _samples(8)  # even ids red, odd ids blue; one referring turn each
    for turn in (sample.turns[1] for sample in samples[1::2]):
        turn.question = "Which colour is <mask>, the blue one?"
    warmup_regions(_model(), samples, RegionWarmupConfig(steps=6, turns_per_step=8, lr=1e-6,
                                                         question_weights={"blue": 8}), progress=False)
    blue = sum(int(sample_id.split("#")[0][1:]) % 2 for sample_id in drawn)
    assert len(drawn) == 48 and blue / len(drawn) > 0.75  # expected 8/9; unweighted 1/2


def test_question_weights_are_checked() -> None:
    from sama.train.config import config_from_dict

    base = {"model": {"name": "sama-tiny"}, "data": {"train": [{"kind": "synthetic", "options": {"root": "x"}}]}}
    with pytest.raises(ConfigError, match=r"question_weights: '\(' is not a regular expression"):
        config_from_dict({**base, "region_warmup": {"question_weights": {"(": 2}}})
    with pytest.raises(ConfigError, match=r"question_weights\['move'\] must be a number > 0, got 0"):
        config_from_dict({**base, "region_warmup": {"question_weights": {"move": 0}}})


def test_lr_multipliers_scale_the_lr_by_name_prefix() -> None:
    model = _model()
    cfg = RegionWarmupConfig(lr=1e-3, lr_multipliers={"prompt_encoder.": 10, "aggregator.": 0.5})
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {names[id(p)]: group["lr"] for group in language_param_groups(model, cfg) for p in group["params"]}
    assert {round(lr, 9) for n, lr in lrs.items() if n.startswith("prompt_encoder.")} == {1e-2}
    assert {round(lr, 9) for n, lr in lrs.items() if n.startswith("aggregator.")} == {5e-4}
    assert {round(lr, 9) for n, lr in lrs.items() if n.split(".")[0] not in ("prompt_encoder", "aggregator")} == {1e-3}
    assert not any(n.startswith("grounding.") for n in lrs)
    moved = {}
    for factor in (1.0, 100.0):  # Adam's first steps move each weight by ~lr: the factor shows in the displacement
        model = _model()
        before = {n: p.detach().clone() for n, p in model.prompt_encoder.named_parameters()}
        warmup_regions(model, _samples(2), RegionWarmupConfig(steps=2, lr=1e-5, turns_per_step=2,
                                                              lr_multipliers={"prompt_encoder.": factor}),
                       progress=False)
        moved[factor] = max((p - before[n]).abs().max().item() for n, p in model.prompt_encoder.named_parameters())
    assert moved[100.0] > 30 * moved[1.0] > 0


def test_lr_multipliers_are_checked_before_any_compute(tmp_path, monkeypatch) -> None:
    import sama.train.vision_warmup as vision_warmup
    from sama.train.config import config_from_dict
    from sama.train.engine import Trainer

    with pytest.raises(ConfigError, match=r"prefix 'nope\.' matches no trainable parameter"):
        language_param_groups(_model(), RegionWarmupConfig(lr_multipliers={"nope.": 2}))
    base = {"model": {"name": "sama-tiny"}, "data": {"train": [{"kind": "synthetic", "options": {"root": "x"}}]}}
    with pytest.raises(ConfigError, match=r"region_warmup.lr_multipliers\['prompt_encoder\.'\] must be a number > 0, "
                                          r"got 0"):
        config_from_dict({**base, "region_warmup": {"lr_multipliers": {"prompt_encoder.": 0}}})
    with pytest.raises(ConfigError, match=r"lr_multipliers\['prompt_encoder\.'\] must be a number > 0, got 'ten'"):
        config_from_dict({**base, "region_warmup": {"lr_multipliers": {"prompt_encoder.": "ten"}}})

    def never(*_args, **_kwargs):
        raise AssertionError("the vision warm-up ran before the region warm-up's settings were checked")

    monkeypatch.setattr(vision_warmup, "warmup_vision", never)
    generate = {"num_videos": 2, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    cfg = config_from_dict({
        "model": {"name": "sama-tiny"},
        "data": {"train": [{"kind": "synthetic", "options": {"root": str(tmp_path / "syn"), "split": "train",
                                                              "generate": generate}}]},
        "vision_warmup": {"steps": 1}, "region_warmup": {"steps": 1, "lr_multipliers": {"nope.": 2}},
        "max_steps": 1, "save_every": 0, "progress": False, "plot": False, "export_final": False,
        "output_dir": str(tmp_path / "run"),
    })
    with pytest.raises(ConfigError, match=r"region_warmup.lr_multipliers: prefix 'nope\.'"):
        Trainer(cfg).fit()


@pytest.mark.slow
def test_training_runs_the_region_warmup_on_fresh_runs(tmp_path) -> None:
    from sama.train.config import config_from_dict
    from sama.train.engine import Trainer
    from sama.train.tracking import read_log

    generate = {"num_videos": 3, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    cfg = config_from_dict({
        "model": {"name": "sama-tiny"},
        "data": {"train": [{"kind": "synthetic", "options": {"root": str(tmp_path / "syn"), "split": "train",
                                                              "generate": generate}}]},
        "region_warmup": {"steps": 2, "turns_per_step": 2},
        "max_steps": 1, "save_every": 0, "progress": False, "plot": False, "export_final": False,
        "output_dir": str(tmp_path / "run"),
    })
    result = Trainer(cfg).fit()
    warm = [r for r in read_log(result.log_path) if r["split"] == "region_warmup"]
    assert len(warm) == 1 and warm[0]["steps"] == 2 and warm[0]["turns"] == 4
    with pytest.raises(ConfigError, match=r"region_warmup\.turns_per_step"):
        config_from_dict({"model": {"name": "sama-tiny"}, "data": {"train": [{"kind": "random"}]},
                          "region_warmup": {"turns_per_step": 0}})


def _synthetic_config(tmp_path, **top) -> dict:
    generate = {"num_videos": 3, "seed": 1, "height": 32, "width": 32, "num_frames": 6}
    options = {"root": str(tmp_path / "syn"), "split": "train", "generate": generate}
    return {
        "model": {"name": "sama-tiny"},
        "data": {"train": [{"kind": "synthetic", "name": "syn", "repeat": 1, "options": options},
                           {"kind": "synthetic", "name": "syn-turns", "repeat": 1, "referring_turns": 3,
                            "options": options}],
                 "batch_size": 2, "grad_accum": 1},
        "save_every": 0, "progress": False, "plot": False, "export_final": False, "output_dir": str(tmp_path / "run"),
        **top,
    }


@pytest.mark.slow
def test_training_mixes_batches_of_referring_turns_with_whole_samples(tmp_path, monkeypatch) -> None:
    """Items of a ``referring_turns`` entry reach the model as 3 one-turn inputs without the dense-frame slots, whole
    samples as one input with them, in the same batch when the sampler puts them together; all train."""
    from sama.train.config import config_from_dict
    from sama.train.engine import Trainer

    seen: list[tuple[int, tuple[bool, ...]]] = []
    original = SamaModel.forward

    def recording(self, *args, **kwargs):
        seen.append((kwargs["input_ids"].shape[0], tuple(kwargs["dense_frames"])))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SamaModel, "forward", recording)
    result = Trainer(config_from_dict(_synthetic_config(tmp_path, max_steps=6))).fit()
    assert len(result.history) == 6 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert {size for size, _ in seen} <= {2, 4, 6}  # two items per batch: 1 or 3 inputs each
    assert all(flags.count(False) in (0, 3, 6) and len(flags) == size for size, flags in seen)
    assert any(True in flags and False in flags for _, flags in seen)  # the layouts share a padded batch


def test_a_referring_turns_entry_without_such_turns_fails_before_training(tmp_path) -> None:
    from sama.train.config import config_from_dict
    from sama.train.engine import Trainer

    cfg = _synthetic_config(tmp_path, max_steps=1)
    cfg["data"]["train"][1]["options"]["tasks"] = ["rvos"]  # "Please segment X." only: nothing is referred to
    with pytest.raises(ConfigError, match=r"data.train\[1\]: .*'syn-turns' \(referring_turns: 3\): no turn that refers"):
        Trainer(config_from_dict(cfg)).fit()
    only_turns = _synthetic_config(tmp_path, max_steps=1, region_warmup={"steps": 1})
    only_turns["data"]["train"] = only_turns["data"]["train"][1:]
    with pytest.raises(ConfigError, match=r"the warm-ups need a data.train dataset of whole samples"):
        Trainer(config_from_dict(only_turns)).fit()
    cfg["data"]["train"][1]["referring_turns"] = -1
    with pytest.raises(ConfigError, match=r"data.train\[1\].referring_turns must be an integer >= 0"):
        config_from_dict(cfg)
