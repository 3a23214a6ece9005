"""[SEG] → SAM2 grounding: the [SEG] projection, SAM2's image path for training, streaming video propagation.

One transformers SAM2 video model (``SamaSam2VideoModel``, random unless loaded) serves both paths:

- training (SAMA.md §1.6): :meth:`SamaGrounding.image_features` (frozen encoder, no grad) and
  :meth:`SamaGrounding.decode` — every frame independently, no memory, the projected [SEG] vector as the sparse prompt,
  ``no_mask_embed`` as the dense prompt, one mask per prompt; gradients reach ``seg_proj`` and the mask decoder;
- inference: :meth:`SamaGrounding.propagate` conditions SAM2 on the dense frames' raw indices (SAMA.md §7.2) with the
  [SEG] prompt, then sweeps the whole video frame by frame, decoding frames lazily and keeping only the SAM2 memory
  window, so peak memory does not grow with video length. ``mode="per_frame"`` decodes every frame independently.
  Image features are computed once per frame for all [SEG] objects together (SAMA.md §6.10 fixed).

Masks come back at the video's (H, W): low-resolution logits upsampled bilinearly (align_corners=False) and
thresholded at logit 0 (= sigmoid 0.5, SAMA.md §1.6 step 4). :func:`masks_to_rle` streams them as per-frame RLEs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Sam2VideoConfig

from sama.config import Sam2Config
from sama.errors import ConfigError, DataError
from sama.model.sam2_video import SamaInferenceSession, SamaSam2VideoModel

HIERA_PATCH_STRIDE = 4  # SAM2 Hiera patch embedding stride (sam2_hiera_*.yaml: patch stride 4)
HIERA_NUM_POOL_STAGES = 3  # SAM2 Hiera: q_pool=3 → strides 4, 8, 16, 32
PROMPT_PATCH_SIZE = 16  # SAM2: image embedding at stride 16 (1024 px → 64×64, SAMA.md §1.1 / sam2_base.py)
REQUIRED_MEMORY_DIM = 64  # DEPENDENCIES.md §5.4.4: transformers' memory cross-attention hard-codes kv_in_dim=64
MASK_THRESHOLD = 0.0  # SAMA.md §1.6 step 4: sigmoid > 0.5 ⇔ logit > 0
MEMORY_FUSER_EXPANSION = 4  # SAM2 memory fuser: ConvNeXt block, intermediate dim 1024 = 4 × 256 (sam2_hiera_l.yaml)

PropagateMode = Literal["memory", "per_frame"]


class FrameSource(Protocol):
    """What :meth:`SamaGrounding.propagate` needs from a video (``sama.data.video.Video`` satisfies it)."""

    height: int
    width: int

    def __len__(self) -> int: ...

    def frame(self, index: int) -> np.ndarray: ...


class ArrayFrames:
    """An in-memory (T, H, W, 3) uint8 array seen as a :class:`FrameSource`."""

    def __init__(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"expected video frames of shape (T, H, W, 3), got {frames.shape}", field="video")
        self.frames = frames
        self.height, self.width = int(frames.shape[1]), int(frames.shape[2])

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index]


@dataclass
class Sam2Features:
    """SAM2 image embeddings of N frames, no-memory embedding added: levels high-res → low-res, each (N, C_l, h, w)."""

    levels: list[torch.Tensor]

    @property
    def num_frames(self) -> int:
        return int(self.levels[-1].shape[0])


def check_sam2_config(cfg: Sam2Config) -> None:
    """Raise ``ConfigError`` for SAM2 shapes transformers cannot run (DEPENDENCIES.md §5.4.4 and Hiera layout)."""
    if cfg.memory_dim != REQUIRED_MEMORY_DIM:
        raise ConfigError(f"sam2.memory_dim must be {REQUIRED_MEMORY_DIM} (transformers' memory attention "
                          f"hard-codes it, DEPENDENCIES.md §5.4.4), got {cfg.memory_dim}")
    if cfg.hidden_size <= cfg.memory_dim:
        raise ConfigError(f"sam2.hidden_size must be greater than sam2.memory_dim={cfg.memory_dim} "
                          f"(object-pointer split, DEPENDENCIES.md §5.4.4), got {cfg.hidden_size}")
    if cfg.hidden_size % cfg.memory_dim:
        raise ConfigError(f"sam2.hidden_size must be a multiple of memory_dim={cfg.memory_dim}, got {cfg.hidden_size}")
    stride = HIERA_PATCH_STRIDE * 2**HIERA_NUM_POOL_STAGES
    if cfg.image_size % stride:
        raise ConfigError(f"sam2.image_size must be a multiple of {stride}, got {cfg.image_size}")
    stages = len(cfg.hiera_blocks_per_stage)
    lengths = {len(cfg.hiera_embed_dim_per_stage), len(cfg.hiera_heads_per_stage),
               len(cfg.hiera_window_size_per_stage), len(cfg.backbone_channel_list)}
    if lengths != {stages}:
        raise ConfigError(f"sam2: hiera_* per-stage tuples and backbone_channel_list must all have {stages} entries")
    stage_starts = {sum(cfg.hiera_blocks_per_stage[:i]) for i in range(1, stages)}
    bad = sorted(set(cfg.hiera_global_attention_blocks) & stage_starts)
    if bad:
        raise ConfigError(f"sam2.hiera_global_attention_blocks {bad} fall on the first block of a pooled stage "
                          f"(blocks {sorted(stage_starts)}), which transformers' Hiera cannot run; "
                          "move them to a later block of the stage")
    if cfg.max_memory_frames < 1 or cfg.num_maskmem < 1:
        raise ConfigError("sam2.max_memory_frames and sam2.num_maskmem must be ≥ 1")


def build_sam2_video_config(cfg: Sam2Config) -> Sam2VideoConfig:
    """The transformers ``Sam2VideoConfig`` described by the ``sam2`` section of a ``SamaConfig``."""
    check_sam2_config(cfg)
    size, hidden = cfg.image_size, cfg.hidden_size
    feature_sizes = [[size // (HIERA_PATCH_STRIDE * 2**i)] * 2 for i in range(3)]  # strides 4, 8, 16
    backbone = {
        "model_type": "sam2_hiera_det_model", "hidden_size": cfg.hiera_embed_dim,
        "num_attention_heads": cfg.hiera_num_heads, "image_size": [size, size],
        "blocks_per_stage": list(cfg.hiera_blocks_per_stage),
        "embed_dim_per_stage": list(cfg.hiera_embed_dim_per_stage),
        "num_attention_heads_per_stage": list(cfg.hiera_heads_per_stage),
        "window_size_per_stage": list(cfg.hiera_window_size_per_stage),
        "global_attention_blocks": list(cfg.hiera_global_attention_blocks),
        "window_positional_embedding_background_size": list(cfg.hiera_window_pos_embed_bkg_size),
    }
    return Sam2VideoConfig(
        vision_config={"backbone_config": backbone, "backbone_channel_list": list(cfg.backbone_channel_list),
                       "backbone_feature_sizes": feature_sizes, "fpn_hidden_size": hidden},
        prompt_encoder_config={"hidden_size": hidden, "image_size": size, "patch_size": PROMPT_PATCH_SIZE},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": cfg.mask_decoder_mlp_dim,
                             "num_hidden_layers": cfg.mask_decoder_layers,
                             "num_attention_heads": cfg.mask_decoder_heads},
        image_size=size,
        num_maskmem=cfg.num_maskmem,
        max_object_pointers_in_encoder=cfg.max_memory_frames,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=cfg.memory_attention_layers,
        memory_attention_feed_forward_hidden_size=cfg.mask_decoder_mlp_dim,  # both 2048 in sam2_hiera_l.yaml
        memory_attention_rope_feat_sizes=feature_sizes[-1],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=cfg.memory_dim,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=MEMORY_FUSER_EXPANSION * hidden,
    )


def preprocess_frames(frames: np.ndarray | torch.Tensor, image_size: int, mean: Sequence[float],
                      std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (H, W, 3) → (N, 3, S, S) float: plain resize to S×S ignoring aspect (DirectResize,
    SAMA.md §1.1; bicubic with antialiasing and uint8 rounding like its PIL ``resize``), [0, 1], mean/std."""
    pixels = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    given_shape = tuple(pixels.shape)
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        pixels = pixels.unsqueeze(0)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise DataError(f"expected uint8 frames of shape (N, H, W, 3), got {given_shape}", field="frames")
    if pixels.dtype != torch.uint8:
        raise DataError(f"expected uint8 frames, got {pixels.dtype}", field="frames")
    pixels = pixels.permute(0, 3, 1, 2).float()
    if pixels.shape[-2:] != (image_size, image_size):
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bicubic", antialias=True,
                               align_corners=False).clamp_(0, 255).round_()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels / 255.0 - mean_t) / std_t


def logits_to_masks(logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Low-res logits (..., h, w) → bool (..., H, W): bilinear upsampling (align_corners=False), logit > 0."""
    lead = logits.shape[:-2]
    flat = logits.detach().float().reshape(-1, 1, *logits.shape[-2:])
    up = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return (up > MASK_THRESHOLD).reshape(*lead, height, width).cpu().numpy()


def masks_to_rle(frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, list[dict]]]:
    """Stream ``(frame_idx, (K, H, W) bool)`` as ``(frame_idx, [RLE per [SEG]])`` without holding (T, H, W)."""
    from sama.data.masks import rle_encode

    for frame_idx, masks in frames:
        yield frame_idx, [rle_encode(mask) for mask in masks]


class RunningCenter(nn.Module):
    """``LayerNorm(x − m)`` with ``m`` a running mean of the inputs (updated in training, fixed in eval).

    Removes the direction all [SEG] states share, so the projection sees what tells phrases apart. Works with one
    [SEG] per batch (unlike batch normalisation): the first batch sets ``m``, later ones move it by ``momentum``.
    """

    def __init__(self, size: int, momentum: float) -> None:
        super().__init__()
        if not 0 < momentum <= 1:
            raise ConfigError(f"sam2.seg_center_momentum must be in (0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.norm = nn.LayerNorm(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 0:
            with torch.no_grad():
                batch_mean = x.detach().float().mean(0)
                rate = 1.0 if int(self.seen) == 0 else self.momentum
                self.running_mean.lerp_(batch_mean.to(self.running_mean), rate)
                self.seen += 1
        return self.norm(x - self.running_mean.to(x.dtype))


class SamaGrounding(nn.Module):
    """The [SEG] projection (``text_hidden_fcs``) plus one SAM2 video model for training and inference."""

    def __init__(self, sam2: Sam2Config, llm_hidden_size: int) -> None:
        super().__init__()
        self.cfg = sam2
        # SAMA.md §1.1: text_hidden_fcs = Linear(C, C) → ReLU → Linear(C, 256) → Dropout(0.0)
        self.seg_proj = nn.Sequential(
            nn.Linear(llm_hidden_size, llm_hidden_size), nn.ReLU(inplace=True),
            nn.Linear(llm_hidden_size, sam2.hidden_size), nn.Dropout(0.0),
        )
        if sam2.seg_input_norm not in ("none", "center"):
            raise ConfigError(f"sam2.seg_input_norm must be 'none' or 'center', got {sam2.seg_input_norm!r}")
        self.seg_norm = RunningCenter(llm_hidden_size, sam2.seg_center_momentum) if sam2.seg_input_norm == "center" \
            else None
        self.llm_hidden_size = llm_hidden_size
        self.phrase_proj = nn.Linear(llm_hidden_size, sam2.hidden_size) if sam2.seg_phrase_input else None
        if self.phrase_proj is not None:
            # With the phrase path, the state path starts at zero and learns a residual (like a zero-initialised
            # adapter): a grounding warm-up trains the phrase path alone, and SAMA training then starts from exactly
            # its prompts instead of adding a random projection of the [SEG] state to them.
            nn.init.zeros_(self.seg_proj[2].weight)
            nn.init.zeros_(self.seg_proj[2].bias)
        self.sam2 = SamaSam2VideoModel(build_sam2_video_config(sam2))

    def projection_parameters(self) -> list[nn.Parameter]:
        """Parameters of the [SEG] projection (``seg_proj`` and, when configured, its input normalisation)."""
        modules = [self.seg_proj] + [m for m in (self.seg_norm, self.phrase_proj) if m is not None]
        return [p for module in modules for p in module.parameters()]

    # -- shared helpers ----------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def memory_window(self) -> int:
        """Previous tracked frames SAM2 reads: ``num_maskmem - 1`` memories, ``max_memory_frames - 1`` pointers."""
        return max(self.cfg.num_maskmem - 1, self.cfg.max_memory_frames - 1)

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) → SAM2 pixel values (N, 3, S, S) on this module's device."""
        pixels = preprocess_frames(frames, self.cfg.image_size, self.cfg.mean, self.cfg.std)
        param = self.sam2.no_memory_embedding
        return pixels.to(param.device, dtype=param.dtype)

    @property
    def input_size(self) -> int:
        """Width of the grounding input per [SEG]: the LLM state, followed by the phrase embedding when configured."""
        return self.llm_hidden_size * (2 if self.phrase_proj is not None else 1)

    def project(self, seg_hidden: torch.Tensor) -> torch.Tensor:
        """Grounding inputs (K, :attr:`input_size`) → SAM2 prompt embeddings (K, D).

        The input is the LLM last-layer state at each [SEG] (``SamaModel.grounding_inputs`` builds it), followed by
        the phrase's mean word embedding when ``seg_phrase_input`` is on.
        """
        if seg_hidden.ndim != 2 or seg_hidden.shape[1] != self.input_size:
            raise DataError(f"[SEG] grounding inputs must be (K, {self.input_size}), got shape "
                            f"{tuple(seg_hidden.shape)}", field="seg_embeddings")
        state, phrase = seg_hidden[:, : self.llm_hidden_size], seg_hidden[:, self.llm_hidden_size :]
        if self.seg_norm is not None:
            state = self.seg_norm(state)
        prompts = self.seg_proj(state)
        if self.phrase_proj is not None:
            prompts = prompts + self.phrase_proj(phrase.to(prompts.dtype))
        return prompts

    # -- training path (SAMA.md §1.6) ---------------------------------------------------------------------------
    def image_features(self, frames: np.ndarray | torch.Tensor) -> Sam2Features:
        """SAM2 image features of N frames with the no-memory embedding added (every frame an init frame).

        Same result as transformers' ``Sam2VideoModel.get_image_embeddings``, which runs under ``no_grad``; here
        autograd follows ``requires_grad``: a frozen encoder records no graph, while the mask decoder's high-resolution
        convolutions (``conv_s0``/``conv_s1``, applied inside ``get_image_features``) and a trainable encoder get their
        gradients (SAMA.md §2: the mask decoder is trained).
        """
        pixels = frames if isinstance(frames, torch.Tensor) and frames.is_floating_point() else self.preprocess(frames)
        maps = list(self.sam2.get_image_features(pixels, return_dict=True).fpn_hidden_states)  # (HW, N, C) each
        maps[-1] = maps[-1] + self.sam2.no_memory_embedding
        sizes = self.sam2.backbone_feature_sizes
        levels = [m.permute(1, 2, 0).reshape(pixels.shape[0], -1, *size) for m, size in zip(maps, sizes)]
        return Sam2Features(levels=levels)

    def decode(self, features: Sam2Features, seg_embeddings: torch.Tensor) -> torch.Tensor:
        """Mask logits (K, N, h, w) for K [SEG] hidden states (K, C) on every one of the N frames independently.

        The projected [SEG] vector is appended to the (empty) sparse prompt, the dense prompt is ``no_mask_embed``
        and one mask is decoded per prompt. Gradients flow into ``seg_proj`` and the mask decoder. The logits are
        not gated by SAM2's object-score head (which would cut the gradient of frames it scores as empty).
        """
        return self.decode_prompts(features, self.project(seg_embeddings))

    def decode_prompts(self, features: Sam2Features, prompts: torch.Tensor) -> torch.Tensor:
        """Like :meth:`decode` but with already projected prompts (K, D)."""
        num_frames, num_objects = features.num_frames, prompts.shape[0]
        empty_points = prompts.new_zeros(num_frames, num_objects, 1, 2)
        empty_labels = -torch.ones(num_frames, num_objects, 1, dtype=torch.int32, device=prompts.device)
        per_frame_prompts = prompts.unsqueeze(0).expand(num_frames, -1, -1)
        with self.sam2.language_prompt(per_frame_prompts):
            masks, _scores = self._decode_masks(features, empty_points, empty_labels, None, multimask=False)
        return masks[:, :, 0].transpose(0, 1)  # (N, K, 1, h, w) → (K, N, h, w)

    def _decode_masks(self, features: Sam2Features, points: torch.Tensor | None, labels: torch.Tensor | None,
                      boxes: torch.Tensor | None, *, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM2 prompt encoder + mask decoder on precomputed features (no memory, no object-score gating)."""
        model, num_frames = self.sam2, features.num_frames
        sparse, dense = model.prompt_encoder(points, labels, boxes, None)
        positional = model.get_image_wide_positional_embeddings().expand(num_frames, -1, -1, -1)
        masks, scores, _tokens, _object_scores = model.mask_decoder(
            image_embeddings=features.levels[-1], image_positional_embeddings=positional,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense.expand(num_frames, -1, -1, -1),
            multimask_output=multimask, high_resolution_features=features.levels[:-1],
        )
        return masks, scores

    # -- inference -------------------------------------------------------------------------------------------
    def propagate(self, video: FrameSource | np.ndarray, seg_embeddings: torch.Tensor, cond_frames: Sequence[int],
                  *, mode: PropagateMode | None = None, streaming: bool = True) -> Propagation:
        """Masks of K [SEG] objects over every frame: iterate the result for ``(frame_idx, (K, H, W) bool)``.

        ``seg_embeddings`` are the LLM hidden states at the K [SEG] tokens (K, C). ``cond_frames`` are the raw frame
        indices SAM2 is conditioned on with the [SEG] prompt (the dense frames, SAMA.md §7.2); they may start after
        frame 0, SAM2 then reads their memory for the earlier frames. ``mode`` defaults to ``sam2.propagation``;
        ``"per_frame"`` decodes each frame independently. ``streaming=False`` keeps the whole preprocessed video and
        every output in the session (reference behaviour, for tests).
        """
        source = ArrayFrames(video) if isinstance(video, np.ndarray) else video
        mode = mode or self.cfg.propagation
        if mode not in ("memory", "per_frame"):
            raise ConfigError(f"propagation mode must be 'memory' or 'per_frame', got {mode!r}")
        if seg_embeddings.ndim != 2 or seg_embeddings.shape[0] == 0:
            raise DataError(f"[SEG] hidden states must be (K ≥ 1, C), got shape {tuple(seg_embeddings.shape)}",
                            field="seg_embeddings")
        conditioning = sorted({int(f) for f in cond_frames})
        if mode == "memory" and len(source) > 0:
            if not conditioning:
                raise DataError("memory propagation needs at least one conditioning frame", field="cond_frames")
            if conditioning[0] < 0 or conditioning[-1] >= len(source):
                raise DataError(f"conditioning frames {conditioning} outside the video (0..{len(source) - 1})",
                                field="cond_frames")
        return Propagation(self, source, seg_embeddings, conditioning, mode, streaming)

    # -- visual prompts -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def point_to_mask(self, frame: np.ndarray, xy: tuple[float, float]) -> np.ndarray:
        """SAM2 positive-point prompt at pixel ``xy`` of one uint8 (H, W, 3) frame → (H, W) bool mask.

        Like SAM2's image predictor, a single point decodes three candidate masks and keeps the best-scored one.
        """
        frame = self._check_frame(frame)
        point = self._to_model_coords(np.asarray([xy], dtype=np.float32), frame.shape[0], frame.shape[1], field="xy")
        labels = torch.ones(1, 1, 1, dtype=torch.int32, device=point.device)
        masks, scores = self._decode_masks(self.image_features(frame), point.view(1, 1, 1, 2), labels, None,
                                           multimask=True)
        best = int(scores[0, 0].argmax())
        return logits_to_masks(masks[0, 0, best], frame.shape[0], frame.shape[1])

    @torch.no_grad()
    def box_to_mask(self, frame: np.ndarray, xyxy: tuple[float, float, float, float]) -> np.ndarray:
        """SAM2 box prompt ``(x1, y1, x2, y2)`` in pixels of one uint8 (H, W, 3) frame → (H, W) bool mask."""
        frame = self._check_frame(frame)
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        if not (x2 > x1 and y2 > y1):
            raise DataError(f"box must have x2 > x1 and y2 > y1, got {tuple(xyxy)}", field="xyxy")
        corners = self._to_model_coords(np.asarray([[x1, y1], [x2, y2]], dtype=np.float32), frame.shape[0],
                                        frame.shape[1], field="xyxy")
        masks, _scores = self._decode_masks(self.image_features(frame), None, None, corners.view(1, 1, 4),
                                            multimask=False)
        return logits_to_masks(masks[0, 0, 0], frame.shape[0], frame.shape[1])

    @staticmethod
    def _check_frame(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise DataError(f"expected one uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}", field="frame")
        return frame

    def _to_model_coords(self, points: np.ndarray, height: int, width: int, *, field: str) -> torch.Tensor:
        if not np.isfinite(points).all():
            raise DataError(f"prompt coordinates must be finite, got {points.tolist()}", field=field)
        outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
        if outside.any():
            raise DataError(f"prompt {points.tolist()} lies outside the {width}×{height} frame", field=field)
        scale = np.asarray([self.image_size / width, self.image_size / height], dtype=np.float32)
        return torch.from_numpy(points * scale).to(self.sam2.no_memory_embedding)


class Propagation:
    """One grounded propagation over a video; iterate for ``(frame_idx, (K, H, W) bool)`` in frame order.

    ``session`` is the SAM2 inference session (memory mode, after iteration starts) and ``frames_encoded`` counts
    SAM2 image-encoder passes: one per frame, whatever the number of [SEG] objects.
    """

    def __init__(self, grounding: SamaGrounding, source: FrameSource, seg_embeddings: torch.Tensor,
                 cond_frames: list[int], mode: PropagateMode, streaming: bool) -> None:
        self.grounding, self.source, self.seg_embeddings = grounding, source, seg_embeddings
        self.cond_frames, self.mode, self.streaming = cond_frames, mode, streaming
        self.session: SamaInferenceSession | None = None
        self.frames_encoded = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        # The generators are decorated (not wrapped in a with-block) so inference mode never leaks to the caller.
        return self._per_frame() if self.mode == "per_frame" else self._memory()

    def _prompts(self) -> torch.Tensor:
        return self.grounding.project(self.seg_embeddings.to(self.grounding.sam2.no_memory_embedding))

    def rle(self) -> Iterator[tuple[int, list[dict]]]:
        """The same stream as per-frame RLEs (one per [SEG]), see :func:`masks_to_rle`."""
        return masks_to_rle(self)

    @torch.inference_mode()
    def _per_frame(self) -> Iterator[tuple[int, np.ndarray]]:
        grounding, source, prompts = self.grounding, self.source, self._prompts()
        for frame_idx in range(len(source)):
            features = grounding.image_features(source.frame(frame_idx))
            self.frames_encoded += 1
            logits = grounding.decode_prompts(features, prompts)[:, 0]
            yield frame_idx, logits_to_masks(logits, source.height, source.width)

    @torch.inference_mode()
    def _memory(self) -> Iterator[tuple[int, np.ndarray]]:
        grounding, source, prompts = self.grounding, self.source, self._prompts()
        model, num_frames = grounding.sam2, len(source)
        if num_frames == 0:
            return
        param = model.no_memory_embedding
        common = {"video_height": source.height, "video_width": source.width, "dtype": param.dtype,
                  "device": param.device}
        if self.streaming:
            session = SamaInferenceSession(frame_loader=lambda i: grounding.preprocess(source.frame(i))[0],
                                           total_frames=num_frames, **common)
        else:
            frames = np.stack([source.frame(i) for i in range(num_frames)])
            session = SamaInferenceSession(video=grounding.preprocess(frames), **common)
        self.session = session
        object_ids = list(range(prompts.shape[0]))
        for obj_id, prompt in zip(object_ids, prompts):
            obj_idx = session.obj_id_to_idx(obj_id)
            for frame_idx in self.cond_frames:
                session.add_language_inputs(obj_idx, frame_idx, prompt)
        session.obj_with_new_inputs = list(object_ids)
        for frame_idx in self.cond_frames:  # each conditioning frame is an initial frame: [SEG] prompt, no memory
            model(inference_session=session, frame_idx=frame_idx)
        session.obj_with_new_inputs = []
        for frame_idx in range(num_frames):
            output = model(inference_session=session, frame_idx=frame_idx)
            self.frames_encoded = session.frames_loaded
            if self.streaming:
                session.prune(frame_idx, grounding.memory_window)
            yield frame_idx, logits_to_masks(output.pred_masks[:, 0], source.height, source.width)
