"""A tiny stand-in model with SamaModel's training contract (``processor(sample)``, ``processor.collate``,
``model(**batch).loss``), so the engine can be tested and smoke-run without the real model.

It has a frozen part (like SAMA's frozen LLM/ViT), dropout (so RNG restoration matters on resume) and two loss parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sama.data.sample import TrainingSample

STANDIN_NAME = "train-standin"
FEATURE_FRAMES = 4
FEATURE_DIM = FEATURE_FRAMES * 3 + 2


class StandInProcessor:
    """TrainingSample → fixed-size feature vector + regression/classification targets."""

    def __call__(self, sample: TrainingSample) -> dict[str, torch.Tensor]:
        frames = sample.frames.astype(np.float32) / 255.0
        idx = np.linspace(0, len(frames) - 1, FEATURE_FRAMES).round().astype(int)
        colour = frames[idx].mean(axis=(1, 2)).reshape(-1)
        first = sample.turns[0]
        seg_area = float(np.mean([m.mean() for m in first.seg_masks])) if first.seg_masks else 0.0
        ref_area = float(np.mean([m.mean() for m in first.ref_masks])) if first.ref_masks else 0.0
        features = np.concatenate([colour, [ref_area, len(first.question) / 100.0]]).astype(np.float32)
        return {
            "features": torch.from_numpy(features),
            "target": torch.tensor([seg_area], dtype=torch.float32),
            "label": torch.tensor(len(sample.turns) % 3, dtype=torch.long),
        }

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@dataclass
class StandInOutput:
    loss: torch.Tensor
    loss_parts: dict[str, torch.Tensor] = field(default_factory=dict)


class StandInModel(nn.Module):
    """Frozen encoder → trainable head; MSE on mask area + CE on a label."""

    def __init__(
        self,
        hidden: int = 16,
        dropout: float = 0.1,
        nan_on_forward: int | None = None,
        seed: int = 0,
        sleep_per_forward: float = 0.0,
    ):
        super().__init__()
        generator_state = torch.get_rng_state()
        torch.manual_seed(seed)  # identical initial weights on every rank and every run
        self.encoder = nn.Linear(FEATURE_DIM, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 4))
        torch.set_rng_state(generator_state)
        self.encoder.requires_grad_(False)
        self.processor = StandInProcessor()
        self.nan_on_forward = nan_on_forward
        self.forward_calls = 0
        self.sleep_per_forward = sleep_per_forward  # lets tests kill a run mid-way

    def forward(self, features: torch.Tensor, target: torch.Tensor, label: torch.Tensor) -> StandInOutput:
        self.forward_calls += 1
        if self.sleep_per_forward:
            time.sleep(self.sleep_per_forward)
        out = self.head(torch.tanh(self.encoder(features)))
        loss_reg = nn.functional.mse_loss(out[:, :1], target)
        loss_cls = nn.functional.cross_entropy(out[:, 1:], label)
        loss = loss_reg + loss_cls
        if self.training and self.nan_on_forward is not None and self.forward_calls >= self.nan_on_forward:
            loss = loss * float("nan")
        return StandInOutput(loss=loss, loss_parts={"loss_reg": loss_reg.detach(), "loss_cls": loss_cls.detach()})


def build_standin(**overrides: Any) -> StandInModel:
    return StandInModel(**overrides)
