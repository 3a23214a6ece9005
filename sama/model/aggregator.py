"""Spatio-temporal context aggregator (SAMA.md §1.3): spatial Q-Former per frame, question- and region-conditioned
windowed temporal Q-Former, and ``temporal_context_inject`` back to one context token per sparse frame."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from sama.config import AggregatorConfig
from sama.packages import MINILM_PACKAGE, package_folder

# SAMA.md §1.3 step 2: tokens appended to the bert-base-uncased vocabulary (ids 30522, 30523, 30524).
QFORMER_ADDED_TOKENS = ("[DEC]", "<mask>", "<pos>")
QFORMER_MASK_TOKEN, QFORMER_POS_TOKEN = "<mask>", "<pos>"
QFORMER_MASK_REWRITE = "<vp><mask><pos></vp>"  # SAMA.md §1.3 step 2 (internvl_sama.py:357)

_TOKENIZER_CACHE: dict[int, Any] = {}


def load_qformer_tokenizer(max_length: int) -> Any:
    """BERT WordPiece tokenizer (bert-base-uncased vocab) with ``[DEC]``, ``<mask>``, ``<pos>`` added; left truncation."""
    if max_length in _TOKENIZER_CACHE:
        return _TOKENIZER_CACHE[max_length]
    from transformers import AutoTokenizer

    folder = package_folder(MINILM_PACKAGE) / "model"  # its vocab.txt is bert-base-uncased's (DEPENDENCIES.md §3)
    tokenizer = AutoTokenizer.from_pretrained(folder)  # from the folder (a vocab_file= build is silently broken)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QFORMER_ADDED_TOKENS)})
    tokenizer.truncation_side = "left"  # SAMA.md §1.3 step 2: left truncation
    tokenizer.model_max_length = max_length
    _TOKENIZER_CACHE[max_length] = tokenizer
    return tokenizer


def tokenize_question(tokenizer: Any, question: str, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Question → (ids, attention mask) of shape (L,) for the temporal Q-Former: each ``<mask>`` rewritten to
    ``<vp><mask><pos></vp>``, truncated on the left to ``max_length`` (SAMA.md §1.3 step 2)."""
    text = question.replace("<mask>", QFORMER_MASK_REWRITE)
    enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"][0], enc["attention_mask"][0]


class MLP(nn.Module):
    """DETR/SAM-style MLP with a ``layers`` ModuleList, ReLU between layers and none after the last (SAMA.md §1.3)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def mask_pooling(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Area-normalised masked mean Σ m·x / Σ m (SAMA.md §1.3).

    Args:
        features: (N, C) grid features of one frame (N = h·w).
        masks: (K, N) float masks on the same grid.

    Returns:
        (K, C); an empty mask yields zeros.
    """
    masks = masks.to(features.dtype)
    area = masks.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return (masks @ features) / area


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """(positions, dim) sine/cosine position table of "Attention Is All You Need" (sin on even, cos on odd dims)."""
    position = torch.arange(positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(1e4)) / dim))
    table = torch.zeros(positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


def _qformer_configs(config: AggregatorConfig) -> tuple[Any, Any]:
    import transformers as T

    common = dict(
        hidden_size=config.qformer_hidden_size, num_attention_heads=config.qformer_num_heads,
        intermediate_size=config.qformer_intermediate_size, hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout, max_position_embeddings=config.max_position_embeddings,
    )
    spatial = T.Blip2QFormerConfig(
        **common, num_hidden_layers=config.spatial_num_layers,
        cross_attention_frequency=config.spatial_cross_attention_freq,
        encoder_hidden_size=config.spatial_encoder_width,
    )
    temporal = T.InstructBlipQFormerConfig(
        **common, num_hidden_layers=config.temporal_num_layers,
        cross_attention_frequency=config.temporal_cross_attention_freq,
        encoder_hidden_size=config.qformer_hidden_size,
        vocab_size=config.text_vocab_size + len(QFORMER_ADDED_TOKENS),
    )
    return spatial, temporal


class ContextAggregator(nn.Module):
    """Spatial Q-Former → windowed temporal Q-Former (text + region injection) → context injection.

    ``forward(frame_tokens, question_ids, question_mask, region_pooled, region_shape)`` returns (T_s, C): one context
    token per sparse frame for one question.
    """

    def __init__(self, config: AggregatorConfig, llm_hidden: int, shape_mask_points: int, shape_hidden: int,
                 shape_layers: int) -> None:
        super().__init__()
        import transformers as T

        self.config = config
        d, c = config.qformer_hidden_size, llm_hidden
        spatial_cfg, temporal_cfg = _qformer_configs(config)
        # Step 1: spatial Q-Former (queries only) on C→1408 projected, layer-normed frame tokens.
        self.vlm2spatial_proj = nn.Linear(c, config.spatial_encoder_width)
        self.spatial_ln = nn.LayerNorm(config.spatial_encoder_width)
        self.spatial_qformer = T.Blip2QFormerModel(spatial_cfg)
        self.spatial_query_tokens = nn.Parameter(torch.randn(1, config.spatial_num_queries, d) * 0.02)
        # Step 2: temporal Q-Former with the question as text input; <mask>/<pos> embeddings replaced.
        self.temporal_qformer = T.InstructBlipQFormerModel(temporal_cfg)
        self.temporal_query_tokens = nn.Parameter(torch.randn(1, config.temporal_num_queries, d) * 0.02)
        self.region_pool_proj = nn.Linear(c, d)  # MaskPooling → Linear(C, 768)
        self.region_shape_mlp = MLP(shape_mask_points, shape_hidden, d, shape_layers)  # 12544→1024→1024→768
        # Optional frame order for the temporal memory (AggregatorConfig.frame_time_embedding); sinusoidal start.
        self.frame_time_embed = (nn.Parameter(sinusoid_table(config.max_sparse_frames, d))
                                 if config.frame_time_embedding else None)
        # Step 3: temporal_context_inject.
        self.inject_q = nn.Linear(c, c)
        self.inject_k = nn.Linear(d, c)
        self.inject_v = nn.Linear(d, c)
        self.inject_out = nn.Linear(c, c)
        self.final_proj = nn.Linear(c, c)
        self.tokenizer = load_qformer_tokenizer(config.text_max_length)
        self.mask_token_id = self.tokenizer.convert_tokens_to_ids(QFORMER_MASK_TOKEN)
        self.pos_token_id = self.tokenizer.convert_tokens_to_ids(QFORMER_POS_TOKEN)
        self._injection: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.temporal_qformer.embeddings.word_embeddings.register_forward_hook(self._inject_regions)

    # -- text --------------------------------------------------------------------------------------------------
    def tokenize_question(self, question: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Question → (ids, attention mask) of shape (L,), each ``<mask>`` rewritten to ``<vp><mask><pos></vp>``."""
        return tokenize_question(self.tokenizer, question, self.config.text_max_length)

    # -- region injection (forward hook on the temporal Q-Former's word embeddings) ----------------------------
    def _inject_regions(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
        if self._injection is None:
            return None
        ids = inputs[0]
        pooled, shape, _ = self._injection
        output = output.clone()
        for token_id, values in ((self.mask_token_id, pooled), (self.pos_token_id, shape)):
            rows, cols = (ids == token_id).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            per_row = (ids == token_id).sum(dim=1)
            # Left truncation may drop early objects: the kept placeholders are the last ones of the question.
            order = torch.cat([torch.arange(values.shape[0] - int(n), values.shape[0]) for n in per_row])
            output[rows, cols] = values[order.to(values.device)].to(output.dtype)
        return output

    @contextmanager
    def _regions(self, pooled: torch.Tensor, shape: torch.Tensor) -> Iterator[None]:
        self._injection = (pooled, shape, torch.empty(0))
        try:
            yield
        finally:
            self._injection = None

    # -- compute -----------------------------------------------------------------------------------------------
    def spatial(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """(T, N, C) frame tokens → (T, Q_s, D) spatial query outputs."""
        memory = self.spatial_ln(self.vlm2spatial_proj(frame_tokens))
        queries = self.spatial_query_tokens.expand(frame_tokens.shape[0], -1, -1)
        out = self.spatial_qformer(query_embeds=queries, encoder_hidden_states=memory, return_dict=True)
        return out.last_hidden_state[:, : queries.shape[1]]

    def temporal(self, spatial_tokens: torch.Tensor, question_ids: torch.Tensor, question_mask: torch.Tensor,
                 region_pooled: torch.Tensor, region_shape: torch.Tensor) -> torch.Tensor:
        """(T, Q_s, D) → (n_windows·Q_t, D): windows of ``temporal_window_tokens`` with the same stride; the last
        window may be partial (internvl_sama.py: ``end_t = min(start_t + window, length)``)."""
        if self.frame_time_embed is not None:
            frames, limit = spatial_tokens.shape[0], self.frame_time_embed.shape[0]
            if frames > limit:
                raise ValueError(f"{frames} sparse frames but the frame-time table has {limit} rows "
                                 "(AggregatorConfig.max_sparse_frames)")
            spatial_tokens = spatial_tokens + self.frame_time_embed[:frames, None].to(spatial_tokens.dtype)
        memory = spatial_tokens.flatten(0, 1).unsqueeze(0)  # (1, T·Q_s, D)
        queries = self.temporal_query_tokens
        ids, text_mask = question_ids.unsqueeze(0), question_mask.unsqueeze(0)
        attention = torch.cat([torch.ones(1, queries.shape[1], dtype=text_mask.dtype, device=text_mask.device),
                               text_mask], dim=1)
        pooled = self.region_pool_proj(region_pooled)
        shape = self.region_shape_mlp(region_shape)
        window = self.config.temporal_window_tokens
        outputs = []
        with self._regions(pooled, shape):
            for start in range(0, memory.shape[1], window):
                chunk = memory[:, start : start + window]
                out = self.temporal_qformer(input_ids=ids, attention_mask=attention, query_embeds=queries,
                                            encoder_hidden_states=chunk, return_dict=True)
                outputs.append(out.last_hidden_state[0, : queries.shape[1]])
        if pooled.shape[0] == 0:  # keep every parameter on the graph (the release's dummy calls)
            outputs[0] = outputs[0] + 0.0 * (pooled.sum() + shape.sum())
        return torch.cat(outputs, dim=0)

    def inject(self, frame_tokens: torch.Tensor, temporal_tokens: torch.Tensor) -> torch.Tensor:
        """``temporal_context_inject``: cross-attention of frame tokens on temporal tokens, residual, spatial mean,
        final Linear → (T, C) (SAMA.md §1.3 step 3)."""
        query = self.inject_q(frame_tokens)  # (T, N, C)
        key, value = self.inject_k(temporal_tokens), self.inject_v(temporal_tokens)  # (M, C)
        attn = torch.softmax(query @ key.T / key.shape[-1] ** 0.5, dim=-1) @ value
        context = self.inject_out(attn) + frame_tokens
        return self.final_proj(context.mean(dim=1))

    def forward(self, frame_tokens: torch.Tensor, question_ids: torch.Tensor, question_mask: torch.Tensor,
                region_pooled: torch.Tensor, region_shape: torch.Tensor,
                spatial_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """One question's context tokens (T_s, C) from the sparse frame tokens (T_s, N, C).

        ``region_pooled`` (K, C) and ``region_shape`` (K, P) are the referred objects' mask-pooled features and
        flattened shape masks, in ``<mask>`` order. ``spatial_tokens`` can be passed to reuse step 1 across turns.
        """
        if spatial_tokens is None:
            spatial_tokens = self.spatial(frame_tokens)
        temporal_tokens = self.temporal(spatial_tokens, question_ids, question_mask, region_pooled, region_shape)
        return self.inject(frame_tokens, temporal_tokens)
