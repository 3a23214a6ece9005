"""Shared fixtures for the model tests: one sama-tiny model per session and a synthetic training sample."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sama.data.sample import SampleTurn, TrainingSample


def make_sample(num_frames: int = 6, height: int = 32, width: int = 40, seed: int = 0) -> TrainingSample:
    """A 2-turn sample: turn 1 refers to one object and grounds it, turn 2 is plain text."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (num_frames, height, width, 3), dtype=np.uint8)
    obj = np.zeros((num_frames, height, width), dtype=bool)
    obj[:, 0:18, 0:22] = True  # large enough to survive the nearest resize to a 2×2 grid
    frames[obj] = 250
    turns = [
        SampleTurn("What is <mask> doing?", "The <p> bright box </p> [SEG] stays still.", [obj], [obj]),
        SampleTurn("Is anything else there?", "No.", [], []),
    ]
    return TrainingSample(frames=frames, frame_indices=list(range(0, 3 * num_frames, 3)), turns=turns,
                          sample_id="synthetic-0")


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    from sama.model.factory import create_model

    torch.manual_seed(0)
    return create_model("sama-tiny")


@pytest.fixture()
def sample() -> TrainingSample:
    return make_sample()


@pytest.fixture()
def sample_factory():
    """The ``make_sample`` builder, for tests that need several samples."""
    return make_sample


@pytest.fixture(scope="module")
def module_sample() -> TrainingSample:
    """The default sample, for module-scoped fixtures."""
    return make_sample()
