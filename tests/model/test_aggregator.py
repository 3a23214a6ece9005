"""ContextAggregator tests: shapes, windows (incl. a partial last window), region injection, Q-Former tokenizer."""

from __future__ import annotations

import pytest
import torch

from sama.config import SamaConfig
from sama.model.aggregator import MLP, ContextAggregator, load_qformer_tokenizer, mask_pooling


@pytest.fixture(scope="module")
def aggregator() -> ContextAggregator:
    torch.manual_seed(0)
    c = SamaConfig.from_name("sama-tiny")
    return ContextAggregator(c.aggregator, 64, c.prompts.shape_mask_points, c.prompts.shape_mlp_hidden,
                             c.prompts.shape_mlp_layers).eval()


def test_qformer_tokenizer_ids_and_left_truncation() -> None:
    tok = load_qformer_tokenizer(256)
    assert tok.convert_tokens_to_ids(["[DEC]", "<mask>", "<pos>"]) == [30522, 30523, 30524]  # SAMA.md §1.3
    short = load_qformer_tokenizer(5)
    ids = short("a b c d e f g h", truncation=True, max_length=5)["input_ids"]
    assert short.convert_ids_to_tokens(ids) == ["[CLS]", "f", "g", "h", "[SEP]"]


def test_question_rewrite(aggregator) -> None:
    ids, mask = aggregator.tokenize_question("What is <mask> doing?")
    tokens = aggregator.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[tokens.index("<mask>") + 1] == "<pos>" and "vp" in tokens
    assert mask.sum() == len(ids)


@pytest.mark.parametrize("num_frames", [3, 4, 7])
def test_one_context_token_per_sparse_frame(aggregator, num_frames: int) -> None:
    frames = torch.randn(num_frames, 4, 64)
    ids, mask = aggregator.tokenize_question("Where is <mask>?")
    out = aggregator(frames, ids, mask, torch.randn(1, 64), torch.rand(1, 256))
    assert out.shape == (num_frames, 64)
    # window 16 tokens / 4 queries per frame = 4 frames per window; 7 frames → 2 windows (last one partial)
    temporal = aggregator.temporal(aggregator.spatial(frames), ids, mask, torch.randn(1, 64), torch.rand(1, 256))
    windows = -(-num_frames * 4 // 16)
    assert temporal.shape == (windows * 4, 32)


def test_region_features_change_the_context(aggregator) -> None:
    frames = torch.randn(4, 4, 64)
    ids, mask = aggregator.tokenize_question("What is <mask> doing?")
    shape = torch.rand(1, 256)
    a = aggregator(frames, ids, mask, torch.zeros(1, 64), shape)
    b = aggregator(frames, ids, mask, torch.ones(1, 64), shape)
    assert not torch.allclose(a, b)
    plain_ids, plain_mask = aggregator.tokenize_question("What is happening?")
    c = aggregator(frames, plain_ids, plain_mask, torch.zeros(0, 64), torch.zeros(0, 256))
    assert c.shape == (4, 64)


def test_inject_is_residual_attention_then_mean(aggregator) -> None:
    frames = torch.randn(2, 4, 64)
    temporal = torch.randn(8, 32)
    q = aggregator.inject_q(frames)
    k, v = aggregator.inject_k(temporal), aggregator.inject_v(temporal)
    attn = torch.softmax(q @ k.T / 64**0.5, dim=-1) @ v
    expected = aggregator.final_proj((aggregator.inject_out(attn) + frames).mean(1))
    assert torch.allclose(aggregator.inject(frames, temporal), expected, atol=1e-6)


def test_mask_pooling_and_mlp() -> None:
    features = torch.arange(8, dtype=torch.float32).view(4, 2)
    masks = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    pooled = mask_pooling(features, masks)
    assert torch.allclose(pooled[0], torch.tensor([1.0, 2.0])) and torch.equal(pooled[1], torch.zeros(2))
    mlp = MLP(12544, 1024, 768, 3)  # SAMA.md §1.3: 12544 → 1024 → 1024 → 768
    assert [(layer.in_features, layer.out_features) for layer in mlp.layers] == [(12544, 1024), (1024, 1024),
                                                                                  (1024, 768)]


def _ordered_aggregator(frame_time_embedding: bool) -> ContextAggregator:
    torch.manual_seed(0)
    c = SamaConfig.from_name("sama-tiny")
    c.aggregator.frame_time_embedding = frame_time_embedding
    c.aggregator.max_sparse_frames = 6
    return ContextAggregator(c.aggregator, 64, c.prompts.shape_mask_points, c.prompts.shape_mlp_hidden,
                             c.prompts.shape_mlp_layers).eval()


@pytest.mark.parametrize("frame_time_embedding", [False, True])
def test_frame_time_embedding_breaks_time_reversal_symmetry(frame_time_embedding: bool) -> None:
    """SAMA.md §1.3's temporal memory is an unordered set: a clip and its reversal give the same temporal tokens (an
    object moving left reads as one moving right). The optional frame-time embedding tells them apart."""
    agg = _ordered_aggregator(frame_time_embedding)
    assert (agg.frame_time_embed is not None) == frame_time_embedding
    spatial = torch.randn(4, 4, 32)  # 4 frames → one window of 16 memory tokens
    ids, mask = agg.tokenize_question("How does <mask> move?")
    pooled, shape = torch.randn(1, 64), torch.rand(1, 256)
    forward = agg.temporal(spatial, ids, mask, pooled, shape)
    reverse = agg.temporal(spatial.flip(0), ids, mask, pooled, shape)
    assert torch.allclose(forward, reverse, atol=1e-5) != frame_time_embedding


def test_frame_time_embedding_table_limit() -> None:
    agg = _ordered_aggregator(True)
    ids, mask = agg.tokenize_question("How does <mask> move?")
    with pytest.raises(ValueError, match="7 sparse frames but the frame-time table has 6 rows"):
        agg.temporal(torch.randn(7, 4, 32), ids, mask, torch.randn(1, 64), torch.rand(1, 256))
