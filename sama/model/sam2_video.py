"""transformers' SAM2 video model taught to take a language ([SEG]) prompt, and a lazily decoded, bounded session.

transformers' ``Sam2VideoModel`` has no language-embedding hook (DEPENDENCIES.md §5.4.3). Sa2VA/SAMA concatenate the
projected [SEG] vector to the sparse prompt embeddings before the mask decoder (SAMA.md §1.6). We add that with the
smallest overrides: a prompt encoder subclass that appends a pending language embedding, and a
``_run_single_frame_inference`` override that sets it for (object, frame) pairs carrying a language input. Everything
else (memory attention, memory encoding, object pointers) is transformers' own code.

``SamaInferenceSession`` extends ``Sam2VideoInferenceSession`` with language inputs, frames decoded on demand from a
frame source (one at a time, never the whole video), and :meth:`SamaInferenceSession.prune` that drops per-frame
outputs older than the SAM2 memory window so memory does not grow with video length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import Sam2VideoModel
from transformers.models.sam2_video.modeling_sam2_video import (
    Sam2VideoInferenceSession,
    Sam2VideoPromptEncoder,
)

from sama.model.init import pytorch_default_init

# Keys of a stored frame output that later frames never read (only the same-frame memory encoder uses them).
TRANSIENT_OUTPUT_KEYS = ("high_res_masks",)


class LanguagePromptEncoder(Sam2VideoPromptEncoder):
    """SAM2 prompt encoder that appends a pending language embedding to the sparse prompt tokens.

    The caller always gives point inputs (an empty label -1 point when there are none, as transformers' SAM2 does),
    so the sparse output exists and the language token lands after the point tokens, as in Sa2VA (SAMA.md §1.6).
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.language_embedding: torch.Tensor | None = None

    @contextmanager
    def language_prompt(self, embedding: torch.Tensor | None) -> Iterator[None]:
        """Within the block, every call appends ``embedding`` ((B, P, C), or (B, C) for P = 1) as a sparse token."""
        previous, self.language_embedding = self.language_embedding, embedding
        try:
            yield
        finally:
            self.language_embedding = previous

    def forward(self, input_points, input_labels, input_boxes, input_masks):  # type: ignore[override]
        sparse, dense = super().forward(input_points, input_labels, input_boxes, input_masks)
        if self.language_embedding is None:
            return sparse, dense
        # One language token per (image, prompt) pair: (B, P, C) or (B, C) when P == 1.
        language = self.language_embedding.to(dense.dtype).reshape(sparse.shape[0], sparse.shape[1], 1, -1)
        return torch.cat([sparse, language], dim=2), dense


class SamaSam2VideoModel(Sam2VideoModel):
    """``Sam2VideoModel`` whose conditioning frames may be prompted by a language embedding instead of clicks."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        # Same parameters (and state-dict keys) as the stock prompt encoder; only forward differs.
        self.prompt_encoder = LanguagePromptEncoder(config.prompt_encoder_config)
        self.post_init()
        self.reset_layer_init()
        self.tie_prompt_positional_encoding()

    @torch.no_grad()
    def reset_layer_init(self) -> None:
        """Initialise linear and convolution layers like the original SAM2 code (PyTorch's default Kaiming-uniform).

        transformers draws them from N(0, 0.02) (``initializer_range``), an init meant to be overwritten by pretrained
        weights. A SAM2 trained from scratch (``sama-smol``, nothing pretrained exists offline) then starts with
        image features of std ≈ 0.01 and mask logits of std ≈ 1e-3, and in training learns to ignore its prompt
        (measured at 128 px: a learned class-embedding prompt stays at val IoU 0.12-0.24 over 400 steps with the
        N(0, 0.02) init, and reaches 0.76 after 200 steps with this one). Loading a checkpoint overwrites all of it.
        """
        pytorch_default_init(self)

    @torch.no_grad()
    def tie_prompt_positional_encoding(self) -> None:
        """Give the prompt encoder the image's random Fourier positional encoding.

        SAM2 has one ``pe_layer`` for both the image-wide positional embedding and the prompt coordinates
        (sam2/modeling/sam/prompt_encoder.py ``get_dense_pe``), so a click and the image location it points at share
        one code. transformers keeps two copies (``shared_image_embedding`` and ``prompt_encoder.shared_embedding``,
        equal in converted checkpoints) and initialises them independently, so in a *random* model a box or click is
        coded differently from the image location it points at.
        """
        self.prompt_encoder.shared_embedding.positional_embedding.copy_(
            self.shared_image_embedding.positional_embedding)

    @contextmanager
    def language_prompt(self, embedding: torch.Tensor | None) -> Iterator[None]:
        """Decode with ``embedding`` as the [SEG] prompt: appended to the sparse tokens, and one mask from the
        single-mask output token. SAM2 in eval mode otherwise swaps an unstable single mask for its best multimask
        candidate (``dynamic_multimask_via_stability``); those tokens are never trained on [SEG] prompts (training
        decodes one mask, SAMA.md §1.6), so the swap would return an untrained token's mask at inference."""
        decoder = self.mask_decoder
        previous = decoder.dynamic_multimask_via_stability
        decoder.dynamic_multimask_via_stability = previous and embedding is None
        try:
            with self.prompt_encoder.language_prompt(embedding):
                yield
        finally:
            decoder.dynamic_multimask_via_stability = previous

    def _use_multimask(self, is_init_cond_frame: bool, point_inputs: dict | None) -> bool:
        # A language-prompted frame decodes one mask, as in training (SAMA.md §1.6: multimask_output=False).
        if self.prompt_encoder.language_embedding is not None:
            return False
        return super()._use_multimask(is_init_cond_frame, point_inputs)

    def _run_single_frame_inference(self, inference_session, frame_idx, obj_idx, batch_size, is_init_cond_frame,
                                    point_inputs, mask_inputs, reverse, prev_sam_mask_logits=None,
                                    streaming=False):  # type: ignore[override]
        language = None
        if is_init_cond_frame and point_inputs is None and mask_inputs is None:
            language = getattr(inference_session, "language_inputs_per_obj", {}).get(obj_idx, {}).get(frame_idx)
        with self.language_prompt(language):
            return super()._run_single_frame_inference(
                inference_session, frame_idx, obj_idx, batch_size, is_init_cond_frame, point_inputs, mask_inputs,
                reverse, prev_sam_mask_logits=prev_sam_mask_logits, streaming=streaming,
            )


class SamaInferenceSession(Sam2VideoInferenceSession):
    """A video inference session with language inputs, optional lazy frame decoding and bounded history.

    Pass ``video`` (N, 3, S, S) for an eager session (transformers' behaviour), or ``frame_loader`` plus
    ``total_frames`` for a lazy one: ``frame_loader(i)`` returns the preprocessed (3, S, S) frame ``i`` and is called
    only when SAM2 needs that frame's image features (the features of one frame are cached at a time).
    """

    def __init__(self, *, video: torch.Tensor | None = None, frame_loader: Callable[[int], torch.Tensor] | None = None,
                 total_frames: int | None = None, video_height: int, video_width: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        super().__init__(video=video, video_height=video_height, video_width=video_width, inference_device=device,
                         inference_state_device=device, video_storage_device=device, dtype=dtype)
        if (video is None) == (frame_loader is None):
            raise ValueError("give exactly one of video (eager) or frame_loader (lazy)")
        if frame_loader is not None and total_frames is None:
            raise ValueError("a lazy session needs total_frames")
        self.frame_loader = frame_loader
        self.total_frames = total_frames if frame_loader is not None else len(video)  # type: ignore[arg-type]
        self.language_inputs_per_obj: dict[int, dict[int, torch.Tensor]] = {}
        self.frames_loaded = 0  # how many frames were decoded and encoded (each once per video)

    @property
    def num_frames(self) -> int | None:  # type: ignore[override]
        return self.total_frames

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        if self.frame_loader is None:
            self.frames_loaded += 1
            return super().get_frame(frame_idx)
        if not 0 <= frame_idx < self.total_frames:
            raise IndexError(f"frame {frame_idx} outside the video (0..{self.total_frames - 1})")
        self.frames_loaded += 1
        return self.frame_loader(frame_idx).to(self.inference_device, dtype=self.dtype)

    def add_language_inputs(self, obj_idx: int, frame_idx: int, embedding: torch.Tensor) -> None:
        """Prompt object ``obj_idx`` on ``frame_idx`` with a projected [SEG] embedding (C,) or (1, C)."""
        self.language_inputs_per_obj.setdefault(obj_idx, {})[frame_idx] = embedding.reshape(1, -1).to(
            self.inference_device, dtype=self.dtype
        )

    def reset_tracking_data(self) -> None:
        super().reset_tracking_data()
        self.language_inputs_per_obj.clear()

    def stored_frame_outputs(self) -> int:
        """Number of per-frame outputs held for all objects (conditioning + tracked)."""
        return sum(len(d["cond_frame_outputs"]) + len(d["non_cond_frame_outputs"])
                   for d in self.output_dict_per_obj.values())

    def prune(self, current_frame: int, keep_last: int) -> None:
        """After ``current_frame`` of a forward sweep, keep only the last ``keep_last`` tracked-frame outputs.

        Conditioning-frame outputs are kept. Outputs older than the memory window are never read again by SAM2
        (memory uses ``num_maskmem - 1`` previous frames, object pointers ``max_object_pointers_in_encoder - 1``),
        so pruning with ``keep_last`` = that window does not change the result.
        """
        oldest_kept = current_frame - keep_last + 1
        for obj_idx, outputs in self.output_dict_per_obj.items():
            tracked = outputs["non_cond_frame_outputs"]
            for frame_idx in [f for f in tracked if f < oldest_kept]:
                del tracked[frame_idx]
            for key in TRANSIENT_OUTPUT_KEYS:
                for out in tracked.values():
                    out.pop(key, None)
            frames_tracked = self.frames_tracked_per_obj.get(obj_idx, {})
            for frame_idx in [f for f in frames_tracked if f < oldest_kept]:
                del frames_tracked[frame_idx]
        if self.processed_frames is not None and self.frame_loader is not None:
            self.processed_frames.clear()
