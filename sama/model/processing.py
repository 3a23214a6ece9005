"""SamaProcessor: TrainingSample (or a chat prompt) → model tensors, with the LLM token layout of SAMA.md §1.5,
answer-only labels, the temporal Q-Former question inputs, the referred objects' prompt masks and ``collate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sama.config import SamaConfig
from sama.data.sample import SampleTurn, TrainingSample
from sama.data.sampling import dense_positions
from sama.errors import ConfigError, DataError
from sama.model.aggregator import load_qformer_tokenizer, tokenize_question
from sama.model.backbone import IMG_CONTEXT, IMG_END, IMG_START, SEG_TOKEN, VP_END, VP_START
from sama.model.prompts import prompt_masks

IGNORE_INDEX = -100  # SAMA.md §1.7: labels = IGNORE (−100) outside the answer tokens
MASK_PLACEHOLDER = "<mask>"
SEG_SUFFIX = " Response with interleaved segmentation masks."  # SAMA.md §1.5 (VideoRegionConv_Dataset)

# xtuner PROMPT_TEMPLATE entries (SAMA.md §1.1): INSTRUCTION wraps the human text, SUFFIX ends the answer (and is the
# stop word at inference), SEP separates turns. ``smollm2_chat`` is ChatML, the template SmolLM2-Instruct was tuned on.
CHAT_TEMPLATES: dict[str, dict[str, str]] = {
    "qwen_chat": {"INSTRUCTION": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                  "SUFFIX": "<|im_end|>", "SEP": "\n"},
    "phi3_chat": {"INSTRUCTION": "<|user|>\n{input}<|end|>\n<|assistant|>\n", "SUFFIX": "<|end|>", "SEP": "\n"},
    "internlm2_chat": {"INSTRUCTION": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                       "SUFFIX": "<|im_end|>", "SEP": "\n"},
    "smollm2_chat": {"INSTRUCTION": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                     "SUFFIX": "<|im_end|>", "SEP": "\n"},
}


@dataclass
class TurnInputs:
    """What the aggregator and prompt encoder need for one turn.

    Attributes:
        qformer_ids / qformer_mask: (L,) BERT ids of the question (``<mask>`` → ``<vp><mask><pos></vp>``).
        ref_grid: (K, g, g) prompt masks on the token grid (g = 16 at paper size), one per ``<mask>``.
        ref_shape: (K, s, s) shape masks (s = 112 at paper size).
        ref_frames: (K,) region frame of each object, as a position in the dense list.
        ref_boxes: (K, 4) each object's box (x1, y1, x2, y2) on its region frame, as fractions of the frame.
    """

    qformer_ids: torch.Tensor
    qformer_mask: torch.Tensor
    ref_grid: torch.Tensor
    ref_shape: torch.Tensor
    ref_frames: torch.Tensor
    ref_boxes: torch.Tensor


@dataclass
class ProcessedSample:
    """One sample ready for the model (see :meth:`SamaProcessor.collate` for the batch)."""

    input_ids: torch.Tensor
    labels: torch.Tensor | None
    pixel_values: torch.Tensor  # (T_s, C, S, S) vision-tower input of all sparse frames (C: backbone.input_channels)
    dense_positions: list[int]
    turns: list[TurnInputs]
    frames: np.ndarray  # (T_s, H, W, 3) uint8, kept for SAM2 preprocessing of the dense frames
    seg_masks: torch.Tensor | None = None  # (n_seg, n_dense, H, W) bool [SEG] ground truth on the dense frames
    sample_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    dense_frames: bool = True  # the token ids hold the dense-frame slots (SAMA.md §1.5); False: left out


class SamaProcessor:
    """Builds model inputs; one code path for training samples and chat prompts.

    Holds only tokenizers and the config (no model weights), so it pickles cheaply into DataLoader workers.
    """

    def __init__(self, config: SamaConfig, tokenizer: Any, qformer_tokenizer: Any | None = None) -> None:
        if config.llm.chat_template not in CHAT_TEMPLATES:
            raise ConfigError(f"llm.chat_template {config.llm.chat_template!r}: expected one of {sorted(CHAT_TEMPLATES)}")
        self.config = config
        self.tokenizer = tokenizer
        self.qformer_tokenizer = qformer_tokenizer or load_qformer_tokenizer(config.aggregator.text_max_length)
        self.template = CHAT_TEMPLATES[config.llm.chat_template]
        self.tokens_per_frame = config.vision.tokens_per_frame
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # -- text layout -------------------------------------------------------------------------------------------
    def frame_block(self, num_dense: int) -> str:
        """``(<img> + <IMG_CONTEXT>×N + </img> + "\\n") × num_dense``, stripped (SAMA.md §1.5)."""
        frame = f"{IMG_START}{IMG_CONTEXT * self.tokens_per_frame}{IMG_END}\n"
        return (frame * num_dense).strip()

    def human_text(self, question: str, num_context: int, first: bool, num_dense: int, with_seg: bool) -> str:
        """One human message: [dense frames] + ``<IMG_CONTEXT>×S`` + question with 2 slots per ``<mask>``."""
        text = question.replace(MASK_PLACEHOLDER, f"{VP_START}{IMG_CONTEXT}{IMG_CONTEXT}{VP_END}")
        if with_seg and "with interleaved segmentation masks." not in text:
            text += SEG_SUFFIX
        prefix = self.frame_block(num_dense) if first else ""
        return prefix + IMG_CONTEXT * num_context + text

    def encode_dialogue(self, turns: Sequence[tuple[str, str | None]], num_context: int, num_dense: int,
                        sample_id: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and labels of a dialogue; a final ``None`` answer leaves the prompt open for generation."""
        ids: list[int] = []
        labels: list[int] = []
        for k, (question, answer) in enumerate(turns):
            with_seg = self.config.llm.seg_request == "when_grounded" and answer is not None and SEG_TOKEN in answer
            human = self.human_text(question, num_context, k == 0, num_dense, with_seg)
            prompt = (self.template["SEP"] if k > 0 else "") + self.template["INSTRUCTION"].format(input=human)
            prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
            ids += prompt_ids
            labels += [IGNORE_INDEX] * len(prompt_ids)
            if answer is None:
                if k != len(turns) - 1:
                    raise DataError("only the last turn may lack an answer", record=sample_id, turn=k, field="answer")
                break
            answer_ids = self.tokenizer.encode(answer + self.template["SUFFIX"], add_special_tokens=False)
            ids += answer_ids
            labels += answer_ids
        if len(ids) > self.config.llm.max_length:
            raise DataError(f"{len(ids)} tokens exceed llm.max_length={self.config.llm.max_length}",
                            record=sample_id, field="turns")
        return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)

    # -- masks -------------------------------------------------------------------------------------------------
    def turn_inputs(self, question: str, ref_volumes: Sequence[np.ndarray], dense: Sequence[int],
                    sample_id: str = "", turn: int = 0) -> TurnInputs:
        """Q-Former question ids and the referred objects' prompt masks for one turn."""
        count = question.count(MASK_PLACEHOLDER)
        if count != len(ref_volumes):
            raise DataError(f"question has {count} <mask> placeholders but {len(ref_volumes)} referred-object masks",
                            record=sample_id, turn=turn, field="ref_masks")
        ids, mask = tokenize_question(self.qformer_tokenizer, question, self.config.aggregator.text_max_length)
        grid = self.config.vision.grid_size
        size = self.config.prompts.shape_mask_size
        grids, shapes, boxes, frames = [], [], [], []
        for volume in ref_volumes:
            g, s, b, f = prompt_masks(volume, dense, grid, size, self.config.prompts.ref_mask_mode,
                                      self.config.prompts.grid_resize)
            grids.append(g)
            shapes.append(s)
            boxes.append(b)
            frames.append(f)
        return TurnInputs(
            qformer_ids=ids, qformer_mask=mask,
            ref_grid=torch.stack(grids) if grids else torch.zeros(0, grid, grid),
            ref_shape=torch.stack(shapes) if shapes else torch.zeros(0, size, size),
            ref_frames=torch.tensor(frames, dtype=torch.long),
            ref_boxes=torch.stack(boxes) if boxes else torch.zeros(0, 4),
        )

    def dense_positions(self, num_sparse: int) -> list[int]:
        s = self.config.sampling
        return dense_positions(num_sparse, s.num_dense, s.dense_policy)

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """Vision-tower input for the (T, H, W, 3) uint8 sparse frames of one clip."""
        from sama.model.backbone import vision_pixels

        return vision_pixels(torch.from_numpy(np.ascontiguousarray(frames)), self.config.vision)

    # -- entry points ------------------------------------------------------------------------------------------
    def __call__(self, sample: TrainingSample, dense_frames: bool = True) -> ProcessedSample:
        """A training sample → tensors with labels and [SEG] ground truth on the dense frames; without the
        dense-frame slots in the token ids when ``dense_frames`` is False (the turns still refer to the dense frames'
        positions, and SAM2 still segments on them)."""
        sid = sample.sample_id
        if not sample.turns:
            raise DataError("sample has no turns", record=sid, field="turns")
        num_sparse, height, width = sample.frames.shape[:3]
        dense = self.dense_positions(num_sparse)
        turns: list[TurnInputs] = []
        seg: list[np.ndarray] = []
        for k, turn in enumerate(sample.turns):
            _check_turn(turn, (num_sparse, height, width), sid, k)
            turns.append(self.turn_inputs(turn.question, turn.ref_masks, dense, sid, k))
            seg += [np.asarray(m, dtype=bool)[dense] for m in turn.seg_masks]
        ids, labels = self.encode_dialogue([(t.question, t.answer) for t in sample.turns], num_sparse,
                                           len(dense) if dense_frames else 0, sid)
        seg_masks = torch.from_numpy(np.stack(seg)) if seg else torch.zeros(0, len(dense), height, width,
                                                                             dtype=torch.bool)
        return ProcessedSample(input_ids=ids, labels=labels, pixel_values=self.pixel_values(sample.frames),
                               dense_positions=dense, turns=turns, frames=sample.frames, seg_masks=seg_masks,
                               sample_id=sid, dense_frames=dense_frames)

    def build_prompt(self, frames: np.ndarray, dialogue: Sequence[tuple[str, str | None]],
                     ref_volumes: Sequence[Sequence[np.ndarray]], sample_id: str = "prompt") -> ProcessedSample:
        """Inference inputs (no labels): sparse ``frames``, the dialogue so far (last answer ``None``) and, per turn,
        the referred objects as (T_s, H, W) volumes on the sparse frames."""
        if len(ref_volumes) != len(dialogue):
            raise DataError(f"{len(ref_volumes)} reference lists for {len(dialogue)} turns", record=sample_id,
                            field="refs")
        dense = self.dense_positions(len(frames))
        turns = [self.turn_inputs(q, refs, dense, sample_id, k) for k, ((q, _), refs) in
                 enumerate(zip(dialogue, ref_volumes))]
        ids, _ = self.encode_dialogue(dialogue, len(frames), len(dense), sample_id)
        return ProcessedSample(input_ids=ids, labels=None, pixel_values=self.pixel_values(frames),
                               dense_positions=dense, turns=turns, frames=frames, sample_id=sample_id)

    def collate(self, samples: Sequence[ProcessedSample]) -> dict[str, Any]:
        """Right-pad token ids / labels into (B, L) tensors; per-sample visual inputs stay lists."""
        if not samples:
            raise DataError("cannot collate an empty batch", field="samples")
        length = max(len(s.input_ids) for s in samples)
        batch = len(samples)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((batch, length), dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s.input_ids)
            input_ids[i, :n] = s.input_ids
            attention[i, :n] = 1
            if s.labels is not None:
                labels[i, :n] = s.labels
        return {
            "input_ids": input_ids, "attention_mask": attention, "labels": labels,
            "pixel_values": [s.pixel_values for s in samples], "dense_positions": [s.dense_positions for s in samples],
            "turns": [s.turns for s in samples], "frames": [s.frames for s in samples],
            "seg_masks": [s.seg_masks for s in samples], "sample_ids": [s.sample_id for s in samples],
            "dense_frames": [s.dense_frames for s in samples],
        }


def _check_turn(turn: SampleTurn, shape: tuple[int, int, int], sample_id: str, index: int) -> None:
    """Mask shapes and [SEG] counts of one training turn."""
    for name, masks in (("ref_masks", turn.ref_masks), ("seg_masks", turn.seg_masks)):
        for j, m in enumerate(masks):
            if np.shape(m) != shape:
                raise DataError(f"{name}[{j}] has shape {np.shape(m)}, expected (T_s, H, W) = {shape}",
                                record=sample_id, turn=index, field=name)
    count = turn.answer.count(SEG_TOKEN)
    if count != len(turn.seg_masks):
        raise DataError(f"answer has {count} [SEG] tokens but {len(turn.seg_masks)} ground-truth masks",
                        record=sample_id, turn=index, field="seg_masks")
