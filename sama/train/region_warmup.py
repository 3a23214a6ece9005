"""Region-reading warm start: teach the LLM to answer questions about a referred object from its region tokens,
before SAMA training.

SAMA starts from Sa2VA, whose LLM already reads images (SAMA.md §1.1). A small preset with a random vision tower
(``sama-smol``) has to learn that here, and in the full token layout a turn that asks about a referred object costs a
whole multi-turn sample (2 dense frames = 128 LLM tokens, ~340 in all) for a handful of answer words; the synthetic
world's chat samples hold about one attribute question each. This stage trains on exactly those turns, cheaply: every
training turn that refers to objects (``<mask>``) and grounds none (no ``[SEG]``) becomes a one-turn dialogue holding
only that turn's own visual slots — its spatio-temporal context tokens and the two tokens per referred object
(SAMA.md §1.4-§1.5), computed exactly as in training — without the dense-frame tokens, and ``turns_per_step`` of them
form one padded batch; ``question_weights`` draws some questions more often than others (kept with probability
weight / max weight). It trains what SAMA training trains on the language side (LoRA / LLM, vision tower,
projector, aggregator, prompt encoder, as the freeze policy says), not the grounding.

The training engine runs it before step 1 of a fresh run when the training config's ``region_warmup.steps`` > 0
(after ``vision_warmup`` and ``grounding_warmup``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sama.data.sample import SampleTurn, TrainingSample
from sama.errors import ConfigError
from sama.model.modeling import SamaModel
from sama.model.processing import ProcessedSample
from sama.train.config import RegionWarmupConfig
from sama.train.warm_start import adamw, optimise, recent_loss, torch_seed, trainable

MAX_DRAWS_PER_TURN = 16  # random sample draws per wanted turn before a step gives up


@dataclass
class RegionWarmupResult:
    steps: int
    turns: int  # referring turns trained on
    seconds: float
    first_loss: float
    last_loss: float  # mean of the last 20 steps


def referring_turns(model: SamaModel, sample: TrainingSample, dense_frames: bool = False,
                    keep: Callable[[SampleTurn], bool] | None = None) -> list[ProcessedSample]:
    """The sample's turns that refer to objects and ground none (and pass ``keep``), each as a one-turn input: its
    context tokens and region tokens, after the dense-frame slots only when ``dense_frames``; they share the sample's
    pixel values."""
    turns = [(k, t) for k, t in enumerate(sample.turns)
             if t.ref_masks and not t.seg_masks and (keep is None or keep(t))]
    if not turns:
        return []
    processor = model.processor
    num_sparse = sample.frames.shape[0]
    dense = processor.dense_positions(num_sparse)
    pixels = processor.pixel_values(sample.frames)
    out = []
    for k, turn in turns:
        ids, labels = processor.encode_dialogue([(turn.question, turn.answer)], num_sparse,
                                               len(dense) if dense_frames else 0, sample.sample_id)
        inputs = processor.turn_inputs(turn.question, turn.ref_masks, dense, sample.sample_id, k)
        out.append(ProcessedSample(input_ids=ids, labels=labels, pixel_values=pixels, dense_positions=dense,
                                   turns=[inputs], frames=sample.frames, sample_id=f"{sample.sample_id}#{k}"))
    return out


def batch_loss(model: SamaModel, items: list[ProcessedSample], dense_frames: bool = False) -> torch.Tensor:
    """The model's training loss (answer cross-entropy; these turns ground nothing) on one padded batch of one-turn
    referring inputs (see :func:`referring_turns`)."""
    return model(**model.processor.collate(items), dense_frames=dense_frames).loss


class QuestionSampler:
    """Keeps a turn with probability weight / max weight, its weight being that of the first ``question_weights``
    pattern its question matches (1 when none does): the kept turns follow the configured relative weights."""

    def __init__(self, question_weights: dict[str, float], rng: np.random.Generator) -> None:
        self.patterns = [(re.compile(pattern), float(weight)) for pattern, weight in question_weights.items()]
        self.top = max([1.0, *(weight for _, weight in self.patterns)])
        self.rng = rng

    def weight(self, question: str) -> float:
        return next((weight for pattern, weight in self.patterns if pattern.search(question)), 1.0)

    def __call__(self, turn: SampleTurn) -> bool:
        return bool(self.rng.random() * self.top < self.weight(turn.question))


def warmup_regions(model: SamaModel, dataset: Dataset, cfg: RegionWarmupConfig, *, seed: int = 0,
                   progress: bool = True) -> RegionWarmupResult:
    """Train the language side on dense-free referring turns for ``cfg.steps`` steps of ``cfg.turns_per_step``."""
    if cfg.steps < 1:
        raise ConfigError(f"region_warmup.steps must be >= 1 to run the warm-up, got {cfg.steps}")
    rng = np.random.default_rng(seed)
    sampler = QuestionSampler(cfg.question_weights, rng)
    keep = sampler if cfg.question_weights else None  # unweighted: no extra rng draws, same turns as before the option
    max_draws = int(np.ceil(MAX_DRAWS_PER_TURN * sampler.top)) * cfg.turns_per_step
    params = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("grounding.")]
    if not params:
        raise ConfigError("region_warmup: the freeze policy leaves no language-side parameter trainable")
    seen = 0
    pending: list[ProcessedSample] = []
    start = time.time()
    with torch_seed(seed), trainable(params):
        optimizer = adamw(params, lr=cfg.lr, weight_decay=0.05)

        def step_loss(_step: int) -> torch.Tensor:
            nonlocal seen
            items: list[ProcessedSample] = []
            for _tries in range(max_draws):
                if len(pending) + len(items) >= cfg.turns_per_step:
                    break
                sample = dataset[int(rng.integers(len(dataset)))]
                if cfg.sources and sample.source not in cfg.sources:
                    continue
                items += referring_turns(model, sample, cfg.dense_frames, keep)
            pending.extend(items)
            if not pending:
                sources = f" from sources {cfg.sources}" if cfg.sources else ""
                raise ConfigError(f"region_warmup found no turn that refers to an object (<mask>) without grounding "
                                  f"one in {max_draws} training samples{sources}")
            batch = pending[: cfg.turns_per_step]
            del pending[: cfg.turns_per_step]
            seen += len(batch)
            return batch_loss(model, batch, cfg.dense_frames)

        losses = optimise(optimizer, step_loss, cfg.steps, "region warm-up", progress=progress, clip=params)
    return RegionWarmupResult(steps=cfg.steps, turns=seen, seconds=time.time() - start, first_loss=losses[0],
                              last_loss=recent_loss(losses))
