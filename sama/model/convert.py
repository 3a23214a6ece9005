"""Convert the official SAMA / Sa2VA HF checkpoints (``Sunye2311/SAMA_{1B,4B,8B}``, ``Sa2VAChatModel`` remote code)
into our ``SamaModel`` state dict, strictly: every official key is mapped or listed as intentionally dropped (with a
reason), every model key is filled, otherwise ``CheckpointError`` names them all.

Official key layout (SAMA.md §1, §4; ``hf/convert_to_hf_st.py`` strips ``mllm.model.``/``mllm.`` and renames
``.gamma`` → ``.g_weight``; ``hf/models/modeling_sa2va_chat_all.py`` defines the modules):

- ``vision_model.*``   InternViT (``attn.qkv`` fused, ``ls1``/``ls2``, ``norm1``/``norm2``) → transformers InternVL vision
- ``mlp1.{0,1,3}``     LayerNorm / Linear / Linear → ``multi_modal_projector``
- ``language_model.*`` Qwen2 in HF layout (1B/4B), or InternLM2 (8B: fused ``wqkv``, ``w1/w2/w3``, ``output``) → Llama
- ``grounding_encoder.sam2_model.*`` facebookresearch SAM2 layout → transformers ``Sam2VideoModel``
- ``text_hidden_fcs.*`` → ``grounding.seg_proj``
- ``spatial_Qformer`` / ``temporal_Qformer`` (LAVIS ``BertLMHeadModel``; ``.bert.`` prefix, ``attention.self``) and the
  aggregator projections (``vlm2spatial_Qformer_proj``, ``Qformer_temp_attn_*``, ``Qformer_*_proj(_st)``, query tokens)

The renaming rules are written from the official module definitions and from transformers' own conversion scripts
(``convert_internvl_weights_to_hf.py``, ``convert_sam2_video_to_hf.py``), which the installed transformers wheel does
not ship, so they cannot be imported. The rules are templates that work in both directions, so
:func:`to_official_state_dict` (the inverse, used by the tests) shares them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from sama.config import SamaConfig
from sama.errors import CheckpointError

LLMLayout = Literal["hf", "internlm2"]
logger = logging.getLogger(__name__)

# Prefixes of our SamaModel state dict.
VISION = "backbone.vlm.model.vision_tower."
PROJECTOR = "backbone.vlm.model.multi_modal_projector."
LLM_BODY = "backbone.vlm.model.language_model."
LM_HEAD = "backbone.vlm.lm_head."
NEW_TOKEN_ROWS = "backbone.new_token_rows"  # SamaBackbone.enable_new_token_rows: a copy of embedding rows
SAM2 = "grounding.sam2."
OFFICIAL_SAM2 = "grounding_encoder.sam2_model."

# Official temporal Q-Former tokenizer (modeling_sa2va_chat_all.py init_temporal_tokenizer): bert-base-uncased
# (30522 tokens) + bos "[DEC]" + 7 additional special tokens → 30530 embedding rows.
BERT_BASE_VOCAB = 30522  # bert-base-uncased vocabulary size
OFFICIAL_TEMPORAL_ADDED_TOKENS = ("[DEC]", "<mask>", "<pos>", "[SEG]", "<p>", "</p>", "<vp>", "</vp>")

# Official keys that are intentionally not loaded, with the reason (regex on the official key).
DROPPED_OFFICIAL_KEYS: tuple[tuple[str, str], ...] = (
    (r"\.position_ids$", "LAVIS BertEmbeddings persistent buffer arange(max_positions); recomputed, not a weight"),
    (r"\.rotary_emb\.inv_freq$", "rotary-embedding buffer; recomputed from rope_theta"),
    (r"^(spatial|temporal)_Qformer\.cls\.", "Q-Former masked-LM head; set to None by the official model, unused"),
    (r"^spatial_Qformer\.bert\.embeddings\.(word|position)_embeddings\.",
     "spatial Q-Former runs queries only (word/position embeddings removed, SAMA.md §1.3 step 1)"),
    (r"^spatial_Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\.",
     "spatial Q-Former text FFN; removed by the official model (queries only, SAMA.md §1.3 step 1)"),
)

# Model keys that official SAM2.0 (sam2_hiera_large, SAMA.md §1.1) has no weights for. transformers' Sam2VideoModel
# creates them for SAM2.1; zero is the exact SAM2.0 behaviour (zero occlusion embedding adds nothing; a zero projection
# gives the zero object-pointer position encoding of add_tpos_enc_to_obj_ptrs=False, hf/models/sam2.py:106).
SAM2_0_NEUTRAL_FILLS: dict[str, str] = {
    SAM2 + "occlusion_spatial_embedding_parameter": "SAM2.1-only no_obj_embed_spatial; zero = SAM2.0 behaviour",
    SAM2 + "temporal_positional_encoding_projection_layer.weight": "SAM2.1-only obj_ptr_tpos_proj; zero = no tpos",
    SAM2 + "temporal_positional_encoding_projection_layer.bias": "SAM2.1-only obj_ptr_tpos_proj; zero = no tpos",
}

Rule = tuple[str, str]  # (official template, our template); "{i}" / "{j}" stand for layer numbers


def _qformer_rules(official: str, ours: str, top_layernorm: str) -> list[Rule]:
    """LAVIS BertLMHeadModel (``.bert.``, ``attention.self``, ``embeddings.LayerNorm``) → transformers Q-Former."""
    layer_o, layer_u = f"{official}.bert.encoder.layer.{{i}}.", f"{ours}.encoder.layer.{{i}}."
    return [
        (f"{official}.bert.embeddings.LayerNorm.", f"{ours}.{top_layernorm}."),
        (f"{official}.bert.embeddings.word_embeddings.", f"{ours}.embeddings.word_embeddings."),
        (f"{official}.bert.embeddings.position_embeddings.", f"{ours}.embeddings.position_embeddings."),
        (layer_o + "attention.self.", layer_u + "attention.attention."),
        (layer_o + "crossattention.self.", layer_u + "crossattention.attention."),
        (layer_o, layer_u),  # attention.output.*, crossattention.output.*, intermediate(_query), output(_query)
    ]


AGGREGATOR_RULES: list[Rule] = [
    ("spatial_Qformer_query_tokens", "aggregator.spatial_query_tokens"),
    ("temporal_Qformer_query_tokens", "aggregator.temporal_query_tokens"),
    ("vlm2spatial_Qformer_proj.", "aggregator.vlm2spatial_proj."),
    ("spatial_Qformer_ln.", "aggregator.spatial_ln."),
    *_qformer_rules("spatial_Qformer", "aggregator.spatial_qformer", "layernorm"),
    *_qformer_rules("temporal_Qformer", "aggregator.temporal_qformer", "embeddings.layernorm"),
    ("Qformer_mask_pooling_proj_st.", "aggregator.region_pool_proj."),  # MaskPooling → Linear(C, 768)
    ("Qformer_mask_proj_st.", "aggregator.region_shape_mlp."),  # MLP(12544, 1024, 768, 3)
    ("Qformer_temp_attn_q.", "aggregator.inject_q."),
    ("Qformer_temp_attn_k.", "aggregator.inject_k."),
    ("Qformer_temp_attn_v.", "aggregator.inject_v."),
    ("Qformer_temp_proj.", "aggregator.inject_out."),
    ("Qformer_final_proj.", "aggregator.final_proj."),
    ("Qformer_mask_pooling_proj.", "prompt_encoder.pool_proj."),  # SAMA.md §1.4 token 1
    ("Qformer_mask_proj.", "prompt_encoder.shape_mlp."),  # SAMA.md §1.4 token 2
    ("text_hidden_fcs.", "grounding.seg_proj."),  # SAMA.md §1.1 [SEG] projection
]

_VIT_LAYER_O, _VIT_LAYER_U = "vision_model.encoder.layers.{i}.", VISION + "encoder.layer.{i}."
VISION_RULES: list[Rule] = [
    ("vision_model.embeddings.class_embedding", VISION + "embeddings.cls_token"),
    ("vision_model.embeddings.position_embedding", VISION + "embeddings.position_embeddings"),
    ("vision_model.embeddings.patch_embedding.", VISION + "embeddings.patch_embeddings.projection."),
    (_VIT_LAYER_O + "ls1", _VIT_LAYER_U + "lambda_1"),
    (_VIT_LAYER_O + "ls2", _VIT_LAYER_U + "lambda_2"),
    (_VIT_LAYER_O + "attn.proj.", _VIT_LAYER_U + "attention.projection_layer."),
    (_VIT_LAYER_O + "attn.q_norm.", _VIT_LAYER_U + "attention.q_norm."),
    (_VIT_LAYER_O + "attn.k_norm.", _VIT_LAYER_U + "attention.k_norm."),
    (_VIT_LAYER_O + "norm1.", _VIT_LAYER_U + "layernorm_before."),
    (_VIT_LAYER_O + "norm2.", _VIT_LAYER_U + "layernorm_after."),
    (_VIT_LAYER_O + "mlp.", _VIT_LAYER_U + "mlp."),
    ("mlp1.0.", PROJECTOR + "layer_norm."),  # InternVL mlp1 = LayerNorm, Linear, GELU, Linear
    ("mlp1.1.", PROJECTOR + "linear_1."),
    ("mlp1.3.", PROJECTOR + "linear_2."),
]

LLM_RULES: dict[LLMLayout, list[Rule]] = {
    "hf": [  # Qwen2ForCausalLM (SAMA-1B/4B) saved in transformers layout
        ("language_model.model.", LLM_BODY),
        ("language_model.lm_head.", LM_HEAD),
    ],
    "internlm2": [  # InternLM2ForCausalLM (SAMA-8B) → Llama names (modeling_internlm2.py)
        ("language_model.model.tok_embeddings.", LLM_BODY + "embed_tokens."),
        ("language_model.model.layers.{i}.attention.wo.", LLM_BODY + "layers.{i}.self_attn.o_proj."),
        ("language_model.model.layers.{i}.feed_forward.w1.", LLM_BODY + "layers.{i}.mlp.gate_proj."),
        ("language_model.model.layers.{i}.feed_forward.w2.", LLM_BODY + "layers.{i}.mlp.down_proj."),
        ("language_model.model.layers.{i}.feed_forward.w3.", LLM_BODY + "layers.{i}.mlp.up_proj."),
        ("language_model.model.layers.{i}.attention_norm.", LLM_BODY + "layers.{i}.input_layernorm."),
        ("language_model.model.layers.{i}.ffn_norm.", LLM_BODY + "layers.{i}.post_attention_layernorm."),
        ("language_model.model.norm.", LLM_BODY + "norm."),
        ("language_model.output.", LM_HEAD),
    ],
}


def _sam2_rules() -> list[Rule]:
    """facebookresearch SAM2 names (with SAMA's ``g_weight`` for CXBlock ``gamma``) → transformers Sam2Video names."""
    o, u = OFFICIAL_SAM2, SAM2
    trunk_o, trunk_u = o + "image_encoder.trunk.", u + "vision_encoder.backbone."
    block_o, block_u = trunk_o + "blocks.{i}.", trunk_u + "blocks.{i}."
    dec_o, dec_u = o + "sam_mask_decoder.", u + "mask_decoder."
    twl_o, twl_u = dec_o + "transformer.layers.{i}.", dec_u + "transformer.layers.{i}."
    mem_o, mem_u = o + "memory_attention.layers.{i}.", u + "memory_attention.layers.{i}."
    fuse_o, fuse_u = o + "memory_encoder.fuser.layers.{i}.", u + "memory_encoder.memory_fuser.layers.{i}."
    pe_o, pe_u = o + "sam_prompt_encoder.", u + "prompt_encoder."
    rules: list[Rule] = [
        (trunk_o + "pos_embed_window", trunk_u + "pos_embed_window"),
        (trunk_o + "pos_embed", trunk_u + "pos_embed"),
        (trunk_o + "patch_embed.proj.", trunk_u + "patch_embed.projection."),
        (block_o + "norm1.", block_u + "layer_norm1."),
        (block_o + "norm2.", block_u + "layer_norm2."),
        (block_o + "mlp.layers.0.", block_u + "mlp.proj_in."),
        (block_o + "mlp.layers.1.", block_u + "mlp.proj_out."),
        (block_o, block_u),  # attn.qkv, attn.proj, proj
        (o + "image_encoder.neck.convs.{i}.conv.", u + "vision_encoder.neck.convs.{i}."),
        (pe_o + "pe_layer.positional_encoding_gaussian_matrix", pe_u + "shared_embedding.positional_embedding"),
        (pe_o + "not_a_point_embed.", pe_u + "not_a_point_embed."),
        (pe_o + "no_mask_embed.", pe_u + "no_mask_embed."),
        (pe_o + "mask_downscaling.0.", pe_u + "mask_embed.conv1."),
        (pe_o + "mask_downscaling.1.", pe_u + "mask_embed.layer_norm1."),
        (pe_o + "mask_downscaling.3.", pe_u + "mask_embed.conv2."),
        (pe_o + "mask_downscaling.4.", pe_u + "mask_embed.layer_norm2."),
        (pe_o + "mask_downscaling.6.", pe_u + "mask_embed.conv3."),
        (dec_o + "output_upscaling.0.", dec_u + "upscale_conv1."),
        (dec_o + "output_upscaling.1.", dec_u + "upscale_layer_norm."),
        (dec_o + "output_upscaling.3.", dec_u + "upscale_conv2."),
        (dec_o + "transformer.norm_final_attn.", dec_u + "transformer.layer_norm_final_attn."),
        (dec_o + "transformer.final_attn_token_to_image.out_proj.",
         dec_u + "transformer.final_attn_token_to_image.o_proj."),
        (dec_o + "transformer.final_attn_token_to_image.", dec_u + "transformer.final_attn_token_to_image."),
        (twl_o + "mlp.layers.0.", twl_u + "mlp.proj_in."),
        (twl_o + "mlp.layers.1.", twl_u + "mlp.proj_out."),
    ]
    for n in (1, 2, 3, 4):
        rules.append((twl_o + f"norm{n}.", twl_u + f"layer_norm{n}."))
    for attn in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token"):
        rules.append((twl_o + f"{attn}.out_proj.", twl_u + f"{attn}.o_proj."))
    rules.append((twl_o, twl_u))
    for head in ("output_hypernetworks_mlps.{j}", "iou_prediction_head", "pred_obj_score_head"):
        rules += _three_layer_mlp(dec_o + head + ".", dec_u + head + ".")
    rules.append((dec_o, dec_u))  # iou_token, mask_tokens, obj_score_token, conv_s0, conv_s1
    for n in (1, 2, 3):
        rules.append((mem_o + f"norm{n}.", mem_u + f"layer_norm{n}."))
    for attn in ("self_attn", "cross_attn_image"):
        rules.append((mem_o + f"{attn}.out_proj.", mem_u + f"{attn}.o_proj."))
    rules += [
        (mem_o, mem_u),  # {self_attn,cross_attn_image}.{q,k,v}_proj, linear1, linear2
        (o + "memory_attention.norm.", u + "memory_attention.layer_norm."),
        (o + "memory_encoder.pix_feat_proj.", u + "memory_encoder.feature_projection."),
        (o + "memory_encoder.out_proj.", u + "memory_encoder.projection."),
        (fuse_o + "dwconv.", fuse_u + "depthwise_conv."),
        (fuse_o + "norm.", fuse_u + "layer_norm."),
        (fuse_o + "pwconv1.", fuse_u + "pointwise_conv1."),
        (fuse_o + "pwconv2.", fuse_u + "pointwise_conv2."),
        (fuse_o + "g_weight", fuse_u + "scale"),  # convert_to_hf_st.py renames CXBlock .gamma → .g_weight
        (fuse_o + "gamma", fuse_u + "scale"),  # plain facebookresearch name
        (o + "no_mem_embed", u + "no_memory_embedding"),
        (o + "no_mem_pos_enc", u + "no_memory_positional_encoding"),
        (o + "maskmem_tpos_enc", u + "memory_temporal_positional_encoding"),
        (o + "no_obj_ptr", u + "no_object_pointer"),
        (o + "no_obj_embed_spatial", u + "occlusion_spatial_embedding_parameter"),
        (o + "obj_ptr_tpos_proj.", u + "temporal_positional_encoding_projection_layer."),
        (o + "mask_downsample.", u + "mask_downsample."),
        *_three_layer_mlp(o + "obj_ptr_proj.", u + "object_pointer_proj."),
    ]
    return rules


def _three_layer_mlp(official: str, ours: str) -> list[Rule]:
    """SAM2 ``MLP.layers.{0,1,2}`` → transformers ``proj_in`` / ``layers.0`` / ``proj_out``."""
    return [(official + "layers.0.", ours + "proj_in."), (official + "layers.1.", ours + "layers.0."),
            (official + "layers.2.", ours + "proj_out.")]


SAM2_RULES = _sam2_rules()


# -- templates ---------------------------------------------------------------------------------------------------
def _template_regex(template: str) -> re.Pattern[str]:
    """``a.{i}.b.`` → ``^a\\.(?P<i>\\d+)\\.b\\.`` (prefix match; a template without a trailing dot must end the key)."""
    parts = re.split(r"\{(\w)\}", template)
    pattern = "".join(re.escape(p) if k % 2 == 0 else rf"(?P<{p}>\d+)" for k, p in enumerate(parts))
    return re.compile("^" + pattern + ("" if template.endswith(".") else "$"))


class RuleSet:
    """Ordered bidirectional prefix-rename rules; the first matching rule wins."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = [(o, u, _template_regex(o), _template_regex(u)) for o, u in rules]

    def forward(self, key: str) -> str | None:
        """Official key → our key (``None`` if no rule matches)."""
        return self._apply(key, direction=0)

    def inverse(self, key: str) -> str | None:
        """Our key → official key (``None`` if no rule matches)."""
        return self._apply(key, direction=1)

    def _apply(self, key: str, direction: int) -> str | None:
        for rule in self.rules:
            match = rule[2 + direction].match(key)
            if match:
                return rule[1 - direction].format(**match.groupdict()) + key[match.end():]
        return None


# -- report ------------------------------------------------------------------------------------------------------
@dataclass
class ConversionReport:
    """What the conversion did with every key."""

    mapped: dict[str, list[str]] = field(default_factory=dict)  # official key → our key(s)
    dropped: dict[str, str] = field(default_factory=dict)  # official key → reason
    filled: dict[str, str] = field(default_factory=dict)  # our key → why it was filled without an official key
    adapted: dict[str, str] = field(default_factory=dict)  # our key → how its shape was adapted
    llm_layout: LLMLayout = "hf"
    tokenizer: str = "not loaded"  # where the model's tokenizer came from (set by load_official_checkpoint)

    def summary(self) -> str:
        """A few lines for the CLI."""
        lines = [f"mapped {len(self.mapped)} official tensors (LLM layout {self.llm_layout!r}), "
                 f"dropped {len(self.dropped)}, filled {len(self.filled)}, adapted {len(self.adapted)}; "
                 f"tokenizer: {self.tokenizer}"]
        lines += [f"  filled {k}: {v}" for k, v in sorted(self.filled.items())]
        lines += [f"  adapted {k}: {v}" for k, v in sorted(self.adapted.items())]
        reasons: dict[str, int] = {}
        for reason in self.dropped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f"  dropped {n}× ({reason})" for reason, n in sorted(reasons.items())]
        return "\n".join(lines)


# -- official → ours ---------------------------------------------------------------------------------------------
def detect_llm_layout(keys: Iterable[str]) -> LLMLayout:
    """``internlm2`` when the LLM uses fused ``attention.wqkv`` (SAMA-8B), else ``hf`` (Qwen2 / Llama layout)."""
    return "internlm2" if any(".attention.wqkv." in k for k in keys if k.startswith("language_model.")) else "hf"


def _drop_reason(key: str) -> str | None:
    for pattern, reason in DROPPED_OFFICIAL_KEYS:
        if re.search(pattern, key):
            return reason
    return None


def split_internlm2_wqkv(wqkv: torch.Tensor, num_heads: int, num_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """InternLM2 fused ``wqkv`` (rows grouped per KV head as [q × groups, k, v], modeling_internlm2.py) → q, k, v."""
    groups = num_heads // num_kv_heads
    rows, cols = wqkv.shape
    head_dim = rows // (num_kv_heads * (groups + 2))
    blocks = wqkv.reshape(num_kv_heads, groups + 2, head_dim, cols)
    q = blocks[:, :groups].reshape(-1, cols)
    k = blocks[:, groups].reshape(-1, cols)
    v = blocks[:, groups + 1].reshape(-1, cols)
    return q.contiguous(), k.contiguous(), v.contiguous()


def fuse_internlm2_wqkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """Inverse of :func:`split_internlm2_wqkv`."""
    cols = q.shape[1]
    head_dim = k.shape[0] // num_kv_heads
    groups = q.shape[0] // (num_kv_heads * head_dim)
    blocks = torch.cat([q.reshape(num_kv_heads, groups, head_dim, cols), k.reshape(num_kv_heads, 1, head_dim, cols),
                        v.reshape(num_kv_heads, 1, head_dim, cols)], dim=1)
    return blocks.reshape(-1, cols)


_VIT_QKV = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)$")
_LLM_WQKV = re.compile(r"^language_model\.model\.layers\.(\d+)\.attention\.wqkv\.weight$")
_POINT_EMBED = re.compile(r"^" + re.escape(OFFICIAL_SAM2) + r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$")
_MASK_DOWN = re.compile(r"^" + re.escape(OFFICIAL_SAM2) + r"memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(.+)$")
_ALL_RULES: list[Rule] = [*AGGREGATOR_RULES, *VISION_RULES, *SAM2_RULES]


def _rules(layout: LLMLayout) -> RuleSet:
    return RuleSet([*_ALL_RULES, *LLM_RULES[layout]])


def convert_with_report(state_dict: Mapping[str, torch.Tensor], config: SamaConfig,
                        expected: Mapping[str, torch.Tensor] | None = None,
                        ) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Official state dict → (our state dict, report). With ``expected`` (our model's state dict), the result is
    checked strictly against it (see :func:`check_against_model`)."""
    layout = detect_llm_layout(state_dict)
    rules, report = _rules(layout), ConversionReport(llm_layout=layout)
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    points: dict[int, torch.Tensor] = {}
    downsampler: dict[int, list[tuple[str, torch.Tensor]]] = {}

    def put(official: str, ours: str, value: torch.Tensor) -> None:
        if ours in out:
            raise CheckpointError(f"official keys map twice onto {ours!r} (second: {official!r})")
        out[ours] = value
        report.mapped.setdefault(official, []).append(ours)

    for key, value in state_dict.items():
        if (reason := _drop_reason(key)) is not None:
            report.dropped[key] = reason
        elif match := _VIT_QKV.match(key):
            layer, kind = match.groups()
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                put(key, f"{VISION}encoder.layer.{layer}.attention.{name}.{kind}", part.contiguous())
        elif layout == "internlm2" and (match := _LLM_WQKV.match(key)):
            parts = split_internlm2_wqkv(value, config.llm.num_heads, config.llm.num_kv_heads)
            for name, part in zip(("q_proj", "k_proj", "v_proj"), parts):
                put(key, f"{LLM_BODY}layers.{match.group(1)}.self_attn.{name}.weight", part)
        elif match := _POINT_EMBED.match(key):
            points[int(match.group(1))] = value
            report.mapped[key] = [SAM2 + "prompt_encoder.point_embed.weight"]
        elif match := _MASK_DOWN.match(key):
            downsampler.setdefault(int(match.group(1)), []).append((match.group(2), value))
            report.mapped[key] = []  # filled below
        elif (ours := rules.forward(key)) is not None:
            put(key, ours, value)
        else:
            unmapped.append(key)
    if points:  # SAM2 point_embeddings.{0..3} (one Embedding each) → one stacked point_embed table
        out[SAM2 + "prompt_encoder.point_embed.weight"] = torch.cat([points[i] for i in sorted(points)], dim=0)
    _convert_mask_downsampler(downsampler, out, report)
    # SAM2 uses one random Fourier matrix for prompts and for the image-wide positional encoding.
    pe = SAM2 + "prompt_encoder.shared_embedding.positional_embedding"
    if pe in out:
        out[SAM2 + "shared_image_embedding.positional_embedding"] = out[pe]
    _tie_lm_head(out, config, report)
    if unmapped:
        raise CheckpointError(_listing(f"{len(unmapped)} official keys have no mapping and are not listed as "
                                       "intentionally dropped", unmapped))
    if expected is not None:
        check_against_model(out, expected, report)
    return out, report


def _convert_mask_downsampler(found: dict[int, list[tuple[str, torch.Tensor]]], out: dict[str, torch.Tensor],
                              report: ConversionReport) -> None:
    """``mask_downsampler.encoder`` = [Conv, LayerNorm2d, GELU] × n + final Conv → ``layers.{k}.conv/layer_norm`` and
    ``final_conv`` (the last index is the final 1×1 conv)."""
    if not found:
        return
    final = max(found)
    for index, entries in found.items():
        if index == final:
            target = "final_conv"
        elif index % 3 == 0:
            target = f"layers.{index // 3}.conv"
        elif index % 3 == 1:
            target = f"layers.{index // 3}.layer_norm"
        else:
            raise CheckpointError(f"{OFFICIAL_SAM2}memory_encoder.mask_downsampler.encoder.{index}: the activation "
                                  "slot of SAM2's mask downsampler should hold no weights")
        for suffix, value in entries:
            ours = f"{SAM2}memory_encoder.mask_downsampler.{target}.{suffix}"
            out[ours] = value
            report.mapped[f"{OFFICIAL_SAM2}memory_encoder.mask_downsampler.encoder.{index}.{suffix}"] = [ours]


def _tie_lm_head(out: dict[str, torch.Tensor], config: SamaConfig, report: ConversionReport) -> None:
    """With tied embeddings one of the two names may be absent (safetensors drops shared tensors): fill it."""
    embed, head = LLM_BODY + "embed_tokens.weight", LM_HEAD + "weight"
    if not config.llm.tie_word_embeddings:
        return
    if embed in out and head not in out:
        out[head] = out[embed]
        report.filled[head] = "tied to embed_tokens (tie_word_embeddings)"
    elif head in out and embed not in out:
        out[embed] = out[head]
        report.filled[embed] = "tied to lm_head (tie_word_embeddings)"


def check_against_model(converted: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                        report: ConversionReport) -> None:
    """Strict check of a converted state dict against the model's: neutral SAM2.0 fills and Q-Former vocabulary
    trims are applied (and reported); any other missing, unexpected or wrong-shape key raises ``CheckpointError``."""
    for key, reason in SAM2_0_NEUTRAL_FILLS.items():
        if key in expected and key not in converted:
            converted[key] = torch.zeros_like(expected[key])
            report.filled[key] = reason
    word = "aggregator.temporal_qformer.embeddings.word_embeddings.weight"
    if word in converted and word in expected and converted[word].shape[0] > expected[word].shape[0]:
        rows, ours = converted[word].shape[0], expected[word].shape[0]
        converted[word] = converted[word][:ours]
        report.adapted[word] = (f"official temporal Q-Former vocabulary has {rows} rows "
                                f"(bert-base-uncased + {', '.join(OFFICIAL_TEMPORAL_ADDED_TOKENS)}); our Q-Former "
                                f"tokenizer has {ours}, rows {ours}..{rows - 1} dropped")
    # the trained new-token rows (SamaBackbone.enable_new_token_rows) are read from the embedding at load time
    missing = sorted(set(expected) - set(converted) - {NEW_TOKEN_ROWS})
    unexpected = sorted(set(converted) - set(expected))
    mismatched = [f"{k} (converted {list(converted[k].shape)} vs model {list(expected[k].shape)})"
                  for k in sorted(set(converted) & set(expected)) if converted[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = ["the converted official checkpoint does not match the model"]
        if missing:
            parts.append(_listing(f"{len(missing)} model keys not filled by any official key", missing))
        if unexpected:
            parts.append(_listing(f"{len(unexpected)} converted keys the model does not have", unexpected)
                         + _hints(unexpected))
        if mismatched:
            parts.append(_listing(f"{len(mismatched)} shape mismatches (wrong preset?)", mismatched))
        raise CheckpointError("\n  ".join(parts))


def _hints(unexpected: list[str]) -> str:
    if any(k.startswith(VISION) and k.endswith("_proj.bias") for k in unexpected):
        return ("\n    hint: the official InternViT has qkv biases; the model's vision tower was built without "
                "attention_bias")
    return ""


MAX_LISTED = 20


def _listing(title: str, keys: list[str]) -> str:
    more = f" … and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return f"{title}: {', '.join(keys[:MAX_LISTED])}{more}"


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor], config: SamaConfig,
                                expected: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Official ``Sa2VAChatModel`` state dict → our ``SamaModel`` state dict.

    Every official key must be mapped or intentionally dropped; with ``expected`` (our model's state dict) every
    model key must also be filled with the right shape. Otherwise ``CheckpointError`` lists the offending keys.
    """
    return convert_with_report(state_dict, config, expected)[0]


# -- ours → official (inverse, for tests and round trips) -----------------------------------------------------------
def to_official_state_dict(state_dict: Mapping[str, torch.Tensor], config: SamaConfig,
                           llm_layout: LLMLayout | None = None) -> dict[str, torch.Tensor]:
    """Our ``SamaModel`` state dict → the official layout (the inverse of :func:`convert_official_state_dict`).

    ``llm_layout`` defaults to ``internlm2`` for the InternLM2 chat template (SAMA-8B), else ``hf``. SAM2.1-only
    keys and, with tied embeddings, the LM head are left out, as in the official files.
    """
    layout = llm_layout or ("internlm2" if config.llm.chat_template == "internlm2_chat" else "hf")
    rules = _rules(layout)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    # the new-token rows are also in the embedding (SamaBackbone.sync_new_token_rows)
    skip = set(SAM2_0_NEUTRAL_FILLS) | {SAM2 + "shared_image_embedding.positional_embedding", NEW_TOKEN_ROWS}
    if config.llm.tie_word_embeddings:
        skip.add(LM_HEAD + "weight")
    vit_qkv = re.compile(r"^" + re.escape(VISION) + r"encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$")
    llm_qkv = re.compile(r"^" + re.escape(LLM_BODY) + r"layers\.(\d+)\.self_attn\.([qkv])_proj\.weight$")
    mask_down = re.compile(r"^" + re.escape(SAM2) + r"memory_encoder\.mask_downsampler\.(layers\.(\d+)\.(conv|layer_norm)"
                           r"|final_conv)\.(.+)$")
    num_down = len({m.group(2) for k in state_dict if (m := mask_down.match(k)) and m.group(2) is not None})
    _check_lossless(state_dict)
    for key, value in state_dict.items():
        if key in skip:
            continue
        if match := vit_qkv.match(key):
            qkv.setdefault(("vit", f"{match.group(1)}.{match.group(3)}"), {})[match.group(2)] = value
        elif layout == "internlm2" and (match := llm_qkv.match(key)):
            qkv.setdefault(("llm", match.group(1)), {})[match.group(2)] = value
        elif key == SAM2 + "prompt_encoder.point_embed.weight":
            for i, row in enumerate(value.split(1, dim=0)):
                out[f"{OFFICIAL_SAM2}sam_prompt_encoder.point_embeddings.{i}.weight"] = row.clone()
        elif match := mask_down.match(key):
            index = 3 * num_down if match.group(1) == "final_conv" else \
                3 * int(match.group(2)) + (0 if match.group(3) == "conv" else 1)
            out[f"{OFFICIAL_SAM2}memory_encoder.mask_downsampler.encoder.{index}.{match.group(4)}"] = value
        elif (official := rules.inverse(key)) is not None:
            out[official] = value
        else:
            raise CheckpointError(f"no official name for model key {key!r}")
    for (kind, where), parts in qkv.items():
        if kind == "vit":
            layer, suffix = where.split(".")
            out[f"vision_model.encoder.layers.{layer}.attn.qkv.{suffix}"] = torch.cat([parts[c] for c in "qkv"])
        else:
            out[f"language_model.model.layers.{where}.attention.wqkv.weight"] = fuse_internlm2_wqkv(
                parts["q"], parts["k"], parts["v"], config.llm.num_kv_heads)
    return out


def _check_lossless(state_dict: Mapping[str, torch.Tensor]) -> None:
    """The official layout stores SAM2's Fourier matrix once and has no SAM2.1-only weights: refuse to drop values
    that the conversion back could not restore (skipped for meta tensors, which have no values)."""
    if any(t.is_meta for t in state_dict.values()):
        return
    pe, image_pe = SAM2 + "prompt_encoder.shared_embedding.positional_embedding", \
        SAM2 + "shared_image_embedding.positional_embedding"
    if pe in state_dict and image_pe in state_dict and not torch.equal(state_dict[pe], state_dict[image_pe]):
        raise CheckpointError(f"{image_pe} differs from {pe}; official SAM2 has one matrix for both")
    nonzero = [k for k in SAM2_0_NEUTRAL_FILLS if k in state_dict and bool(state_dict[k].any())]
    if nonzero:
        raise CheckpointError(_listing("SAM2.1-only weights are non-zero and have no place in the SAM2.0 official "
                                       "layout", nonzero))


# -- files -------------------------------------------------------------------------------------------------------
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def read_official_state_dict(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of an official checkpoint folder (``*.safetensors`` shards, optionally via the index) or file.

    Pickle shards (``pytorch_model*.bin``) are read only with ``allow_pickle=True``, via
    ``torch.load(weights_only=True)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    location = Path(path)
    if not location.exists():
        raise CheckpointError(f"{location}: official checkpoint not found")
    files = _shard_files(location)
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            try:
                part = load_file(str(file))
            except (OSError, SafetensorError) as exc:
                raise CheckpointError(f"{file}: unreadable safetensors shard ({exc})") from exc
        else:
            if not allow_pickle:
                raise CheckpointError(f"{file}: refusing to read a pickle checkpoint; pickle can run code. Pass "
                                      "allow_pickle=True (--allow-pickle) if you trust the file")
            try:
                part = torch.load(file, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(f"{file}: cannot load with torch.load(weights_only=True) ({exc})") from exc
            if not isinstance(part, Mapping):
                raise CheckpointError(f"{file}: expected a mapping of parameter names to tensors")
        duplicated = sorted(set(part) & set(tensors))
        if duplicated:
            raise CheckpointError(_listing(f"{file}: keys already read from another shard", duplicated))
        tensors.update(part)
    return tensors


def _shard_files(location: Path) -> list[Path]:
    if location.is_file():
        return [location]
    for index_name in (SAFETENSORS_INDEX, PICKLE_INDEX):
        index = location / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{index}: malformed shard index ({exc})") from exc
            files = [location / name for name in sorted(set(weight_map.values()))]
            absent = [str(f) for f in files if not f.is_file()]
            if absent:
                raise CheckpointError(_listing(f"{index}: shards listed in the index are missing", absent))
            return files
    files = sorted(location.glob("*.safetensors")) or sorted(location.glob("pytorch_model*.bin"))
    if not files:
        raise CheckpointError(f"{location}: no *.safetensors shards (or pytorch_model*.bin) in this folder")
    return files


def official_config(path: str | Path) -> dict[str, Any]:
    """The official ``config.json`` (``Sa2VAChatConfig``) as a dict, or ``{}`` if there is none."""
    file = Path(path) / "config.json"
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: cannot read the official config ({exc})") from exc
    return data if isinstance(data, dict) else {}


def _load_tokenizer(path: Path) -> tuple[Any | None, str]:
    """The official tokenizer if the folder has one that loads without remote code, and where it came from.

    InternLM2's tokenizer (SAMA-8B) is remote code only: the weights still convert, with the preset's tokenizer.
    """
    if not (path / "tokenizer_config.json").is_file():
        return None, "preset default (the official folder has no tokenizer)"
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False), "official"
    except (OSError, ValueError, KeyError, ImportError) as exc:
        logger.warning("%s: official tokenizer not loadable without remote code (%s); using the preset's", path, exc)
        return None, f"preset default (official tokenizer needs remote code: {type(exc).__name__})"


def load_official_checkpoint(path: str | Path, preset: str, *, allow_pickle: bool = False,
                             tokenizer: Any | None = None,
                             on_report: Callable[[ConversionReport], None] | None = None) -> Any:
    """Build ``preset`` and load the official checkpoint at ``path`` into it strictly → ``SamaModel``.

    The LLM vocabulary size is taken from the official ``config.json`` (``llm_config.vocab_size`` = the official
    tokenizer's length) when present; the official tokenizer is used when the folder has one.
    """
    from sama.model.factory import create_model

    location = Path(path)
    state = read_official_state_dict(location, allow_pickle=allow_pickle)
    overrides: dict[str, Any] = {}
    vocab = official_config(location).get("llm_config", {}).get("vocab_size") if location.is_dir() else None
    if isinstance(vocab, int):
        overrides["llm"] = {"vocab_size": vocab}
    source = "given by the caller"
    if tokenizer is None:
        tokenizer, source = _load_tokenizer(location) if location.is_dir() else (None, "preset default")
    model = create_model(preset, tokenizer=tokenizer, load_llm_weights=False, **overrides)
    expected = model.state_dict()
    converted, report = convert_with_report(state, model.config, expected)
    report.tokenizer = source
    model.load_state_dict(converted, strict=True)
    if on_report is not None:
        on_report(report)
    return model
