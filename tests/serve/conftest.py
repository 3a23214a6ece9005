"""Shared fixtures for the serving tests: one sama-tiny model, a tiny synthetic benchmark folder, and a switch that
makes the random model 'emit' [SEG] tokens (a random model rarely does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    from sama.model.factory import create_model

    torch.manual_seed(0)
    return create_model("sama-tiny").eval()


@pytest.fixture(scope="session")
def synthetic_bench(tmp_path_factory) -> Path:
    """A 2-video synthetic dataset written entirely into the ``bench`` split (bench.json, RVOS meta, frames)."""
    from sama.data.synthetic import SceneConfig, generate_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(out, 2, seed=5, config=SceneConfig(height=32, width=48, num_frames=6), split_fractions=(0, 0, 1),
                     max_turns=4, progress=False)
    return out


@pytest.fixture()
def use_tiny(tiny_model, monkeypatch):
    """Every model spec loads the shared sama-tiny instance (no reload per CLI call)."""
    import sama.model.adapter as adapter

    monkeypatch.setattr(adapter, "load_model", lambda spec, **_: tiny_model)
    return tiny_model


@pytest.fixture()
def forced_seg(tiny_model, monkeypatch):
    """ChatSession.ask answers with ``count`` [SEG] states, as a trained model would for a grounded answer."""
    import torch

    from sama.model.session import ChatSession

    original = ChatSession.ask
    state = {"count": 2}

    def ask(self, question, refs=(), **kwargs):
        turn = original(self, question, refs, **kwargs)
        generator = torch.Generator().manual_seed(len(self.history))
        turn.seg_hidden = torch.randn(state["count"], tiny_model.config.llm.hidden_size, generator=generator)
        turn.phrases = [f"thing {k}" for k in range(state["count"])]
        return turn

    monkeypatch.setattr(ChatSession, "ask", ask)
    return state
