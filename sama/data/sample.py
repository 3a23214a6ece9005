"""TrainingSample: the one structure a dataset yields and the model's processor consumes (the data ↔ model contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SampleTurn:
    """One human/gpt exchange of a training sample.

    Attributes:
        question: human text with one ``<mask>`` per referred object (aliases already normalised).
        answer: gpt text; grounded objects appear as ``<p> phrase </p> [SEG]``.
        ref_masks: one (T_s, H, W) bool array per ``<mask>``, on the sparse frames (raw object masks; the
            processor box-ifies them when the config says so).
        seg_masks: one (T_s, H, W) bool array per ``[SEG]`` in ``answer`` (ground truth, OR of the listed
            objects), on the sparse frames.
    """

    question: str
    answer: str
    ref_masks: list[np.ndarray] = field(default_factory=list)
    seg_masks: list[np.ndarray] = field(default_factory=list)


@dataclass
class TrainingSample:
    """A video clip with its turns.

    Attributes:
        frames: (T_s, H, W, 3) uint8, the sparse frames (SAMA.md §1.2) in temporal order.
        frame_indices: raw frame index of each sparse frame in the source video.
        turns: the exchanges, in dialogue order (4 per sample for SAMA-239K chat, 1 for RVOS).
        source: dataset name (for logging and per-dataset repeat factors).
        sample_id: stable id (video id + chunk) for logs and resumption.
    """

    frames: np.ndarray
    frame_indices: list[int]
    turns: list[SampleTurn]
    source: str = "unknown"
    sample_id: str = ""

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"{self.sample_id}: frames must be (T, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        if len(self.frame_indices) != len(self.frames):
            raise ValueError(f"{self.sample_id}: {len(self.frame_indices)} frame indices for {len(self.frames)} frames")
