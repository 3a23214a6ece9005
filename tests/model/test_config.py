"""Tests for sama.config: paper numbers pinned, presets, strict dict round trip."""

from __future__ import annotations

import pytest

from sama.config import PRESETS, SamaConfig, list_presets, register_preset
from sama.errors import ConfigError


def test_paper_numbers_are_the_defaults() -> None:
    config = SamaConfig.from_name("sama-1b")
    s, a, p, loss = config.sampling, config.aggregator, config.prompts, config.loss
    assert (s.sparse_interval, s.max_frames, s.min_frames, s.num_dense) == (3, 32, 8, 5)  # SAMA.md §1.2
    assert s.dense_policy == "train_bins"
    assert (config.vision.image_size, config.vision.patch_size, config.vision.tokens_per_frame) == (448, 14, 256)
    assert config.vision.qkv_bias  # InternViT-300M-448px attention has a qkv bias
    assert (a.spatial_num_queries, a.spatial_num_layers, a.qformer_hidden_size) == (32, 12, 768)  # §1.3
    assert (a.spatial_cross_attention_freq, a.spatial_encoder_width) == (2, 1408)
    assert (a.temporal_num_layers, a.temporal_num_queries, a.temporal_window_tokens) == (2, 32, 512)
    assert a.temporal_window_tokens // a.spatial_num_queries == 16  # 16 frames per window
    assert a.text_max_length == 256
    assert a.max_sparse_frames == s.max_frames == 32  # §1.2: T_s ≤ 32
    assert not a.frame_time_embedding and p.trajectory_points == 0  # our options, not in SAMA.md §1.3 / §1.4
    assert (p.tokens_per_object, p.shape_mask_size, p.shape_mask_points, p.shape_mlp_hidden) == (2, 112, 12544, 1024)
    assert p.ref_mask_mode == "box" and p.region_frame == "first_nonempty"
    assert (config.sam2.image_size, config.sam2.hidden_size) == (1024, 256)  # §1.1
    assert config.sam2.hiera_blocks_per_stage == (2, 6, 36, 4)  # Hiera-L
    assert (loss.ce_weight, loss.bce_weight, loss.dice_weight) == (1.0, 2.0, 0.5)  # §1.7
    assert (loss.num_points, loss.oversample_ratio, loss.importance_sample_ratio, loss.dice_eps) == (12544, 3.0, 0.75, 1.0)
    assert config.llm.max_length == 8192
    t = config.trainable  # SAMA.md §2
    assert t.projector and t.aggregator and t.seg_projection and t.sam2_mask_decoder
    assert not (t.llm or t.vision_tower or t.sam2_image_encoder)
    assert not config.lora.enabled


@pytest.mark.parametrize(
    ("name", "hidden", "template"),
    [("sama-1b", 896, "qwen_chat"), ("sama-4b", 2048, "phi3_chat"), ("sama-8b", 4096, "internlm2_chat")],
)
def test_paper_presets_llm(name: str, hidden: int, template: str) -> None:
    config = SamaConfig.from_name(name)
    assert config.llm.hidden_size == hidden and config.llm.chat_template == template  # SAMA.md §1.1
    assert config.vision.hidden_size == 1024 and config.vision.num_layers == 24  # InternViT-300M


def test_small_presets() -> None:
    smol = SamaConfig.from_name("sama-smol")
    assert smol.llm.kind == "smollm2" and smol.llm.hidden_size == 576
    assert smol.vision.tokens_per_frame == 64 and smol.vision.grid_size == 8  # no pixel shuffle (measured choice)
    assert smol.sampling.num_dense == 2 and smol.sam2.seg_phrase_input
    assert smol.prompts.crop_size == 8 and smol.prompts.trajectory_points == 8  # ours, measured (sama/config.py)
    assert smol.vision.motion_input  # ours, measured (sama/config.py, session 27)
    assert SamaConfig.from_name("sama-1b").prompts.crop_size == 0  # SAMA.md §1.4: no crop in the paper
    tiny = SamaConfig.from_name("sama-tiny")
    assert tiny.vision.tokens_per_frame == 4
    assert {"sama-tiny", "sama-smol", "sama-1b", "sama-4b", "sama-8b"} <= set(list_presets())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dict_round_trip(name: str, tmp_path) -> None:
    config = SamaConfig.from_name(name)
    assert SamaConfig.from_dict(config.to_dict()) == config
    config.save_json(tmp_path / "config.json")
    assert SamaConfig.from_json(tmp_path / "config.json") == config


def test_overrides() -> None:
    config = SamaConfig.from_name("sama-tiny", sampling={"dense_policy": "first"}, seed=3)
    assert config.sampling.dense_policy == "first" and config.seed == 3
    assert config.sampling.sparse_interval == 3  # untouched fields keep the preset value
    dotted = config.with_dotted({"prompts.ref_mask_mode": "raw", "llm.num_layers": 1})
    assert dotted.prompts.ref_mask_mode == "raw" and dotted.llm.num_layers == 1


def test_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"config\.llm: unknown key 'hidden'"):
        SamaConfig.from_dict({"llm": {"hidden": 3}})
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        SamaConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match=r"config\.sampling\.dense_policy: 'middle' is not one of"):
        SamaConfig.from_dict({"sampling": {"dense_policy": "middle"}})
    with pytest.raises(ConfigError, match=r"config\.llm\.num_layers: expected int"):
        SamaConfig.from_dict({"llm": {"num_layers": "two"}})
    with pytest.raises(ConfigError, match="unknown model preset 'sama-99b'"):
        SamaConfig.from_name("sama-99b")
    with pytest.raises(ConfigError, match="unknown config key 'visual'"):
        SamaConfig.from_name("sama-tiny", visual={})
    with pytest.raises(ConfigError, match="already registered"):
        register_preset("sama-tiny")(lambda: SamaConfig())


def test_from_json_bad_file(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        SamaConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read model config"):
        SamaConfig.from_json(path)
