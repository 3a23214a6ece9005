"""SamaModel: backbone + aggregator + prompt encoder + grounding composed into one module — training forward with
losses (SAMA.md §1.5-§1.7), the freeze policy (§2), generation with [SEG] hidden states, save/load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sama.config import SamaConfig
from sama.errors import DataError, SamaError
from sama.model.aggregator import ContextAggregator
from sama.model.backbone import IMG_CONTEXT, P_END, P_START, SEG_TOKEN, SamaBackbone
from sama.model.losses import answer_cross_entropy, labelled_positions, mask_losses
from sama.model.processing import CHAT_TEMPLATES, ProcessedSample, SamaProcessor, TurnInputs
from sama.model.prompts import PromptEncoder


class TokenCountError(SamaError, ValueError):
    """The number of ``<IMG_CONTEXT>`` slots differs from the number of visual embeddings (SAMA.md §6.9)."""


@dataclass
class SamaOutput:
    """Result of :meth:`SamaModel.forward`: total loss and its weighted-sum parts (unweighted values here)."""

    loss: torch.Tensor
    ce_loss: torch.Tensor
    bce_loss: torch.Tensor
    dice_loss: torch.Tensor
    logits: torch.Tensor  # (B, P, V) at the labelled positions when labels are given, else (B, L, V)
    seg_logits: list[torch.Tensor | None] = field(default_factory=list)  # per sample (K, n_dense, h, w)


@dataclass
class GenerationResult:
    """Text generated for one prompt and the grounding inputs of its [SEG] tokens (``SamaModel.grounding_inputs``)."""

    text: str
    token_ids: list[int]
    seg_hidden: torch.Tensor


class SamaModel(nn.Module):
    """The SAMA model. ``model(**model.processor.collate([model.processor(s) for s in samples])).loss``."""

    def __init__(self, config: SamaConfig, tokenizer: Any | None = None, load_llm_weights: bool = True) -> None:
        super().__init__()
        from sama.model.grounding import SamaGrounding

        self.config = config
        self.backbone = SamaBackbone(config, tokenizer, load_llm_weights=load_llm_weights)
        hidden = config.llm.hidden_size
        p = config.prompts
        self.aggregator = ContextAggregator(config.aggregator, hidden, p.shape_mask_points, p.shape_mlp_hidden,
                                            p.shape_mlp_layers)
        self.prompt_encoder = PromptEncoder(config)
        self.grounding = SamaGrounding(config.sam2, hidden)
        self.processor = SamaProcessor(config, self.backbone.tokenizer, self.aggregator.tokenizer)
        self.img_context_id = self.backbone.token_ids[IMG_CONTEXT]
        self.seg_token_id = self.backbone.token_ids[SEG_TOKEN]
        self.apply_freeze_policy()

    @property
    def tokenizer(self) -> Any:
        return self.backbone.tokenizer

    # -- freeze policy (SAMA.md §2) ----------------------------------------------------------------------------
    def apply_freeze_policy(self) -> None:
        """Set ``requires_grad`` from ``config.trainable`` (and LoRA from ``config.lora``)."""
        t, lora = self.config.trainable, self.config.lora
        self.requires_grad_(False)
        self.backbone.vision_tower.requires_grad_(t.vision_tower)
        self.backbone.projector.requires_grad_(t.projector)
        self.backbone.language_model.requires_grad_(t.llm)
        self.backbone.vlm.lm_head.requires_grad_(t.llm)
        if lora.enabled:
            if not self.backbone.lora_enabled:
                self.backbone.enable_lora(lora.rank, lora.alpha, lora.dropout, lora.target_modules)
            for name, param in self.backbone.language_model.named_parameters():
                if "lora_" in name:
                    param.requires_grad_(True)
        if t.new_token_rows and not t.llm:
            self.backbone.enable_new_token_rows()
        self.aggregator.requires_grad_(t.aggregator)
        self.prompt_encoder.requires_grad_(t.prompt_encoder)
        for param in self.grounding.projection_parameters():
            param.requires_grad_(t.seg_projection)
        sam2 = self.grounding.sam2
        sam2.vision_encoder.requires_grad_(t.sam2_image_encoder)
        sam2.prompt_encoder.requires_grad_(t.sam2_prompt_encoder)
        sam2.mask_decoder.requires_grad_(t.sam2_mask_decoder)

    def trainable_parameter_names(self) -> list[str]:
        """Names of the parameters that receive gradients."""
        return [name for name, param in self.named_parameters() if param.requires_grad]

    def no_decay_parameter_names(self) -> list[str]:
        """Parameters an optimiser must not weight-decay: the trained new-token rows of the frozen embedding / LM
        head (``backbone.new_token_rows``; kept undecayed, as when they were rows of the full matrices)."""
        rows = self.backbone.new_token_rows
        return [name for name, param in self.named_parameters() if param is rows and param.requires_grad]

    # -- visual embeddings -------------------------------------------------------------------------------------
    def visual_embeddings(self, pixel_values: torch.Tensor, dense_positions: list[int],
                          turns: list[TurnInputs], dense_frames: bool = True) -> torch.Tensor:
        """All embeddings of one sample in ``<IMG_CONTEXT>`` fill order (SAMA.md §1.5): dense-frame tokens (left out
        when ``dense_frames`` is False, for a prompt without them), then per turn its S context tokens and 2 tokens
        per referred object. Returns (M, C)."""
        frame_tokens = self.backbone.encode_frames(pixel_values)  # (T_s, N, C)
        dense_tokens = frame_tokens[dense_positions]
        spatial = self.aggregator.spatial(frame_tokens)
        parts = [dense_tokens.flatten(0, 1)] if dense_frames else []
        dense_pixels = pixel_values[dense_positions]
        parts += [self.turn_embeddings(frame_tokens, dense_tokens, spatial, turn, dense_pixels) for turn in turns]
        return torch.cat(parts, dim=0)

    def turn_embeddings(self, frame_tokens: torch.Tensor, dense_tokens: torch.Tensor, spatial: torch.Tensor,
                        turn: Any, dense_pixels: torch.Tensor) -> torch.Tensor:
        """One turn's fill after the dense frames: its S context tokens, then 2 tokens per referred object.

        ``turn`` carries ``ref_grid``, ``ref_frames``, ``ref_shape``, ``ref_boxes``, ``qformer_ids`` and
        ``qformer_mask``; ``dense_pixels`` (n_dense, C, H, W) is the dense frames' vision input."""
        device = frame_tokens.device
        pooled = self.prompt_encoder.pool(dense_tokens, turn.ref_grid.to(device), turn.ref_frames)
        shape = turn.ref_shape.to(device, frame_tokens.dtype)
        context = self.aggregator(frame_tokens, turn.qformer_ids.to(device), turn.qformer_mask.to(device), pooled,
                                  shape.flatten(1), spatial_tokens=spatial)
        region_pixels = dense_pixels.to(device)[turn.ref_frames.to(device)]
        tokens = self.prompt_encoder(pooled, shape, frame_tokens, region_pixels, turn.ref_boxes.to(device))
        return torch.cat([context, tokens], dim=0)

    def fill_slots(self, input_ids: torch.Tensor, visual: list[torch.Tensor]) -> torch.Tensor:
        """Token embeddings with every ``<IMG_CONTEXT>`` slot replaced, in order, by the sample's visual embeddings.

        Raises:
            TokenCountError: when a sample's slot count differs from its embedding count (SAMA.md §6.9).
        """
        embeds = self.backbone.embed(input_ids)
        rows = []
        for b in range(input_ids.shape[0]):
            positions = (input_ids[b] == self.img_context_id).nonzero(as_tuple=True)[0]
            if positions.numel() != visual[b].shape[0]:
                raise TokenCountError(
                    f"sample {b}: {positions.numel()} <IMG_CONTEXT> slots in the token ids but {visual[b].shape[0]} "
                    "visual embeddings (dense frames + per-turn context tokens + 2 per referred object)"
                )
            row = embeds[b].clone()
            row[positions] = visual[b].to(row.dtype)
            rows.append(row)
        return torch.stack(rows)

    # -- grounding inputs --------------------------------------------------------------------------------------
    def phrase_spans(self, ids: torch.Tensor | list[int]) -> list[list[int]]:
        """Per [SEG] in ``ids``, in order: the token ids of the ``<p> … </p>`` phrase before it (since the previous
        [SEG]); an empty list for a [SEG] without one (e.g. "Sure, [SEG].")."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        p_start, p_end = self.backbone.token_ids[P_START], self.backbone.token_ids[P_END]
        spans: list[list[int]] = []
        start = end = None
        for position, token in enumerate(ids):
            if token == p_start:
                start, end = position, None
            elif token == p_end and start is not None:
                end = position
            elif token == self.seg_token_id:
                spans.append(ids[start + 1 : end] if start is not None and end is not None else [])
                start = end = None
        return spans

    def phrase_embeddings(self, ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Per [SEG] in ``ids``, in order: the mean input embedding of the words of its phrase (:meth:`phrase_spans`);
        zeros for a [SEG] without one. Returns (K, C)."""
        weight = self.backbone.input_embeddings().weight
        rows = [self.backbone.embed(torch.tensor(words, device=weight.device)).mean(0) if words
                else weight.new_zeros(weight.shape[1]) for words in self.phrase_spans(ids)]
        return torch.stack(rows) if rows else weight.new_zeros(0, weight.shape[1])

    def grounding_inputs(self, ids: torch.Tensor | list[int], seg_states: torch.Tensor) -> torch.Tensor:
        """What the grounding projects for each [SEG] of ``ids``: its LLM last-layer state (K, C), followed by the
        phrase embedding when ``sam2.seg_phrase_input`` is on (K, 2C)."""
        if self.grounding.phrase_proj is None:
            return seg_states
        phrases = self.phrase_embeddings(ids).to(seg_states)
        if phrases.shape[0] != seg_states.shape[0]:
            raise DataError(f"{seg_states.shape[0]} [SEG] states but {phrases.shape[0]} [SEG] tokens in the ids",
                            field="seg_embeddings")
        return torch.cat([seg_states, phrases], dim=-1)

    # -- training forward --------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: list[torch.Tensor],
                dense_positions: list[list[int]], turns: list[list[TurnInputs]], frames: list[Any],
                labels: torch.Tensor | None = None, seg_masks: list[torch.Tensor | None] | None = None,
                dense_frames: bool | Sequence[bool] = True, **_: Any) -> SamaOutput:
        """Loss of a collated batch: CE on answer tokens + BCE/Dice of the [SEG] masks on the dense frames.
        ``dense_frames`` False (for the whole batch, or per sample as ``collate`` gives it) for token ids built
        without the dense-frame slots (see :meth:`visual_embeddings`)."""
        device = self.backbone.embed(input_ids[:, :1]).device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        flags = [dense_frames] * len(pixel_values) if isinstance(dense_frames, bool) else list(dense_frames)
        visual = [self.visual_embeddings(pv.to(device), dp, tt, flag) for pv, dp, tt, flag in
                  zip(pixel_values, dense_positions, turns, flags)]
        embeds = self.fill_slots(input_ids, visual)
        labels = labels.to(device) if labels is not None else None
        positions = labelled_positions(labels) if labels is not None else None
        out = self.backbone.run_llm(embeds, attention_mask, logits_to_keep=positions if positions is not None else 0)
        logits, last_hidden = out.logits, out.hidden_states[-1]
        ce = answer_cross_entropy(logits, labels, positions) if positions is not None else logits.sum() * 0.0
        bce_terms, dice_terms, seg_logits = [], [], []
        for b in range(input_ids.shape[0]):
            seg_hidden = self.grounding_inputs(input_ids[b], last_hidden[b][input_ids[b] == self.seg_token_id])
            target = seg_masks[b] if seg_masks is not None else None
            if target is None or seg_hidden.shape[0] == 0:
                if target is not None and target.shape[0]:
                    raise DataError(f"{target.shape[0]} [SEG] ground-truth masks but no [SEG] token in the ids",
                                    record=b, field="seg_masks")
                seg_logits.append(None)
                continue
            if seg_hidden.shape[0] != target.shape[0]:
                raise DataError(f"{seg_hidden.shape[0]} [SEG] tokens but {target.shape[0]} ground-truth masks",
                                record=b, field="seg_masks")
            features = self.grounding.image_features(frames[b][dense_positions[b]])
            mask_logits = self.grounding.decode(features, seg_hidden)  # (K, n_dense, h, w)
            bce, dice = mask_losses(mask_logits.flatten(0, 1), target.to(device).flatten(0, 1), self.config.loss)
            bce_terms.append(bce)
            dice_terms.append(dice)
            seg_logits.append(mask_logits)
        if bce_terms:
            bce, dice = torch.stack(bce_terms).mean(), torch.stack(dice_terms).mean()
        else:  # keep the [SEG] head on the graph with zero weight (the release's pseudo data, SAMA.md §1.7)
            anchor = sum(p.sum() for p in self.grounding.projection_parameters()) * 0.0
            bce, dice = anchor, anchor
        w = self.config.loss
        loss = w.ce_weight * ce + w.bce_weight * bce + w.dice_weight * dice
        return SamaOutput(loss=loss, ce_loss=ce.detach(), bce_loss=bce.detach(), dice_loss=dice.detach(),
                          logits=logits, seg_logits=seg_logits)

    # -- generation --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, sample: ProcessedSample, max_new_tokens: int = 256, **kwargs: Any) -> GenerationResult:
        """Greedy decoding for one prompt (from ``processor.build_prompt``) → text and [SEG] last-layer states."""
        device = self.backbone.embed(sample.input_ids[:1]).device
        ids = sample.input_ids.unsqueeze(0).to(device)
        visual = self.visual_embeddings(sample.pixel_values.to(device), sample.dense_positions, sample.turns)
        embeds = self.fill_slots(ids, [visual])
        suffix = CHAT_TEMPLATES[self.config.llm.chat_template]["SUFFIX"]
        stop = [i for i in (self.tokenizer.convert_tokens_to_ids(suffix), self.tokenizer.eos_token_id)
                if i is not None]
        out = self.backbone.vlm.generate(
            inputs_embeds=embeds, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            do_sample=False, output_hidden_states=True, return_dict_in_generate=True, eos_token_id=stop,
            pad_token_id=self.processor.pad_token_id, **kwargs,
        )
        generated = out.sequences[0][-len(out.hidden_states):]  # with inputs_embeds only new tokens are returned
        # hidden_states[t] (t ≥ 1) holds the state of generated token t−1 fed back as input (official
        # get_seg_hidden_states); the last generated token is never fed back.
        fed = [h[-1][0, -1] for h in out.hidden_states[1:]]
        fed_ids = generated[:-1]
        if fed:
            states = torch.stack(fed)
            seg_hidden = self.grounding_inputs(fed_ids, states[fed_ids == self.seg_token_id])
        else:
            seg_hidden = self.grounding_inputs([], embeds.new_zeros(0, embeds.shape[-1]))
        token_ids = [int(i) for i in generated if int(i) not in stop]
        text = self.tokenizer.decode(token_ids, skip_special_tokens=False)
        return GenerationResult(text=text, token_ids=token_ids, seg_hidden=seg_hidden)

    # -- chat ------------------------------------------------------------------------------------------------------
    def start_session(self, video: Any, **kwargs: Any) -> Any:
        """A :class:`sama.model.session.ChatSession` over ``video`` (array, frame folder / file, or Video)."""
        from sama.model.session import ChatSession

        return ChatSession(self, video, **kwargs)

    def predict(self, video: Any, question: str, refs: Any = (), **kwargs: Any) -> dict[str, Any]:
        """Single-shot answer + masks (official ``predict_forward`` semantics, see ``sama.model.session.predict``)."""
        from sama.model.session import predict

        return predict(self, video, question, refs, **kwargs)

    # -- persistence -------------------------------------------------------------------------------------------
    def base_parameter_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes restored from the packaged SmolLM2 base rather than saved: its frozen transformer
        layers and final norm. Of the embedding / tied head only the trained new-token rows are saved
        (``backbone.new_token_rows``, written by :meth:`save_pretrained`)."""
        if self.config.llm.kind != "smollm2" or self.config.trainable.llm:
            return ()
        llm = "backbone.vlm.model.language_model."
        if not self.config.lora.enabled:
            return (f"{llm}layers.", f"{llm}norm.")
        # Under LoRA only the adapters are trained: the wrapped base weights and the norms come from SmolLM2.
        return (f"{llm}layers.*.base_layer.", f"{llm}layers.*layernorm.", f"{llm}norm.")

    def save_pretrained(self, directory: str | Path, dtype: str | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (atomic; see ``sama.model.checkpoint``)."""
        from sama.model.checkpoint import save_checkpoint

        excluded = self.base_parameter_prefixes()
        # Of the embedding / tied head only the new-token rows are written when the rest is the packaged base; the
        # compact form is used for the file only, so state_dict() keeps real parameter names (DCP, optimisers).
        self.backbone.compact_embeddings = bool(excluded)
        try:
            return save_checkpoint(directory, self, self.config, exclude_prefixes=excluded, dtype=dtype)
        finally:
            self.backbone.compact_embeddings = False

    @classmethod
    def from_pretrained(cls, directory: str | Path, allow_pickle: bool = False) -> SamaModel:
        """Rebuild the model from ``config.json`` and load the weights strictly (missing/unexpected keys raise)."""
        from sama.errors import CheckpointError
        from sama.model.checkpoint import load_checkpoint, read_checkpoint_config

        data = read_checkpoint_config(directory)
        if data is None:
            raise CheckpointError(f"{directory}: no config.json; expected a folder written by save_pretrained")
        model = cls(SamaConfig.from_dict(data))
        model.backbone.compact_embeddings = bool(model.base_parameter_prefixes())  # the form save_pretrained wrote
        try:
            load_checkpoint(directory, model, strict=True, allow_pickle=allow_pickle)
        finally:
            model.backbone.compact_embeddings = False
        return model
