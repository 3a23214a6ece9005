"""Tests for sama.model.grounding / sama.model.sam2_video: [SEG] → SAM2 training path and streaming propagation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn
from transformers import Sam2VideoModel

from sama.config import Sam2Config, SamaConfig
from sama.data.masks import rle_decode
from sama.errors import ConfigError, DataError
from sama.model.grounding import (
    HIERA_PATCH_STRIDE,
    MASK_THRESHOLD,
    PROMPT_PATCH_SIZE,
    REQUIRED_MEMORY_DIM,
    SamaGrounding,
    build_sam2_video_config,
    check_sam2_config,
    logits_to_masks,
    masks_to_rle,
    preprocess_frames,
)

TINY = SamaConfig.from_name("sama-tiny")
LLM_HIDDEN = TINY.llm.hidden_size


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny per-frame ops run fastest on one thread; several threads on the shared 2-core machine crawl."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def grounding() -> SamaGrounding:
    """Tiny random grounding whose object-score head always says "object present" (so masks are not gated off)."""
    torch.manual_seed(0)
    model = SamaGrounding(TINY.sam2, LLM_HIDDEN).eval()
    head = model.sam2.mask_decoder.pred_obj_score_head.proj_out
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(10.0)
    return model


def moving_square_video(num_frames: int, height: int = 30, width: int = 40) -> np.ndarray:
    """A bright square moving right on a dark noisy background, (T, H, W, 3) uint8."""
    rng = np.random.default_rng(1)
    video = rng.integers(0, 60, size=(num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = (2 * t) % (width - 10)
        video[t, 10:20, x:x + 10] = 230
    return video


def seg_hidden(num_objects: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(num_objects, LLM_HIDDEN, generator=torch.Generator().manual_seed(seed))


# -- constants and configuration ----------------------------------------------------------------------------------
def test_pinned_constants() -> None:
    assert MASK_THRESHOLD == 0.0  # SAMA.md §1.6: sigmoid > 0.5
    assert REQUIRED_MEMORY_DIM == 64  # DEPENDENCIES.md §5.4.4
    assert PROMPT_PATCH_SIZE == 16 and HIERA_PATCH_STRIDE == 4  # SAM2: 1024 px → 64×64 embedding, 256×256 s0


def test_seg_projection_is_text_hidden_fcs(grounding: SamaGrounding) -> None:
    layers = list(grounding.seg_proj)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear, nn.Dropout]
    assert (layers[0].in_features, layers[0].out_features) == (LLM_HIDDEN, LLM_HIDDEN)
    assert (layers[2].in_features, layers[2].out_features) == (LLM_HIDDEN, TINY.sam2.hidden_size)
    assert layers[3].p == 0.0


def test_hiera_large_config_shapes() -> None:
    config = build_sam2_video_config(Sam2Config())  # paper defaults: Hiera-L at 1024 px, hidden 256
    assert config.image_size == 1024
    assert config.vision_config.backbone_feature_sizes == [[256, 256], [128, 128], [64, 64]]
    assert config.memory_attention_rope_feat_sizes == [64, 64]
    assert config.prompt_encoder_config.hidden_size == 256 and config.mask_decoder_config.hidden_size == 256
    assert config.num_maskmem == 7 and config.max_object_pointers_in_encoder == 16
    assert config.vision_config.backbone_config.blocks_per_stage == [2, 6, 36, 4]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"memory_dim": 32}, "sam2.memory_dim must be 64"),
        ({"hidden_size": 64}, "sam2.hidden_size must be greater than sam2.memory_dim"),
        ({"image_size": 100}, "sam2.image_size must be a multiple of 32"),
        ({"hiera_global_attention_blocks": (2,)}, "fall on the first block of a pooled stage"),
        ({"hiera_heads_per_stage": (1, 1, 2)}, "must all have 4 entries"),
    ],
)
def test_bad_sam2_config_is_explained(override: dict, message: str) -> None:
    cfg = TINY.replace(sam2=override).sam2
    with pytest.raises(ConfigError, match=message):
        check_sam2_config(cfg)


@pytest.mark.parametrize("preset", ["sama-tiny", "sama-smol", "sama-1b"])
def test_presets_have_runnable_sam2(preset: str) -> None:
    check_sam2_config(SamaConfig.from_name(preset).sam2)


def test_language_prompt_encoder_keeps_stock_state_dict(grounding: SamaGrounding) -> None:
    stock = Sam2VideoModel(grounding.sam2.config)
    assert set(stock.state_dict()) == set(grounding.sam2.state_dict())


# -- preprocessing and mask helpers -------------------------------------------------------------------------------
def test_preprocess_direct_resize_and_normalise() -> None:
    frames = np.full((2, 30, 70, 3), 128, dtype=np.uint8)
    frames[..., 1] = 0
    pixels = preprocess_frames(frames, 64, TINY.sam2.mean, TINY.sam2.std)
    assert pixels.shape == (2, 3, 64, 64)  # aspect ratio ignored
    mean, std = TINY.sam2.mean, TINY.sam2.std
    assert torch.allclose(pixels[:, 0], torch.tensor((128 / 255 - mean[0]) / std[0]), atol=1e-6)
    assert torch.allclose(pixels[:, 1], torch.tensor((0 - mean[1]) / std[1]), atol=1e-6)


def test_preprocess_rejects_bad_frames() -> None:
    with pytest.raises(DataError, match=r"field frames: expected uint8 frames, got torch.float32"):
        preprocess_frames(torch.zeros(1, 8, 8, 3), 64, (0, 0, 0), (1, 1, 1))
    with pytest.raises(DataError, match=r"shape \(N, H, W, 3\), got \(1, 8, 8\)"):
        preprocess_frames(np.zeros((1, 8, 8), np.uint8), 64, (0, 0, 0), (1, 1, 1))


def test_logits_upsampled_bilinear_and_thresholded_at_zero() -> None:
    logits = torch.full((1, 4, 4), -1.0)
    logits[0, :, :2] = 1.0
    masks = logits_to_masks(logits, 8, 12)
    assert masks.shape == (1, 8, 12) and masks.dtype == bool
    assert masks[0, :, :6].all() and not masks[0, :, 6:].any()


def test_masks_to_rle_round_trip() -> None:
    masks = [(3, np.eye(5, dtype=bool)[None].repeat(2, axis=0)), (4, np.zeros((2, 5, 5), bool))]
    encoded = list(masks_to_rle(iter(masks)))
    assert [idx for idx, _ in encoded] == [3, 4]
    assert np.array_equal(rle_decode(encoded[0][1][1], 5, 5), np.eye(5, dtype=bool))
    assert not rle_decode(encoded[1][1][0], 5, 5).any()


# -- training path ------------------------------------------------------------------------------------------------
def test_decode_shapes(grounding: SamaGrounding) -> None:
    features = grounding.image_features(moving_square_video(3))
    assert [tuple(level.shape) for level in features.levels] == [(3, 16, 16, 16), (3, 32, 8, 8), (3, 128, 4, 4)]
    logits = grounding.decode(features, seg_hidden(2))
    assert logits.shape == (2, 3, 16, 16)  # (K, N, image/4, image/4)


def test_gradients_reach_projection_and_decoder_not_encoder(grounding: SamaGrounding) -> None:
    grounding.train()
    grounding.sam2.vision_encoder.requires_grad_(False)  # the paper's policy: SAM2 image encoder frozen
    try:
        grounding.zero_grad()
        features = grounding.image_features(moving_square_video(2))
        # frozen encoder: no graph through it; only the decoder's high-res convs (conv_s0/conv_s1) carry grads
        assert features.levels[0].requires_grad and features.levels[1].requires_grad
        grounding.decode(features, seg_hidden(2)).square().mean().backward()
        assert grounding.seg_proj[0].weight.grad is not None and grounding.seg_proj[0].weight.grad.abs().sum() > 0
        decoder_grads = [p.grad for p in grounding.sam2.mask_decoder.transformer.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in decoder_grads)
        assert all(p.grad is None for p in grounding.sam2.vision_encoder.parameters())
        conv = grounding.sam2.mask_decoder.conv_s0.weight.grad
        assert conv is not None and conv.abs().sum() > 0
    finally:
        grounding.sam2.vision_encoder.requires_grad_(True)
        grounding.zero_grad(set_to_none=True)
        grounding.eval()


def test_trainable_encoder_gets_gradients(grounding: SamaGrounding) -> None:
    grounding.zero_grad(set_to_none=True)
    try:
        grounding.decode(grounding.image_features(moving_square_video(2)), seg_hidden(1)).square().mean().backward()
        grads = [p.grad for p in grounding.sam2.vision_encoder.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    finally:
        grounding.zero_grad(set_to_none=True)


def test_decode_objects_are_independent(grounding: SamaGrounding) -> None:
    features = grounding.image_features(moving_square_video(2))
    both = grounding.decode(features, seg_hidden(2))
    second = grounding.decode(features, seg_hidden(2)[1:])
    assert torch.allclose(both[1], second[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1])


# -- inference path -----------------------------------------------------------------------------------------------
def count_encoder_calls(grounding: SamaGrounding) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls = [0]

    def hook(_module: nn.Module, _args: tuple, _output: object) -> None:
        calls[0] += 1

    return calls, grounding.sam2.vision_encoder.register_forward_hook(hook)


def test_streaming_equals_full_session(grounding: SamaGrounding) -> None:
    video, seg = moving_square_video(12), seg_hidden(2)
    streamed = list(grounding.propagate(video, seg, [2, 5]))
    reference = list(grounding.propagate(video, seg, [2, 5], streaming=False))
    assert [idx for idx, _ in streamed] == list(range(12))
    assert streamed[0][1].shape == (2, 30, 40) and streamed[0][1].dtype == bool
    assert any(m.any() for _, m in streamed)  # not a trivially empty comparison
    for (_, a), (_, b) in zip(streamed, reference):
        assert np.array_equal(a, b)


def test_conditioning_frames_use_the_training_decoder(grounding: SamaGrounding) -> None:
    """A conditioning frame (here not frame 0) is decoded by the same [SEG] prompt path as training."""
    video, seg, cond = moving_square_video(10), seg_hidden(2), [4, 7]
    masks = dict(grounding.propagate(video, seg, cond))
    with torch.no_grad():
        logits = grounding.decode(grounding.image_features(video[cond]), seg)
    for position, frame_idx in enumerate(cond):
        expected = logits_to_masks(logits[:, position], 30, 40)
        assert np.array_equal(masks[frame_idx], expected)


def test_session_stays_bounded(grounding: SamaGrounding) -> None:
    video, seg, cond = moving_square_video(40), seg_hidden(2), [3, 9]
    propagation = grounding.propagate(video, seg, cond)
    bound = 2 * (grounding.memory_window + len(cond))
    seen, streamed = [], []
    for frame_idx, masks in propagation:
        streamed.append(masks)
        session = propagation.session
        assert session.stored_frame_outputs() <= bound
        assert not session.processed_frames  # frames are decoded on demand, never stored
        assert all(len(tracked) <= grounding.memory_window for tracked in session.frames_tracked_per_obj.values())
        seen.append(frame_idx)
    assert seen == list(range(40))
    assert session.stored_frame_outputs() == bound  # the window is full at the end
    reference = grounding.propagate(video, seg, cond, streaming=False)
    assert all(np.array_equal(a, b) for a, (_, b) in zip(streamed, reference, strict=True))  # pruning is lossless
    assert reference.session.stored_frame_outputs() == 2 * 40  # without pruning every frame is kept


@pytest.mark.parametrize("mode", ["memory", "per_frame"])
def test_image_features_computed_once_per_frame(grounding: SamaGrounding, mode: str) -> None:
    video = moving_square_video(9)
    calls, handle = count_encoder_calls(grounding)
    try:
        propagation = grounding.propagate(video, seg_hidden(3), [0, 4], mode=mode)
        frames = list(propagation)
    finally:
        handle.remove()
    assert len(frames) == 9 and frames[0][1].shape[0] == 3
    assert calls[0] == 9 and propagation.frames_encoded == 9


def test_per_frame_mode_matches_independent_decoding(grounding: SamaGrounding) -> None:
    video, seg = moving_square_video(4), seg_hidden(2)
    frames = list(grounding.propagate(video, seg, [], mode="per_frame"))
    with torch.no_grad():
        logits = grounding.decode(grounding.image_features(video), seg)
    for frame_idx, masks in frames:
        assert np.array_equal(masks, logits_to_masks(logits[:, frame_idx], 30, 40))


def test_propagates_a_lazy_video(grounding: SamaGrounding) -> None:
    from sama.data.video import open_video

    array, seg = moving_square_video(6), seg_hidden(1)
    from_video = list(grounding.propagate(open_video(array), seg, [1, 3]))
    from_array = list(grounding.propagate(array, seg, [1, 3]))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(from_video, from_array, strict=True))


def test_propagation_rle_stream(grounding: SamaGrounding) -> None:
    video, seg = moving_square_video(5), seg_hidden(1)
    dense = dict(grounding.propagate(video, seg, [1]))
    for frame_idx, rles in grounding.propagate(video, seg, [1]).rle():
        assert len(rles) == 1 and rles[0]["size"] == [30, 40]
        assert np.array_equal(rle_decode(rles[0], 30, 40), dense[frame_idx][0])


def test_bad_propagation_inputs_are_explained(grounding: SamaGrounding) -> None:
    video = moving_square_video(5)
    with pytest.raises(DataError, match=r"field cond_frames: conditioning frames \[2, 7\] outside the video \(0..4\)"):
        grounding.propagate(video, seg_hidden(1), [7, 2])
    with pytest.raises(DataError, match="needs at least one conditioning frame"):
        grounding.propagate(video, seg_hidden(1), [])
    with pytest.raises(DataError, match=r"field seg_embeddings: .*\(K ≥ 1, C\), got shape \(64,\)"):
        grounding.propagate(video, torch.zeros(LLM_HIDDEN), [0])
    with pytest.raises(ConfigError, match="propagation mode must be"):
        grounding.propagate(video, seg_hidden(1), [0], mode="bidirectional")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"field video: expected video frames of shape \(T, H, W, 3\)"):
        grounding.propagate(video[..., 0], seg_hidden(1), [0])


def test_inference_mode_does_not_leak_between_frames(grounding: SamaGrounding) -> None:
    for _ in grounding.propagate(moving_square_video(3), seg_hidden(1), [0]):
        assert not torch.is_inference_mode_enabled()


# -- visual prompts -----------------------------------------------------------------------------------------------
def test_point_and_box_to_mask(grounding: SamaGrounding) -> None:
    frame = moving_square_video(1)[0]
    point_mask = grounding.point_to_mask(frame, (5.0, 15.0))
    box_mask = grounding.box_to_mask(frame, (0, 10, 10, 20))
    assert point_mask.shape == box_mask.shape == (30, 40)
    assert point_mask.dtype == box_mask.dtype == bool


def test_bad_visual_prompts_are_explained(grounding: SamaGrounding) -> None:
    frame = moving_square_video(1)[0]
    with pytest.raises(DataError, match=r"field xy: prompt \[\[50.0, 3.0\]\] lies outside the 40×30 frame"):
        grounding.point_to_mask(frame, (50, 3))
    with pytest.raises(DataError, match=r"field xyxy: box must have x2 > x1 and y2 > y1"):
        grounding.box_to_mask(frame, (10, 10, 5, 20))
    with pytest.raises(DataError, match=r"field frame: expected one uint8 \(H, W, 3\) frame"):
        grounding.point_to_mask(frame[..., 0], (1, 1))


def test_seg_decoding_is_the_same_in_train_and_eval_mode(grounding: SamaGrounding) -> None:
    """[SEG] prompts decode the single-mask token in both modes (no eval-only multimask swap, which would return
    tokens that training never touches)."""
    features = grounding.image_features(moving_square_video(2))
    prompt = seg_hidden(1)
    grounding.eval()
    with torch.no_grad():
        evaluated = grounding.decode(features, prompt)
    grounding.train()
    try:
        with torch.no_grad():
            trained = grounding.decode(features, prompt)
    finally:
        grounding.eval()
    assert torch.allclose(evaluated, trained, atol=1e-5)
    assert grounding.sam2.mask_decoder.dynamic_multimask_via_stability == grounding.sam2.config.mask_decoder_config.dynamic_multimask_via_stability


# -- learning from scratch (sama-smol's SAM2 is random) ----------------------------------------------------------------
def test_prompt_positional_encoding_is_the_image_one() -> None:
    """SAM2 codes a click and the image location it hits with one positional encoding (shared ``pe_layer``)."""
    torch.manual_seed(3)
    sam2 = SamaGrounding(TINY.sam2, LLM_HIDDEN).sam2
    assert torch.equal(sam2.prompt_encoder.shared_embedding.positional_embedding,
                       sam2.shared_image_embedding.positional_embedding)
    size = sam2.prompt_encoder.image_embedding_size[0]
    image_pe = sam2.get_image_wide_positional_embeddings()[0]  # (C, h, w), cell centres
    cell = torch.tensor([[[[2.5, 1.5]]]]) * TINY.sam2.image_size / size  # centre of cell (x=2, y=1) in model pixels
    prompt_pe = sam2.prompt_encoder.shared_embedding(cell, (TINY.sam2.image_size, TINY.sam2.image_size))[0, 0, 0]
    torch.testing.assert_close(prompt_pe, image_pe[:, 1, 2], atol=1e-5, rtol=1e-5)


def _two_colour_scenes(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames with a red and a blue square at random places; masks (count, 2, H, W) of the red and the blue one."""
    frames = rng.integers(60, 120, size=(count, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((count, 2, 32, 32), dtype=bool)
    for i in range(count):
        y1, x1 = rng.integers(0, 10, size=2)
        y2, x2 = rng.integers(18, 24, size=2)
        for k, (y, x, colour) in enumerate(((y1, x1, (230, 20, 20)), (y2, x2, (20, 20, 230)))):
            frames[i, y:y + 8, x:x + 8] = colour
            masks[i, k, y:y + 8, x:x + 8] = True
    return frames, masks


def test_random_sam2_learns_to_follow_a_language_prompt() -> None:
    """Two learned prompt vectors ("the red square", "the blue square") on a random SAM2: the masks must follow the
    prompt. With transformers' N(0, 0.02) layer init the decoder learns to ignore the prompt (see reset_layer_init)."""
    from sama.model.losses import mask_losses

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    grounding = SamaGrounding(TINY.sam2, LLM_HIDDEN).train()
    prompts = nn.Parameter(torch.randn(2, TINY.sam2.hidden_size))
    optimizer = torch.optim.AdamW([*grounding.sam2.parameters(), prompts], lr=2e-3)
    for _ in range(120):
        frames, masks = _two_colour_scenes(4, rng)
        logits = grounding.decode_prompts(grounding.image_features(frames), prompts)  # (2, N, h, w)
        bce, dice = mask_losses(logits.reshape(-1, *logits.shape[-2:]),
                                torch.from_numpy(masks.transpose(1, 0, 2, 3).reshape(-1, 32, 32)), TINY.loss)
        optimizer.zero_grad()
        (2 * bce + 0.5 * dice).backward()
        optimizer.step()
    frames, masks = _two_colour_scenes(16, rng)
    with torch.no_grad():
        logits = grounding.decode_prompts(grounding.image_features(frames), prompts)
    predicted = logits_to_masks(logits, 32, 32)  # (2, N, H, W)
    for k in range(2):
        ious = [(p & t).sum() / max((p | t).sum(), 1) for p, t in zip(predicted[k], masks[:, k])]
        assert np.mean(ious) > 0.6, f"prompt {k}: mean IoU {np.mean(ious):.3f}"


def test_running_center_separates_states_that_share_one_direction() -> None:
    from sama.model.grounding import RunningCenter

    torch.manual_seed(0)
    shared = 40 * torch.randn(64)
    states = shared + 0.5 * torch.randn(6, 64)  # cosine ≈ 0.999 between any two, like SmolLM2's [SEG] states
    assert nn.functional.cosine_similarity(states[0], states[1], dim=0) > 0.99
    center = RunningCenter(64, momentum=0.5).train()
    for _ in range(20):
        center(states)
    out = center.eval()(states)
    assert nn.functional.cosine_similarity(out[0], out[1], dim=0).abs() < 0.7
    torch.testing.assert_close(center.running_mean, states.mean(0))
    before = center.running_mean.clone()
    center(states + 5.0)  # eval mode: the running mean stays
    torch.testing.assert_close(center.running_mean, before)
    with pytest.raises(ConfigError, match="seg_center_momentum"):
        RunningCenter(8, momentum=0.0)


def test_seg_input_norm_is_an_option() -> None:
    assert SamaConfig.from_name("sama-1b").sam2.seg_input_norm == "none"  # SAMA.md §1.1: text_hidden_fcs as is
    assert SamaConfig.from_name("sama-smol").sam2.seg_input_norm == "center"
    cfg = Sam2Config(**{**TINY.sam2.__dict__, "seg_input_norm": "center"})
    grounding = SamaGrounding(cfg, LLM_HIDDEN)
    assert {n for n, _ in grounding.named_parameters() if n.startswith("seg_norm.")} == {"seg_norm.norm.weight",
                                                                                        "seg_norm.norm.bias"}
    assert len(grounding.projection_parameters()) == 6  # two linears + the LayerNorm
    with pytest.raises(ConfigError, match="seg_input_norm"):
        SamaGrounding(Sam2Config(**{**TINY.sam2.__dict__, "seg_input_norm": "whiten"}), LLM_HIDDEN)
