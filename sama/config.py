"""SamaConfig: the one typed description of a SAMA model (sections per component) and the preset registry.

Every number taken from the paper or the official release is a named field whose comment cites its source in
``shared/reference/SAMA.md``; ``tests/model/test_config.py`` pins them. Presets: ``sama-1b``/``sama-4b``/``sama-8b``
(paper shapes), ``sama-smol`` (real SmolLM2-135M LLM, small random towers, CPU-trainable) and ``sama-tiny``
(random, milliseconds per step, for tests).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sama.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # SAMA.md §1.1 (InternVL and SAM2 normalisation)
IMAGENET_STD = (0.229, 0.224, 0.225)  # SAMA.md §1.1

DensePolicy = Literal["train_bins", "first"]
RefMaskMode = Literal["box", "raw"]
PropagationMode = Literal["memory", "per_frame"]
LLMKind = Literal["qwen2", "llama", "smollm2"]


@dataclass
class VisionConfig:
    """InternViT vision tower + pixel-shuffle projector (``mlp1``)."""

    image_size: int = 448  # SAMA.md §1.1: each frame resized to 448×448
    patch_size: int = 14  # SAMA.md §1.1: patch 14 → 32×32 patches
    hidden_size: int = 1024  # InternViT-300M-448px width
    num_layers: int = 24  # InternViT-300M-448px depth
    num_heads: int = 16  # InternViT-300M-448px heads
    intermediate_size: int = 4096  # InternViT-300M-448px MLP width
    downsample_ratio: float = 0.5  # SAMA.md §1.1: pixel-shuffle ratio 0.5 → 16×16 grid, 256 tokens
    layer_scale_init_value: float = 0.1  # InternViT layer scale
    qkv_bias: bool = True  # InternViT-300M-448px: qkv_bias=True (the official checkpoints carry attn.qkv.bias)
    # Ours, False = off (SAMA.md §1.1: InternViT sees each frame's RGB alone). True: 3 more input channels hold
    # frame[p + 1] − frame[p − 1] of the clip's sparse frames (clamped at its ends), so each frame token also shows
    # which way the pixels under it move, and a referred object's region tokens carry its motion like its colour.
    # Measured on sama-smol (session 11): after the vision warm-up a linear probe reads the motion from the mask-pooled
    # region feature 0.61 of the time (off: 0.18 = prior); after the whole recipe facts 41 %, RVOS J&F 0.451 (off,
    # shipped: 52 %, 0.587; SAM2 also started from another random init, see README). On in sama-smol since session 27;
    # its 3 extra patch-embedding channels start at zero since session 28 (SamaBackbone).
    motion_input: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def grid_size(self) -> int:
        """Side of the token grid after pixel shuffle (16 for 448 px, patch 14, ratio 0.5)."""
        return int(self.image_size // self.patch_size * self.downsample_ratio)

    @property
    def tokens_per_frame(self) -> int:
        """Tokens one frame contributes to the LLM (256 at paper size; SAMA.md §1.1)."""
        return self.grid_size**2


@dataclass
class LLMConfig:
    """The language model (built from transformers' Qwen2 / Llama classes, or SmolLM2 loaded from its GGUF)."""

    kind: LLMKind = "qwen2"
    hidden_size: int = 896  # SAMA.md §1.1: C = 896 for SAMA-1B
    num_layers: int = 24
    num_heads: int = 14
    num_kv_heads: int = 2
    intermediate_size: int = 4864
    vocab_size: int = 151674  # InternVL2.5 llm_config vocabulary (base tokenizer + InternVL tokens)
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    chat_template: str = "qwen_chat"  # SAMA.md §1.1 chat template names (xtuner PROMPT_TEMPLATE)
    # SAMA.md §1.5: " Response with interleaved segmentation masks." is appended to a question whose answer has
    # [SEG] ("when_grounded", the release); "never" lets the model decide from the question alone (train = chat).
    seg_request: Literal["when_grounded", "never"] = "when_grounded"
    tokenizer: str = "smollm2"  # "smollm2": the packaged SmolLM2 tokenizer (the only real one available offline)
    max_length: int = 8192  # SAMA.md §1.5: max_length=8192


@dataclass
class AggregatorConfig:
    """Spatio-temporal context aggregator (SAMA.md §1.3) and the region-token heads (§1.4)."""

    qformer_hidden_size: int = 768  # SAMA.md §1.3: D = 768, BERT width
    qformer_num_heads: int = 12  # BERT-base heads
    qformer_intermediate_size: int = 3072  # BERT-base MLP width
    spatial_num_layers: int = 12  # SAMA.md §1.3 step 1: 12 layers
    spatial_num_queries: int = 32  # SAMA.md §1.3 step 1: 32 learned queries
    spatial_cross_attention_freq: int = 2  # SAMA.md §1.3 step 1: cross-attention every 2 layers
    spatial_encoder_width: int = 1408  # SAMA.md §1.3 step 1: vlm2spatial proj C→1408, encoder_width=1408
    temporal_num_layers: int = 2  # SAMA.md §1.3 step 2: BERT with 2 layers
    temporal_num_queries: int = 32  # SAMA.md §1.3 step 2: 32 learned queries
    temporal_cross_attention_freq: int = 1  # SAMA.md §1.3 step 2: cross-attention in every layer
    temporal_window_tokens: int = 512  # SAMA.md §1.3 step 2: WINDOW_SIZE=512 tokens (16 frames × 32)
    text_max_length: int = 256  # SAMA.md §1.3 step 2: question max length 256, left truncation
    text_vocab_size: int = 30522  # bert-base-uncased vocabulary; [DEC], <mask>, <pos> appended → 30522..30524
    max_position_embeddings: int = 512  # BERT position table
    dropout: float = 0.1  # BERT default dropout
    # Not in SAMA.md §1.3: the temporal Q-Former's memory is the flattened spatial tokens with no frame order, so a
    # clip and its time reversal give the same temporal tokens (an object moving left reads as one moving right).
    # True adds a learned per-sparse-frame embedding to the memory. Off for the paper presets (release checkpoints).
    frame_time_embedding: bool = False
    max_sparse_frames: int = 32  # SAMA.md §1.2: T_s ≤ 32 sparse frames (size of the frame-time table)


@dataclass
class PromptConfig:
    """Visual-prompt (referred object) encoding, SAMA.md §1.4."""

    tokens_per_object: int = 2  # SAMA.md §1.4: mask-pooled feature + 112×112 shape MLP
    shape_mask_size: int = 112  # SAMA.md §1.4: 112×112 prompt mask, flattened to 12544
    shape_mlp_hidden: int = 1024  # SAMA.md §1.4: MLP(12544, 1024, C, num_layers=3)
    shape_mlp_layers: int = 3  # SAMA.md §1.4
    ref_mask_mode: RefMaskMode = "box"  # SAMA.md §1.4/§7.3: prompt masks are box-ified ("raw" = Bench-C behaviour)
    # SAMA.md §1.4: prompt masks reach the token grid by nearest resizing (16×16 at 448 px). On a small grid (4×4 in
    # sama-smol) nearest sampling drops small objects entirely; "area" keeps each cell's covered fraction.
    grid_resize: Literal["nearest", "area"] = "nearest"
    region_frame: Literal["first_nonempty"] = "first_nonempty"  # SAMA.md §7.4: deterministic region frame
    # Ours, 0 = off (SAMA.md §1.4 reads the object on one frame, so its motion is not in its tokens): > 0 adds to the
    # shape token an MLP of the object's path over the sparse frames, resampled to this many points. The path is the
    # centroid, on the token grid, of each frame's tokens weighted by softmax(τ·cos(token, mask-pooled feature)).
    trajectory_points: int = 0
    trajectory_temperature: float = 10.0  # τ of the path's cosine match (fixed)
    # Match centred features: each frame's mean token is taken from its tokens, the clip's mean token from the pooled
    # feature, before the cosine (tokens that share a large common part all look alike to a raw cosine).
    trajectory_centre: bool = False
    # Ours, 0 = off (SAMA.md §1.4 reads the object through grid tokens and a box mask, so its outline is only in tokens
    # pooled over its box): > 0 adds to the shape token an MLP of the object's crop_size × crop_size RGB crop, sampled
    # bilinearly inside its box from the vision input of its region frame (ROI-align on pixels).
    crop_size: int = 0

    @property
    def shape_mask_points(self) -> int:
        """Flattened shape-mask length (12544 at paper size)."""
        return self.shape_mask_size**2


@dataclass
class Sam2Config:
    """SAM2 segmenter (transformers ``Sam2Model`` / ``Sam2VideoModel``); defaults are Hiera-L at 1024 px."""

    image_size: int = 1024  # SAMA.md §1.1: DirectResize(target_length=1024)
    hidden_size: int = 256  # SAMA.md §1.1: hidden_dim=256 ([SEG] prompt width)
    hiera_embed_dim: int = 144  # sam2_hiera_l.yaml: embed_dim 144
    hiera_num_heads: int = 2  # sam2_hiera_l.yaml: num_heads 2
    hiera_blocks_per_stage: tuple[int, ...] = (2, 6, 36, 4)  # sam2_hiera_l.yaml: stages
    hiera_embed_dim_per_stage: tuple[int, ...] = (144, 288, 576, 1152)
    hiera_heads_per_stage: tuple[int, ...] = (2, 4, 8, 16)
    hiera_window_size_per_stage: tuple[int, ...] = (8, 4, 16, 8)  # sam2_hiera_l.yaml: window_spec
    hiera_global_attention_blocks: tuple[int, ...] = (23, 33, 43)  # sam2_hiera_l.yaml: global_att_blocks
    hiera_window_pos_embed_bkg_size: tuple[int, int] = (7, 7)  # sam2_hiera_l.yaml
    backbone_channel_list: tuple[int, ...] = (1152, 576, 288, 144)  # sam2_hiera_l.yaml: neck channels
    mask_decoder_mlp_dim: int = 2048  # SAM2 two-way transformer MLP
    mask_decoder_layers: int = 2
    mask_decoder_heads: int = 8
    memory_dim: int = 64  # SAM2 memory channels (must stay 64 in transformers, DEPENDENCIES.md §5.4.4)
    num_maskmem: int = 7  # SAM2 memory bank size
    memory_attention_layers: int = 4  # SAM2 memory attention depth
    propagation: PropagationMode = "memory"  # video inference: SAM2 memory propagation or independent frames
    max_memory_frames: int = 16  # bound on cached frames per object during streaming inference
    # Input of the [SEG] projection. "none": the LLM state as is (SAMA.md §1.1 text_hidden_fcs). "center": subtract a
    # running mean of [SEG] states, then LayerNorm — for LLMs whose [SEG] states share one dominant direction (SmolLM2:
    # cosine 0.997-0.999 between different phrases after 400 steps, measured), which the projection cannot undo fast.
    seg_input_norm: Literal["none", "center"] = "none"
    seg_center_momentum: float = 0.01  # running-mean update rate of seg_input_norm="center" (our choice)
    # Our addition (off in the paper presets, SAMA.md §1.1 uses the [SEG] state alone): also feed the grounding the
    # mean input embedding of the ``<p> phrase </p>`` right before each [SEG] (through its own linear layer, added to
    # the projected state), so prompts of different phrases differ from the first step, which a small LLM's
    # last-layer [SEG] state does not (see seg_input_norm). The state path then starts at zero (a residual on the
    # phrase path), so a phrase-prompted warm-up of SAM2 (sama.train.grounding_warmup) carries over unchanged.
    # Measured on sama-smol: alone it did not make the from-scratch SAM2 learn in 600 CPU steps (Dice 0.62-0.67);
    # with the warm-up, val J on chat phrases reached 0.19 / 0.84 after 50 / 150 warm-up steps.
    seg_phrase_input: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass
class SamplingConfig:
    """Sparse/dense frame selection, SAMA.md §1.2."""

    sparse_interval: int = 3  # SAMA.md §1.2: interval=3
    max_frames: int = 32  # SAMA.md §1.2: max_frames=32
    min_frames: int = 8  # SAMA.md §1.2: min_frames=8
    num_dense: int = 5  # SAMA.md §1.2: DENSE_LEN=5
    dense_policy: DensePolicy = "train_bins"  # SAMA.md §7.2: "train_bins" (training) or "first" (HF inference)
    # SAMA.md §1.6: the release fixes objects per sample to 5 (check_obj_number); recorded for the data layer —
    # SamaProcessor itself keeps every [SEG] of the sample.
    max_seg_objects: int = 5


@dataclass
class LossConfig:
    """Loss weights and point sampling, SAMA.md §1.7."""

    ce_weight: float = 1.0  # SAMA.md §1.7: LLM cross-entropy weight 1.0
    bce_weight: float = 2.0  # SAMA.md §1.7: loss_mask weight 2.0
    dice_weight: float = 0.5  # SAMA.md §1.7: loss_dice weight 0.5
    num_points: int = 12544  # SAMA.md §1.7: 12544 sampled points per mask
    oversample_ratio: float = 3.0  # SAMA.md §1.7: oversample_ratio=3.0
    importance_sample_ratio: float = 0.75  # SAMA.md §1.7: importance_sample_ratio=0.75
    dice_eps: float = 1.0  # SAMA.md §1.7: naive Dice, eps 1


@dataclass
class TrainableConfig:
    """Freeze policy (SAMA.md §2): what receives gradients."""

    vision_tower: bool = False  # SAMA.md §2: InternViT frozen
    projector: bool = True  # SAMA.md §2: mlp1 trainable
    llm: bool = False  # SAMA.md §2: freeze_llm=True
    new_token_rows: bool = True  # our choice (SAMA.md §2 leaves it open): new special-token embedding/head rows
    aggregator: bool = True  # SAMA.md §2: all aggregator modules trainable
    prompt_encoder: bool = True  # SAMA.md §2: Qformer_mask_pooling_proj / Qformer_mask_proj trainable
    seg_projection: bool = True  # SAMA.md §2: text_hidden_fcs trainable
    sam2_image_encoder: bool = False  # SAMA.md §2: SAM2 image encoder frozen
    sam2_prompt_encoder: bool = False  # SAMA.md §2: not stated; kept frozen
    sam2_mask_decoder: bool = True  # SAMA.md §2: frozen_sam2_decoder=False


@dataclass
class LoraConfig:
    """Optional LoRA on the LLM via peft (off in the released configs, SAMA.md §2: llm_lora=None)."""

    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class SamaConfig:
    """A full SAMA model description; ``SamaConfig.from_name("sama-tiny")`` or ``SamaConfig.from_dict(d)``."""

    name: str = "custom"
    vision: VisionConfig = field(default_factory=VisionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    sam2: Sam2Config = field(default_factory=Sam2Config)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    seed: int = 0

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> SamaConfig:
        """The registered preset ``name`` with ``overrides`` applied (see :meth:`replace`)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
        config = PRESETS[name]()
        return config.replace(**overrides) if overrides else config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamaConfig:
        """Build from a plain dict (as written by :meth:`to_dict`); unknown keys raise ``ConfigError``."""
        return _from_dict(cls, data, "config")

    @classmethod
    def from_json(cls, path: str | Path) -> SamaConfig:
        """Read a ``config.json`` written by :meth:`save_json`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read model config ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: model config must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def save_json(self, path: str | Path) -> None:
        """Write the config as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def replace(self, **overrides: Any) -> SamaConfig:
        """A copy with overrides: ``sampling={"dense_policy": "first"}`` (partial section), a section instance,
        a top-level field, or a dotted key given as a dict entry ``{"llm.num_layers": 2}`` via :meth:`with_dotted`."""
        data = self.to_dict()
        for key, value in overrides.items():
            if key not in data:
                raise ConfigError(f"unknown config key {key!r}; expected one of {sorted(data)}")
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            if isinstance(data[key], dict) and isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return SamaConfig.from_dict(data)

    def with_dotted(self, overrides: dict[str, Any]) -> SamaConfig:
        """A copy with ``{"section.field": value}`` overrides (CLI / YAML style)."""
        nested: dict[str, Any] = {}
        for dotted, value in overrides.items():
            section, _, leaf = dotted.partition(".")
            if leaf:
                nested.setdefault(section, {})[leaf] = value
            else:
                nested[section] = value
        return self.replace(**nested)


# -- dict → dataclass (strict) ---------------------------------------------------------------------------------
def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(names)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


# -- preset registry -------------------------------------------------------------------------------------------
PRESETS: dict[str, Callable[[], SamaConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], SamaConfig]], Callable[[], SamaConfig]]:
    """Decorator: register a zero-argument function returning a ``SamaConfig`` under ``name``."""

    def wrap(fn: Callable[[], SamaConfig]) -> Callable[[], SamaConfig]:
        if name in PRESETS:
            raise ConfigError(f"model preset {name!r} is already registered")
        PRESETS[name] = fn
        return fn

    return wrap


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return sorted(PRESETS)


@register_preset("sama-1b")
def _sama_1b() -> SamaConfig:
    # SAMA.md §1.1: InternVL2.5-1B = InternViT-300M-448px + Qwen2.5-0.5B-Instruct (C=896), qwen_chat.
    llm = LLMConfig(kind="qwen2", hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
                    intermediate_size=4864, vocab_size=151674, tie_word_embeddings=True, chat_template="qwen_chat")
    return SamaConfig(name="sama-1b", llm=llm)


@register_preset("sama-4b")
def _sama_4b() -> SamaConfig:
    # SAMA.md §1.1: InternVL2.5-4B = InternViT-300M-448px + Qwen2.5-3B-Instruct (C=2048), phi3_chat (as configured).
    llm = LLMConfig(kind="qwen2", hidden_size=2048, num_layers=36, num_heads=16, num_kv_heads=2,
                    intermediate_size=11008, vocab_size=151674, tie_word_embeddings=True, chat_template="phi3_chat")
    return SamaConfig(name="sama-4b", llm=llm)


@register_preset("sama-8b")
def _sama_8b() -> SamaConfig:
    # SAMA.md §1.1/§6.13: InternVL2.5-8B = InternViT-300M-448px + internlm2_5-7b-chat (C=4096), internlm2_chat;
    # InternLM2 has no native transformers class, so it is shaped as Llama (same parameter layout).
    llm = LLMConfig(kind="llama", hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                    intermediate_size=14336, vocab_size=92553, tie_word_embeddings=False,
                    rope_theta=1_000_000.0, rms_norm_eps=1e-5, chat_template="internlm2_chat")
    return SamaConfig(name="sama-8b", llm=llm)


def _small_sam2(image_size: int, embed: int, hidden: int) -> Sam2Config:
    """A small random Hiera SAM2 (4 stages, 1-1-2-1 blocks) for CPU presets."""
    dims = (embed, embed * 2, embed * 4, embed * 8)
    # transformers' Hiera cannot run global attention on the first (pooling) block of a stage, hence 1-1-2-1 with
    # the global block at index 3 (the second block of stage 3; DEPENDENCIES.md §5.2 uses 1-1-2-1 too).
    return Sam2Config(
        image_size=image_size, hidden_size=hidden, hiera_embed_dim=embed, hiera_num_heads=1,
        hiera_blocks_per_stage=(1, 1, 2, 1), hiera_embed_dim_per_stage=dims, hiera_heads_per_stage=(1, 1, 2, 2),
        hiera_window_size_per_stage=(4, 4, 4, 4), hiera_global_attention_blocks=(3,),
        hiera_window_pos_embed_bkg_size=(4, 4), backbone_channel_list=tuple(reversed(dims)),
        mask_decoder_mlp_dim=hidden * 2, mask_decoder_layers=1, mask_decoder_heads=2,
        memory_dim=64, num_maskmem=3, memory_attention_layers=1, max_memory_frames=8,
    )


@register_preset("sama-smol")
def _sama_smol() -> SamaConfig:
    # Real SmolLM2-135M-Instruct (DEPENDENCIES.md §3: Llama, hidden 576, 30 layers, vocab 49152) + small random
    # towers sized to train on 2 CPU cores: 112 px / patch 14 → 8×8 patches, no pixel shuffle → 64 tokens per frame.
    # Measured on the synthetic world (a region token's colour, "What colour is <mask>?" learned alone): with pixel
    # shuffle (4×4 = 16 tokens) a linear probe reads the colour from the region token 65 % of the time and 75 steps
    # leave the answer at chance (0.17-0.20); at 8×8 the probe reads 82 % and 50 steps reach 0.40-0.47. The LLM cost
    # of the 4× tokens is paid back by 2 dense frames instead of 5 (see sampling).
    # motion_input (the frame difference as 3 more tower channels, starting at zero; in the crop too): measured, whole
    # recipe, held-out bench (docs/sama-smol-log.md, session 28; RGB input in brackets): facts 79 % (69 %; motion 8/16
    # (1/16)), RVOS J&F 0.668 (0.654), Bench-G mIoU / recall 0.327 / 0.606 (0.330 / 0.609).
    vision = VisionConfig(image_size=112, patch_size=14, hidden_size=192, num_layers=4, num_heads=3,
                          intermediate_size=768, qkv_bias=False, downsample_ratio=1.0, motion_input=True)
    llm = LLMConfig(kind="smollm2", hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3,
                    intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, chat_template="smollm2_chat", max_length=2048)
    aggregator = AggregatorConfig(qformer_hidden_size=128, qformer_num_heads=4, qformer_intermediate_size=256,
                                  spatial_num_layers=2, spatial_num_queries=8, spatial_encoder_width=192,
                                  temporal_num_layers=1, temporal_num_queries=8, temporal_window_tokens=64,
                                  text_max_length=64)
    llm.seg_request = "never"  # a chat user gives no hint; the synthetic world's question kind decides grounding
    # Coarse token grid: at 4×4, nearest resizing dropped ~46 % of the synthetic world's referred objects (measured);
    # "area" keeps every object at any grid size.
    # The object's path over the sparse frames in its shape token (PromptConfig.trajectory_points). Measured: trained on
    # motion questions alone (no dense frames, 8 per step, after the vision warm-up), the val answers stayed at the prior
    # (0.12-0.19) after 100 steps without it and reached 0.40 with it (and 0.13 with the path in [0, 1] units).
    # Not used: trajectory_centre=True with trajectory_temperature=30. On the shipped weights' tokens it follows the val
    # objects' mask centroids far better (path error 0.81 -> 0.30 token cells; an MLP reads the motion from the path
    # 0.52 -> 0.75, from the true path 0.94; 337 train / 117 val objects, commonest motion 0.18), but after the whole
    # recipe the LLM still answered motion at the prior (4 of 16 facts, 10 times "bounces up and down"); the bench:
    # RVOS J&F 0.559, Bench-G mIoU 0.310, facts 59 % (shipped 0.579, 0.300, 57 %), val loss 0.384 (0.436).
    # Retried on the session-28 recipe (session 29, whole recipe, same seed; scripts/path_probe.py, 973 train / 117 val
    # objects): the path's motion read on the trained model's own tokens 0.72 (bounces 0.84), against 0.27 (0.10) for
    # the shipped default path; the answers got the motion's axis right 15 of 16 times but told a bounce from a straight
    # motion no better (motion facts 8/16, as shipped). Bench: facts 64 % (shipped 79 %: size 8/13, identity 6/12),
    # RVOS J&F 0.655 (0.668), Bench-G mIoU 0.353 (0.327), val loss 0.284 (0.296). Not shipped (facts).
    # The object's 8 × 8 RGB crop in its shape token (PromptConfig.crop_size). Measured, whole recipe, held-out bench
    # (docs/sama-smol-log.md, sessions 19 and 22): facts 53 % -> 69 % (shape 8/9, identity 12/12), RVOS J&F 0.651 ->
    # 0.654, Bench-G mIoU 0.350 -> 0.330 (recall 0.694 -> 0.609).
    prompts = PromptConfig(shape_mask_size=28, shape_mlp_hidden=128, grid_resize="area", trajectory_points=8,
                           crop_size=8)
    # 2 dense frames (SAMA.md §1.2: 5): 2 × 64 LLM tokens, vs 5 × 16 before (a step costs ~1.2× the 16-token one).
    sampling = SamplingConfig(max_frames=8, min_frames=4, num_dense=2)
    loss = LossConfig(num_points=1024)
    sam2 = _small_sam2(image_size=256, embed=16, hidden=128)
    # Its memory-attention modules are never trained (training uses SAM2's image path, SAMA.md §1.6), so video
    # inference decodes each frame with the [SEG] prompt instead of propagating untrained memories.
    sam2.propagation = "per_frame"
    sam2.seg_input_norm = "center"  # SmolLM2's [SEG] states differ by < 0.3 % in direction (see Sam2Config)
    sam2.seg_phrase_input = True  # the phrase's words reach SAM2 directly (see Sam2Config.seg_phrase_input)
    # Deviation from SAMA.md §2, which freezes *pretrained* towers: here the vision tower and the SAM2 image encoder
    # are random (no weights exist offline), so they are trained; the real SmolLM2 stays frozen under LoRA.
    trainable = TrainableConfig(vision_tower=True, sam2_image_encoder=True)
    lora = LoraConfig(enabled=True, rank=16, alpha=32, dropout=0.0,
                      target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    return SamaConfig(name="sama-smol", vision=vision, llm=llm, aggregator=aggregator, prompts=prompts, sam2=sam2,
                      sampling=sampling, loss=loss, trainable=trainable, lora=lora)


@register_preset("sama-tiny")
def _sama_tiny() -> SamaConfig:
    # Random everything, milliseconds per step: 56 px / patch 14 → 4×4 → 2×2 = 4 tokens per frame.
    vision = VisionConfig(image_size=56, patch_size=14, hidden_size=32, num_layers=1, num_heads=2,
                          intermediate_size=64, qkv_bias=False)
    llm = LLMConfig(kind="llama", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                    vocab_size=49152, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, chat_template="smollm2_chat", max_length=4096)
    aggregator = AggregatorConfig(qformer_hidden_size=32, qformer_num_heads=2, qformer_intermediate_size=64,
                                  spatial_num_layers=2, spatial_num_queries=4, spatial_encoder_width=48,
                                  temporal_num_layers=1, temporal_num_queries=4, temporal_window_tokens=16,
                                  text_max_length=64, dropout=0.0)
    prompts = PromptConfig(shape_mask_size=16, shape_mlp_hidden=32)
    sampling = SamplingConfig(max_frames=8, min_frames=4, num_dense=2)
    loss = LossConfig(num_points=256)
    lora = LoraConfig(rank=2, alpha=4)
    return SamaConfig(name="sama-tiny", vision=vision, llm=llm, aggregator=aggregator, prompts=prompts,
                      sam2=_small_sam2(image_size=64, embed=8, hidden=128), sampling=sampling, loss=loss, lora=lora)
