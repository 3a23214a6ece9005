"""SAM2 warm-up: trains only SAM2 on box/point prompts and writes a checkpoint `sama train` can start from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sama
from sama.data.synthetic import generate_dataset
from sama.errors import DataError
from sama.model.modeling import SamaModel
from sama.train.sam2_warmup import warmup_sam2


def test_warmup_trains_sam2_only_and_saves(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "world", num_videos=3, seed=2, split_fractions=(1.0, 0.0, 0.0), progress=False)
    torch.manual_seed(0)
    model = sama.create_model("sama-tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = warmup_sam2(model, tmp_path / "world", tmp_path / "out", steps=3, frames_per_step=2, progress=False)
    assert result.steps == 3 and result.first_loss > 0
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("grounding.sam2.mask_decoder.") for k in changed)
    assert any(k.startswith("grounding.sam2.vision_encoder.") for k in changed)
    assert all(k.startswith("grounding.sam2.") for k in changed)  # nothing on the LLM side moves
    reloaded = SamaModel.from_pretrained(tmp_path / "out")
    key = next(k for k in changed if "mask_decoder" in k)
    assert torch.equal(reloaded.state_dict()[key], after[key])
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in reloaded.parameters()]


def test_warmup_names_the_missing_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing train\.json"):
        warmup_sam2(sama.create_model("sama-tiny"), tmp_path, tmp_path / "out", steps=1, progress=False)
