"""SamaProcessor tests: the exact SAMA.md §1.5 token layout, answer-only labels, prompt masks, errors, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sama.errors import DataError
from sama.model.processing import IGNORE_INDEX, SEG_SUFFIX


def test_multi_turn_layout_matches_sama_md(tiny_model, sample) -> None:
    proc = tiny_model.processor
    tok = tiny_model.tokenizer
    out = proc(sample)
    n_tok, s = tiny_model.config.vision.tokens_per_frame, len(sample.frames)
    n_dense = len(out.dense_positions)
    ctx = "<IMG_CONTEXT>"
    frames = "\n".join(f"<img>{ctx * n_tok}</img>" for _ in range(n_dense))  # (… + "\n") × 5, stripped
    turn1 = frames + ctx * s + f"What is <vp>{ctx}{ctx}</vp> doing?" + SEG_SUFFIX
    turn2 = ctx * s + "Is anything else there?"
    expected = (
        f"<|im_start|>user\n{turn1}<|im_end|>\n<|im_start|>assistant\n"
        "The <p> bright box </p> [SEG] stays still.<|im_end|>"
        f"\n<|im_start|>user\n{turn2}<|im_end|>\n<|im_start|>assistant\nNo.<|im_end|>"
    )
    assert tok.decode(out.input_ids) == expected
    assert int((out.input_ids == tiny_model.img_context_id).sum()) == n_dense * n_tok + 2 * s + 2
    labelled = out.input_ids[out.labels != IGNORE_INDEX]
    assert tok.decode(labelled) == "The <p> bright box </p> [SEG] stays still.<|im_end|>No.<|im_end|>"
    assert out.seg_masks.shape == (1, n_dense, *sample.frames.shape[1:3])


def test_paper_frame_block_has_256_tokens_per_frame(tiny_model) -> None:
    from sama.config import SamaConfig
    from sama.model.processing import SamaProcessor

    proc = SamaProcessor(SamaConfig.from_name("sama-1b"), tiny_model.tokenizer)
    block = proc.frame_block(5)
    assert block.count("<IMG_CONTEXT>") == 5 * 256 and block.count("<img>") == 5 and not block.endswith("\n")


def test_turn_inputs_box_prompt_masks(tiny_model, sample) -> None:
    out = tiny_model.processor(sample)
    turn = out.turns[0]
    g = tiny_model.config.vision.grid_size
    assert turn.ref_grid.shape == (1, g, g) and turn.ref_grid.sum() > 0
    assert turn.ref_frames.tolist() == [0]
    assert out.turns[1].ref_grid.shape[0] == 0
    ids = turn.qformer_ids.tolist()
    assert 30523 in ids and 30524 in ids  # <mask>, <pos>


def test_errors_name_sample_turn_and_field(tiny_model, sample) -> None:
    sample.turns[0].seg_masks = []
    with pytest.raises(DataError, match=r"record synthetic-0, turn 0, field seg_masks: answer has 1 \[SEG\]"):
        tiny_model.processor(sample)
    sample.turns[0].seg_masks = [np.zeros((2, 2, 2), dtype=bool)]
    with pytest.raises(DataError, match=r"turn 0, field seg_masks: seg_masks\[0\] has shape"):
        tiny_model.processor(sample)
    sample.turns[1].question = "And <mask>?"
    with pytest.raises(DataError, match="1 <mask> placeholders but 0 referred-object masks"):
        tiny_model.processor.turn_inputs(sample.turns[1].question, [], [0], "s", 1)
    with pytest.raises(DataError, match="only the last turn may lack an answer"):
        tiny_model.processor.encode_dialogue([("a", None), ("b", None)], 2, 1)


def test_processor_pickles_without_model_weights(tiny_model, sample) -> None:
    import pickle

    blob = pickle.dumps(tiny_model.processor)
    assert len(blob) < 20_000_000  # tokenizers only; the model itself is far larger
    clone = pickle.loads(blob)
    assert torch.equal(clone(sample).input_ids, tiny_model.processor(sample).input_ids)


def test_collate_pads(tiny_model, sample, sample_factory) -> None:
    a, b = tiny_model.processor(sample), tiny_model.processor(sample_factory(num_frames=9))
    batch = tiny_model.processor.collate([a, b])
    length = max(len(a.input_ids), len(b.input_ids))
    assert batch["input_ids"].shape == (2, length)
    short = 0 if len(a.input_ids) < len(b.input_ids) else 1
    n = min(len(a.input_ids), len(b.input_ids))
    assert batch["attention_mask"][short, n:].sum() == 0 and (batch["labels"][short, n:] == IGNORE_INDEX).all()
    assert torch.equal(batch["input_ids"][0, : len(a.input_ids)], a.input_ids)
    with pytest.raises(DataError, match="empty batch"):
        tiny_model.processor.collate([])
