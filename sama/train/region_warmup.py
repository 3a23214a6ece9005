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
weight / max weight) and ``lr_multipliers`` scales the lr by parameter-name prefix. It trains what SAMA training
trains on the language side (LoRA / LLM, vision tower, projector, aggregator, prompt encoder, as the freeze policy
says), not the grounding.

The training engine runs it before step 1 of a fresh run when the training config's ``region_warmup.steps`` > 0
(after ``vision_warmup`` and ``grounding_warmup``).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sama.data.datasets import referring_turn_samples, referring_turn_stream
from sama.data.sample import SampleTurn, TrainingSample
from sama.errors import ConfigError, DataError
from sama.model.modeling import SamaModel
from sama.model.processing import ProcessedSample, SamaProcessor
from sama.train.config import RegionWarmupConfig
from sama.train.warm_start import StageResult, adamw, lr_factors, optimise, torch_seed, trainable

MAX_DRAWS_PER_TURN = 16  # random samples without a wanted turn, in a row, per turn of a step, before giving up


@dataclass
class RegionWarmupResult(StageResult):
    turns: int  # referring turns trained on


def referring_turns(processor: SamaProcessor, sample: TrainingSample, dense_frames: bool = False,
                    keep: Callable[[SampleTurn], bool] | None = None) -> list[ProcessedSample]:
    """The sample's referring turns (:func:`~sama.data.datasets.referring_turn_samples`) that pass ``keep``, each as
    a one-turn input: its context tokens and region tokens, after the dense-frame slots only when ``dense_frames``."""
    return [processor(turn, dense_frames) for turn in referring_turn_samples(sample, keep)]


def batch_loss(model: SamaModel, items: list[ProcessedSample]) -> torch.Tensor:
    """The model's training loss (answer cross-entropy; these turns ground nothing) on one padded batch of one-turn
    referring inputs (see :func:`referring_turns`)."""
    return model(**model.processor.collate(items)).loss


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


def language_param_groups(model: SamaModel, cfg: RegionWarmupConfig) -> list[dict[str, Any]]:
    """What the warm-up trains: the trainable parameters outside the grounding, in AdamW groups by their lr
    (``cfg.lr`` times the ``lr_multipliers`` factor). Raises ``ConfigError`` when there is none or a multiplier's
    prefix matches none (the engine calls it before any warm-up runs)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad and not name.startswith("grounding.")]
    if not named:
        raise ConfigError("region_warmup: the freeze policy leaves no language-side parameter trainable")
    factor_of = lr_factors(cfg.lr_multipliers, [name for name, _ in named], "region_warmup.lr_multipliers")
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in named:
        groups.setdefault(factor_of(name), []).append(param)
    return [{"params": params, "lr": cfg.lr * factor} for factor, params in groups.items()]


def warmup_regions(model: SamaModel, dataset: Dataset, cfg: RegionWarmupConfig, *, seed: int = 0,
                   progress: bool = True) -> RegionWarmupResult:
    """Train the language side on dense-free referring turns for ``cfg.steps`` steps of ``cfg.turns_per_step``."""
    if cfg.steps < 1:
        raise ConfigError(f"region_warmup.steps must be >= 1 to run the warm-up, got {cfg.steps}")
    rng = np.random.default_rng(seed)
    sampler = QuestionSampler(cfg.question_weights, rng)
    keep = sampler if cfg.question_weights else None  # unweighted: no extra rng draws, same turns as before the option
    max_draws = int(np.ceil(MAX_DRAWS_PER_TURN * sampler.top)) * cfg.turns_per_step
    groups = language_param_groups(model, cfg)
    params = [p for group in groups for p in group["params"]]
    turns = referring_turn_stream(dataset, rng, max_draws=max_draws, keep=keep, sources=cfg.sources)
    seen = 0
    start = time.time()
    with torch_seed(seed), trainable(params):
        optimizer = adamw(groups, lr=cfg.lr, weight_decay=0.05)

        def step_loss(_step: int) -> torch.Tensor:
            nonlocal seen
            try:
                drawn = list(itertools.islice(turns, cfg.turns_per_step))
            except DataError as exc:  # the stream's only error: no referring turn to be found
                raise ConfigError(f"region_warmup found {exc.reason}") from None
            batch = [model.processor(turn, cfg.dense_frames) for turn in drawn]
            seen += len(batch)
            return batch_loss(model, batch)

        losses = optimise(optimizer, step_loss, cfg.steps, "region warm-up", progress=progress, clip=params)
    return RegionWarmupResult(seconds=time.time() - start, losses=losses, turns=seen)
