"""The phrase-prompted SAM2 warm start: (phrase, mask) pairs, learning, what it touches, and its errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from sama.config import SamaConfig
from sama.data.sample import SampleTurn, TrainingSample
from sama.errors import ConfigError
from sama.model.modeling import SamaModel
from sama.train.config import GroundingWarmupConfig
from sama.train.grounding_warmup import phrase_mask_pairs, warmup_grounding


def _phrase_model() -> SamaModel:
    config = SamaConfig.from_name("sama-tiny")
    config.sam2.seg_phrase_input = True
    torch.manual_seed(0)
    return SamaModel(config)


def _samples(count: int = 6, size: int = 32) -> list[TrainingSample]:
    """A bright square (left or right half) named by its colour word; the mask is the square."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(count):
        frames = np.full((4, size, size, 3), 40, dtype=np.uint8)
        red = index % 2 == 0
        mask = np.zeros((4, size, size), dtype=bool)
        x = int(rng.integers(0, size // 2 - 8)) + (0 if red else size // 2)
        mask[:, 8:20, x : x + 8] = True
        frames[mask] = (230, 30, 30) if red else (30, 30, 230)
        colour = "red" if red else "blue"
        turns = [SampleTurn("Where is it?", f"It is <p> the {colour} box </p> [SEG].", [], [mask]),
                 SampleTurn("And?", "Sure, [SEG].", [], [mask])]  # no phrase: not a warm-up pair
        samples.append(TrainingSample(frames, [0, 3, 6, 9], turns, sample_id=f"s{index}"))
    return samples


def test_pairs_are_the_grounded_phrases_with_their_masks() -> None:
    model = _phrase_model()
    sample = _samples(1)[0]
    phrases, masks = phrase_mask_pairs(model, sample)
    assert phrases.shape == (1, model.config.llm.hidden_size) and masks.shape == (1, 4, 32, 32)
    ids = model.tokenizer.encode(sample.turns[0].answer, add_special_tokens=False)
    torch.testing.assert_close(phrases[0], model.phrase_embeddings(ids)[0])
    assert np.array_equal(masks[0], sample.turns[0].seg_masks[0])


def test_skip_phrases_leaves_out_matching_phrases() -> None:
    model = _phrase_model()
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    masks = [np.full((4, 32, 32), k == 0) for k in range(2)]
    answer = "<p> the red box </p> [SEG] and <p> the box that moves left </p> [SEG]."
    sample = TrainingSample(frames, [0, 3, 6, 9], [SampleTurn("Which?", answer, [], masks)], sample_id="s")
    assert phrase_mask_pairs(model, sample)[0].shape[0] == 2
    phrases, kept = phrase_mask_pairs(model, sample, re.compile(r"\bthat\b"))
    ids = model.tokenizer.encode(answer, add_special_tokens=False)
    assert phrases.shape[0] == 1 and kept[0].all()  # the first phrase and its mask stay
    torch.testing.assert_close(phrases[0], model.phrase_embeddings(ids)[0])
    with pytest.raises(ConfigError, match=r"\(skip_phrases 'box'\)"):  # every phrase skipped: the error says why
        warmup_grounding(model, [sample], GroundingWarmupConfig(steps=1, skip_phrases="box"), progress=False)


def test_skip_phrases_must_be_a_regex() -> None:
    from sama.train.config import config_from_dict

    base = {"model": {"name": "sama-tiny"}, "data": {"train": [{"kind": "synthetic", "options": {"root": "x"}}]}}
    with pytest.raises(ConfigError, match=r"grounding_warmup.skip_phrases: '\[' is not a regular expression"):
        config_from_dict({**base, "grounding_warmup": {"skip_phrases": "["}})


def test_warmup_learns_and_touches_only_the_phrase_path_and_sam2() -> None:
    model = _phrase_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    cfg = GroundingWarmupConfig(steps=40, lr=3e-3, samples_per_step=2, frames_per_sample=2)
    result = warmup_grounding(model, _samples(), cfg, progress=False)
    assert result.steps == 40 and result.pairs == 40 * 2 * 2  # 2 samples × 2 frames, one phrase each
    assert result.last_loss < 0.8 * result.first_loss
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("grounding.phrase_proj.") for n in changed)
    assert any(n.startswith("grounding.sam2.mask_decoder.") for n in changed)
    assert all(n.startswith(("grounding.phrase_proj.", "grounding.sam2.")) for n in changed)
    assert not any(n.startswith("grounding.sam2.vision_encoder.") for n in changed)  # frozen in sama-tiny
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_warmup_errors_are_explained() -> None:
    plain = SamaModel(SamaConfig.from_name("sama-tiny"))
    with pytest.raises(ConfigError, match="seg_phrase_input"):
        warmup_grounding(plain, _samples(), GroundingWarmupConfig(steps=1), progress=False)
    model = _phrase_model()
    ungrounded = [TrainingSample(s.frames, s.frame_indices, s.turns[1:], sample_id=s.sample_id) for s in _samples(2)]
    with pytest.raises(ConfigError, match="no \\[SEG\\] with a <p> phrase"):
        warmup_grounding(model, ungrounded, GroundingWarmupConfig(steps=1), progress=False)
    with pytest.raises(ConfigError, match="steps"):
        warmup_grounding(model, _samples(), GroundingWarmupConfig(steps=0), progress=False)
    with pytest.raises(ConfigError, match="from sources \\['synthetic_chat'\\]"):  # the samples' source is "unknown"
        warmup_grounding(model, _samples(), GroundingWarmupConfig(steps=1, sources=["synthetic_chat"]),
                         progress=False)


@pytest.mark.slow
def test_training_runs_the_grounding_warmup_on_fresh_runs(tmp_path) -> None:
    from sama.train.config import config_from_dict
    from sama.train.engine import Trainer
    from sama.train.tracking import read_log

    cfg = config_from_dict({
        "model": {"name": "sama-tiny", "overrides": {"sam2": {"seg_phrase_input": True}}},
        "data": {"train": [{"kind": "random", "options": {"num_samples": 2, "num_frames": 4}}],
                 "batch_size": 1, "grad_accum": 1},
        "grounding_warmup": {"steps": 3, "samples_per_step": 1, "frames_per_sample": 2},
        "max_steps": 1, "save_every": 0, "progress": False, "plot": False, "export_final": False,
        "output_dir": str(tmp_path / "run"),
    })
    result = Trainer(cfg).fit()
    warm = [r for r in read_log(result.log_path) if r["split"] == "grounding_warmup"]
    assert len(warm) == 1 and warm[0]["steps"] == 3 and warm[0]["pairs"] > 0
    assert len(warm[0]["losses"]) == 3 and warm[0]["first_loss"] == warm[0]["losses"][0]
    with pytest.raises(ConfigError, match=r"grounding_warmup\.phrase_lr_multiplier"):
        config_from_dict({"model": {"name": "sama-tiny"}, "data": {"train": [{"kind": "random"}]},
                          "grounding_warmup": {"phrase_lr_multiplier": 0}})
