"""Grounding warm start: teach a random SAM2 to segment what a ``<p> phrase </p>`` names, before SAMA training.

SAMA starts from a pretrained SAM2 (SAMA.md §1.1). None exists offline, so a small preset whose SAM2 is random
(``sama-smol``) learns segmentation only from the [SEG] masks of its training samples. With ``sam2.seg_phrase_input``
the prompt of a [SEG] is ``seg_proj(state) + phrase_proj(mean word embedding of its phrase)``; this stage trains
``phrase_proj`` and SAM2 (image encoder when trainable, prompt path, mask decoder) on the (phrase, mask) pairs of the
training samples themselves — every [SEG] of every answer with its ground truth on the sparse frames that show the
object, several samples per step — without running the LLM. ``sources`` restricts it to samples whose phrases one
frame can resolve (measured on the synthetic world, sama-smol, fresh SAM2: val J on object names 0.62 after 100 steps
of 4 chat samples × 4 frames, 2.5 s/step; 0.05-0.27 with the RVOS motion / pair expressions mixed in).

The training engine runs it before step 1 of a fresh run when the training config's ``grounding_warmup.steps`` > 0
(after ``vision_warmup``); the shipped ``sama-smol`` recipe runs 150 steps on chat samples. SAMA training then starts
from exactly these prompts: with ``seg_phrase_input`` the [SEG]-state path of the projection starts at zero.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sama.data.datasets import draw_from_sources
from sama.data.sample import TrainingSample
from sama.errors import ConfigError
from sama.model.losses import mask_losses
from sama.model.modeling import SamaModel
from sama.train.config import GroundingWarmupConfig
from sama.train.warm_start import StageResult, adamw, optimise, torch_seed, trainable

MIN_VISIBLE_PIXELS = 4  # a (phrase, frame) pair is trained on when the object shows at least this many pixels
MAX_DRAWS_PER_SAMPLE = 16  # random draws per wanted sample before a step gives up (samples without phrases are skipped)


@dataclass
class GroundingWarmupResult(StageResult):
    pairs: int  # (phrase, frame) pairs trained on (the object visible on the frame)


def phrase_mask_pairs(model: SamaModel, sample: TrainingSample, skip: re.Pattern[str] | None = None
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """Every [SEG] of the sample's answers that follows a ``<p> … </p>`` phrase (and whose phrase, lower-cased, does
    not match ``skip``): its phrase embedding (K, C) and its ground truth on the sparse frames (K, T_s, H, W)."""
    rows: list[torch.Tensor] = []
    masks: list[np.ndarray] = []
    for turn in sample.turns:
        if not turn.seg_masks:
            continue
        ids = model.tokenizer.encode(turn.answer, add_special_tokens=False)
        for words, row, mask in zip(model.phrase_spans(ids), model.phrase_embeddings(ids), turn.seg_masks):
            if words and not (skip and skip.search(model.tokenizer.decode(words).strip().lower())):
                rows.append(row)
                masks.append(np.asarray(mask, dtype=bool))
    if not rows:
        width = model.backbone.hidden_size
        return torch.zeros(0, width), np.zeros((0, *sample.frames.shape[:3]), dtype=bool)
    return torch.stack(rows), np.stack(masks)


def _sample_loss(model: SamaModel, sample: TrainingSample, frames_per_sample: int, rng: np.random.Generator,
                 skip: re.Pattern[str] | None = None) -> tuple[torch.Tensor, int] | None:
    """Weighted BCE + Dice of the sample's phrase prompts on up to ``frames_per_sample`` random frames that show a
    grounded object, over the (phrase, frame) pairs where the object shows; with the pair count. None: nothing to
    train on in this sample."""
    phrases, masks = phrase_mask_pairs(model, sample, skip)
    if phrases.shape[0] == 0:
        return None
    visible = masks.reshape(*masks.shape[:2], -1).sum(-1) >= MIN_VISIBLE_PIXELS  # (K, T_s)
    candidates = np.flatnonzero(visible.any(0))
    if candidates.size == 0:
        return None
    frames = np.sort(rng.choice(candidates, size=min(frames_per_sample, candidates.size), replace=False))
    grounding, weights = model.grounding, model.config.loss
    device = next(grounding.phrase_proj.parameters()).device
    logits = grounding.decode_prompts(grounding.image_features(sample.frames[frames]),
                                      grounding.phrase_proj(phrases.to(device)))
    keep = torch.from_numpy(visible[:, frames]).to(device)  # only (phrase, frame) pairs that show the object
    target = torch.from_numpy(masks[:, frames]).to(device)
    bce, dice = mask_losses(logits[keep], target[keep], weights)
    return weights.bce_weight * bce + weights.dice_weight * dice, int(keep.sum())


def warmup_grounding(model: SamaModel, dataset: Dataset, cfg: GroundingWarmupConfig, *, seed: int = 0,
                     progress: bool = True) -> GroundingWarmupResult:
    """Train ``phrase_proj`` and SAM2 on phrase prompts for ``cfg.steps`` steps of ``cfg.samples_per_step`` samples."""
    grounding = model.grounding
    if grounding.phrase_proj is None:
        raise ConfigError("grounding_warmup needs sam2.seg_phrase_input = true (it trains the phrase prompt path)")
    if cfg.steps < 1:
        raise ConfigError(f"grounding_warmup.steps must be >= 1 to run the warm-up, got {cfg.steps}")
    rng = np.random.default_rng(seed)
    skip = re.compile(cfg.skip_phrases) if cfg.skip_phrases else None
    sam2 = grounding.sam2
    phrase = list(grounding.phrase_proj.parameters())
    segmenter = [*sam2.prompt_encoder.parameters(), *sam2.mask_decoder.parameters()]
    if model.config.trainable.sam2_image_encoder:
        segmenter += list(sam2.vision_encoder.parameters())
    pairs_seen = 0
    start = time.time()
    with torch_seed(seed), trainable(phrase + segmenter) as params:
        optimizer = adamw([{"params": segmenter, "lr": cfg.lr},
                           {"params": phrase, "lr": cfg.lr * cfg.phrase_lr_multiplier}], weight_decay=0.05)

        def step_loss(_step: int) -> torch.Tensor:
            nonlocal pairs_seen
            terms: list[torch.Tensor] = []
            for _tries in range(MAX_DRAWS_PER_SAMPLE * cfg.samples_per_step):
                if len(terms) == cfg.samples_per_step:
                    break
                sample = draw_from_sources(dataset, rng, cfg.sources)
                if sample is None:
                    continue
                term = _sample_loss(model, sample, cfg.frames_per_sample, rng, skip)
                if term is not None:
                    terms.append(term[0])
                    pairs_seen += term[1]
            if not terms:
                sources = f" from sources {cfg.sources}" if cfg.sources else ""
                sources += f" (skip_phrases {cfg.skip_phrases!r})" if cfg.skip_phrases else ""
                raise ConfigError(f"grounding_warmup found no [SEG] with a <p> phrase </p> in "
                                  f"{MAX_DRAWS_PER_SAMPLE * cfg.samples_per_step} training samples{sources}; "
                                  "it needs grounded answers")
            return torch.stack(terms).mean()

        losses = optimise(optimizer, step_loss, cfg.steps, "grounding warm-up", progress=progress, clip=params)
    return GroundingWarmupResult(seconds=time.time() - start, losses=losses, pairs=pairs_seen)
