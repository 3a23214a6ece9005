"""Backbone tests: frame preprocessing, special tokens, frame-token shapes, new-token-row gradients, SmolLM2 (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sama.config import IMAGENET_MEAN, IMAGENET_STD, SamaConfig
from sama.errors import ConfigError, DataError
from sama.model.backbone import SPECIAL_TOKENS, SamaBackbone, clip_neighbours, preprocess_frames, vision_pixels


def test_preprocess_resizes_and_normalises() -> None:
    frames = torch.full((2, 30, 50, 3), 255, dtype=torch.uint8)
    frames[1] = 0
    out = preprocess_frames(frames, 28, IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == (2, 3, 28, 28)
    for c in range(3):
        assert torch.allclose(out[0, c], torch.full((28, 28), (1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]), atol=1e-5)
        assert torch.allclose(out[1, c], torch.full((28, 28), -IMAGENET_MEAN[c] / IMAGENET_STD[c]), atol=1e-5)
    with pytest.raises(ValueError, match=r"frames must be \(T, H, W, 3\)"):
        preprocess_frames(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 8, IMAGENET_MEAN, IMAGENET_STD)


def test_special_tokens_are_single_new_tokens(tiny_model) -> None:
    tok = tiny_model.tokenizer
    for token in SPECIAL_TOKENS:
        assert tok.tokenize(token) == [token]
    ids = sorted(tiny_model.backbone.token_ids.values())
    assert ids == list(range(49152, 49152 + len(SPECIAL_TOKENS)))  # appended after SmolLM2's 49152
    assert tiny_model.backbone.input_embeddings().weight.shape[0] == len(tok)


def test_frame_tokens_shape(tiny_model) -> None:
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 20, 24, 3), dtype=np.uint8))
    tokens = tiny_model.backbone.encode_frames(tiny_model.backbone.preprocess(frames))
    config = tiny_model.config
    assert tokens.shape == (3, config.vision.tokens_per_frame, config.llm.hidden_size)


def test_lora_adds_trainable_adapters_only_in_the_llm() -> None:
    from sama.model.modeling import SamaModel

    model = SamaModel(SamaConfig.from_name("sama-tiny", lora={"enabled": True}))
    names = model.trainable_parameter_names()
    lora = [n for n in names if "lora_" in n]
    assert lora and all(n.startswith("backbone.vlm.model.language_model.layers.") for n in lora)
    assert not any(n.startswith("backbone.vlm.model.language_model.layers.") and "lora_" not in n for n in names)


def test_unknown_tokenizer_is_a_config_error() -> None:
    config = SamaConfig.from_name("sama-tiny", llm={"tokenizer": "qwen"})
    with pytest.raises(ConfigError, match=r"llm\.tokenizer 'qwen': only 'smollm2' is available offline"):
        SamaBackbone(config)


@pytest.mark.slow
def test_sama_smol_uses_the_real_smollm2_and_generates_text() -> None:
    from sama.model.factory import create_model

    model = create_model("sama-smol").eval()
    tok = model.tokenizer
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(prompt, return_tensors="pt")
    out = model.backbone.vlm.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])
    frames = np.random.default_rng(0).integers(0, 255, (8, 48, 64, 3), dtype=np.uint8)
    sample = model.processor.build_prompt(frames, [("What is the capital of France?", None)], [[]])
    result = model.generate(sample, max_new_tokens=6)
    assert result.text.strip() and len(result.token_ids) <= 6


def test_random_vision_tower_and_projector_use_pytorch_default_init() -> None:
    """Kaiming-uniform (std = 1/sqrt(3·fan_in)), not transformers' N(0, 0.02): a from-scratch tower needs it."""
    backbone = SamaBackbone(SamaConfig.from_name("sama-tiny"))
    layers = [m for part in (backbone.vision_tower, backbone.projector) for m in part.modules()
              if isinstance(m, torch.nn.Linear) and m.weight.shape[1] >= 32]
    assert layers
    for layer in layers:
        bound = layer.weight.shape[1] ** -0.5
        assert layer.weight.abs().max() <= bound + 1e-6
        assert abs(float(layer.weight.detach().std()) - bound / 3**0.5) < 0.3 * bound / 3**0.5


def test_motion_input_adds_the_clip_neighbours_difference() -> None:
    """vision.motion_input: 3 more tower channels hold frame[p + 1] − frame[p − 1] of the clip (ends clamp)."""
    assert SamaConfig.from_name("sama-1b").vision.motion_input is False  # SAMA.md §1.1: RGB alone
    config = SamaConfig.from_name("sama-tiny", vision={"motion_input": True})
    v = config.vision
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (4, 20, 20, 3), dtype=np.uint8))
    rgb = preprocess_frames(frames, v.image_size, v.mean, v.std)
    pixels = vision_pixels(frames, v)
    assert pixels.shape == (4, 6, v.image_size, v.image_size)
    assert clip_neighbours(4) == ([0, 0, 1, 2], [1, 2, 3, 3])
    torch.testing.assert_close(pixels[:, :3], rgb)
    torch.testing.assert_close(pixels[:, 3:], rgb[[1, 2, 3, 3]] - rgb[[0, 0, 1, 2]])
    torch.testing.assert_close(vision_pixels(frames[1:2], v, frames[0:1], frames[2:3]), pixels[1:2])
    assert vision_pixels(frames[:1], v)[:, 3:].abs().sum() == 0  # a one-frame clip does not move
    assert vision_pixels(frames, SamaConfig.from_name("sama-tiny").vision).shape[1] == 3
    with pytest.raises(DataError, match="needs both the earlier and the later frames"):
        vision_pixels(frames, v, before=frames)
    backbone = SamaBackbone(config)
    assert backbone.vlm.model.vision_tower.embeddings.patch_embeddings.projection.in_channels == 6
    assert backbone.encode_frames(pixels).shape == (4, v.tokens_per_frame, config.llm.hidden_size)
