"""Official SAMA/Sa2VA checkpoint conversion (sama.model.convert, `sama convert`) on sama-tiny.

No real weights can be downloaded here, so the official layout is produced two ways: by the inverse mapping applied to
a sama-tiny model, and — independently — by enumerating the official parameter names for the same tiny shapes from
the official module definitions (InternViT, InternLM2, LAVIS Q-Former, facebookresearch SAM2 as vendored by SAMA).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sama.cli import main
from sama.config import SamaConfig
from sama.errors import CheckpointError
from sama.model import convert as cv
from sama.model.modeling import SamaModel


@pytest.fixture(scope="module")
def source():
    """A sama-tiny model whose SAM2 is SAM2.0-consistent (one Fourier matrix, zero SAM2.1-only weights), as in an
    official checkpoint."""
    from sama.model.factory import create_model

    torch.manual_seed(3)
    model = create_model("sama-tiny").eval()
    sam2 = model.grounding.sam2
    with torch.no_grad():
        for param in model.parameters():  # no two same-shaped tensors equal (e.g. LayerNorm ones), so swaps show
            param.add_(torch.randn_like(param) * 0.02)
        sam2.shared_image_embedding.positional_embedding.copy_(sam2.prompt_encoder.shared_embedding.positional_embedding)
        sam2.occlusion_spatial_embedding_parameter.zero_()
        sam2.temporal_positional_encoding_projection_layer.weight.zero_()
        sam2.temporal_positional_encoding_projection_layer.bias.zero_()
    return model


@pytest.fixture(scope="module")
def official(source):
    return cv.to_official_state_dict(source.state_dict(), source.config)


def _write_official(folder, state, shards: int = 2, config: dict | None = None):
    """Write ``state`` as sharded safetensors with an HF index (as save_pretrained does)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous().clone() for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    (folder / cv.SAFETENSORS_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _outputs(model: SamaModel, sample, propagate: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """Training-forward loss and logits, and a short SAM2 memory propagation (exercises memory weights)."""
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(**model.processor.collate([model.processor(sample)]))
    seg = torch.linspace(-1, 1, model.config.llm.hidden_size).unsqueeze(0)
    masks = [m for _, m in model.grounding.propagate(sample.frames[:3], seg, [0], mode="memory")] if propagate else []
    return out.loss, out.logits, masks


@pytest.fixture(scope="module")
def source_outputs(source, module_sample):
    return _outputs(source, module_sample)


# -- independent official names ------------------------------------------------------------------------------------
def official_names(config: SamaConfig, llm_layout: str = "hf", vit_qkv_bias: bool = False) -> set[str]:
    """Official parameter names for ``config``'s shapes, written from the official module definitions.

    ``vit_qkv_bias``: the real InternViT-300M has ``qkv_bias=True``; our vision towers are built without it so far.
    """
    wb = ("weight", "bias")
    names: set[str] = set()

    def add(prefix: str, *suffixes: str) -> None:
        names.update(f"{prefix}{s}" for s in suffixes)

    # InternViT (hf/models/modeling_intern_vit.py).
    add("vision_model.embeddings.", "class_embedding", "position_embedding", "patch_embedding.weight",
        "patch_embedding.bias")
    for i in range(config.vision.num_layers):
        p = f"vision_model.encoder.layers.{i}."
        add(p, "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias", "ls1", "ls2",
            *(f"{m}.{s}" for m in ("norm1", "norm2", "mlp.fc1", "mlp.fc2") for s in wb),
            *(["attn.qkv.bias"] if vit_qkv_bias else []))
    add("mlp1.", *(f"{i}.{s}" for i in (0, 1, 3) for s in wb))
    if llm_layout == "internlm2":  # hf/models/modeling_internlm2.py (SAMA-8B), untied output head
        add("language_model.", "model.tok_embeddings.weight", "model.norm.weight", "output.weight")
        for i in range(config.llm.num_layers):
            add(f"language_model.model.layers.{i}.", "attention.wqkv.weight", "attention.wo.weight",
                "attention_norm.weight", "ffn_norm.weight", *(f"feed_forward.w{n}.weight" for n in (1, 2, 3)))
    else:  # transformers layout: Qwen2 (q/k/v biases) or Llama; tied embeddings → no lm_head
        add("language_model.model.", "embed_tokens.weight", "norm.weight")
        if not config.llm.tie_word_embeddings:
            add("language_model.", "lm_head.weight")
        for i in range(config.llm.num_layers):
            add(f"language_model.model.layers.{i}.", "input_layernorm.weight", "post_attention_layernorm.weight",
                *(f"self_attn.{n}_proj.weight" for n in "qkvo"),
                *(f"mlp.{n}_proj.weight" for n in ("gate", "up", "down")),
                *(f"self_attn.{n}_proj.bias" for n in ("qkv" if config.llm.kind == "qwen2" else "")))
    # LAVIS BertLMHeadModel Q-Formers (models/qformer.py) as the official model trims them.
    agg = config.aggregator
    for name, layers, freq, text in (("spatial", agg.spatial_num_layers, agg.spatial_cross_attention_freq, False),
                                     ("temporal", agg.temporal_num_layers, agg.temporal_cross_attention_freq, True)):
        q = f"{name}_Qformer.bert."
        add(q + "embeddings.", "LayerNorm.weight", "LayerNorm.bias")
        if text:
            add(q + "embeddings.", "word_embeddings.weight", "position_embeddings.weight")
        for i in range(layers):
            blocks = ["attention"] + (["crossattention"] if i % freq == 0 else [])
            for block in blocks:
                add(f"{q}encoder.layer.{i}.{block}.", *(f"self.{n}.{s}" for n in ("query", "key", "value") for s in wb),
                    *(f"output.{n}.{s}" for n in ("dense", "LayerNorm") for s in wb))
            ffns = [("intermediate_query", "output_query")] + ([("intermediate", "output")] if text else [])
            for inter, out in ffns:
                add(f"{q}encoder.layer.{i}.", *(f"{inter}.dense.{s}" for s in wb),
                    *(f"{out}.{n}.{s}" for n in ("dense", "LayerNorm") for s in wb))
        add(f"{name}_Qformer_", "query_tokens")
    # Aggregator / prompt heads (hf/models/modeling_sa2va_chat_all.py:180-208).
    for linear in ("vlm2spatial_Qformer_proj", "spatial_Qformer_ln", "Qformer_temp_attn_q", "Qformer_temp_attn_k",
                   "Qformer_temp_attn_v", "Qformer_temp_proj", "Qformer_final_proj", "Qformer_mask_pooling_proj",
                   "Qformer_mask_pooling_proj_st"):
        add(f"{linear}.", *wb)
    for mlp in ("Qformer_mask_proj", "Qformer_mask_proj_st"):
        add(f"{mlp}.layers.", *(f"{i}.{s}" for i in range(config.prompts.shape_mlp_layers) for s in wb))
    add("text_hidden_fcs.", *(f"{i}.{s}" for i in (0, 2) for s in wb))
    names |= _official_sam2_names(config)
    return names


def _official_sam2_names(config: SamaConfig) -> set[str]:
    """facebookresearch SAM2 names as vendored in SAMA's hf/models/sam2.py (SAM2.0: no no_obj_embed_spatial, no
    obj_ptr_tpos_proj; CXBlock gamma saved as g_weight)."""
    wb = ("weight", "bias")
    s = config.sam2
    o = cv.OFFICIAL_SAM2
    names: set[str] = set()

    def add(prefix: str, *suffixes: str) -> None:
        names.update(f"{o}{prefix}{x}" for x in suffixes)

    add("image_encoder.trunk.", "pos_embed", "pos_embed_window", "patch_embed.proj.weight", "patch_embed.proj.bias")
    block = 0
    for stage, count in enumerate(s.hiera_blocks_per_stage):
        for k in range(count):
            p = f"image_encoder.trunk.blocks.{block}."
            add(p, *(f"{m}.{x}" for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.layers.0", "mlp.layers.1")
                     for x in wb))
            if stage > 0 and k == 0:  # dim changes at the first block of a later stage
                add(p, "proj.weight", "proj.bias")
            block += 1
    add("image_encoder.neck.convs.", *(f"{i}.conv.{x}" for i in range(len(s.backbone_channel_list)) for x in wb))
    add("sam_prompt_encoder.", "pe_layer.positional_encoding_gaussian_matrix", "not_a_point_embed.weight",
        "no_mask_embed.weight", *(f"point_embeddings.{i}.weight" for i in range(4)),
        *(f"mask_downscaling.{i}.{x}" for i in (0, 1, 3, 4, 6) for x in wb))
    attn = ("q_proj", "k_proj", "v_proj", "out_proj")
    for i in range(s.mask_decoder_layers):
        p = f"sam_mask_decoder.transformer.layers.{i}."
        add(p, *(f"{a}.{n}.{x}" for a in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token")
                 for n in attn for x in wb),
            *(f"norm{n}.{x}" for n in range(1, 5) for x in wb), *(f"mlp.layers.{n}.{x}" for n in (0, 1) for x in wb))
    add("sam_mask_decoder.transformer.", *(f"final_attn_token_to_image.{n}.{x}" for n in attn for x in wb),
        "norm_final_attn.weight", "norm_final_attn.bias")
    add("sam_mask_decoder.", "iou_token.weight", "mask_tokens.weight", "obj_score_token.weight",
        *(f"{m}.{x}" for m in ("output_upscaling.0", "output_upscaling.1", "output_upscaling.3", "conv_s0", "conv_s1")
          for x in wb),
        *(f"output_hypernetworks_mlps.{h}.layers.{n}.{x}" for h in range(4) for n in range(3) for x in wb),
        *(f"{head}.layers.{n}.{x}" for head in ("iou_prediction_head", "pred_obj_score_head") for n in range(3)
          for x in wb))
    for i in range(s.memory_attention_layers):
        add(f"memory_attention.layers.{i}.", *(f"{a}.{n}.{x}" for a in ("self_attn", "cross_attn_image")
                                                for n in attn for x in wb),
            *(f"{m}.{x}" for m in ("linear1", "linear2", "norm1", "norm2", "norm3") for x in wb))
    add("memory_attention.", "norm.weight", "norm.bias")
    add("memory_encoder.mask_downsampler.encoder.", *(f"{i}.{x}" for i in (0, 1, 3, 4, 6, 7, 9, 10, 12) for x in wb))
    add("memory_encoder.", *(f"{m}.{x}" for m in ("pix_feat_proj", "out_proj") for x in wb))
    for i in range(2):  # SAM2 memory fuser: 2 CXBlocks
        add(f"memory_encoder.fuser.layers.{i}.", "g_weight",
            *(f"{m}.{x}" for m in ("dwconv", "norm", "pwconv1", "pwconv2") for x in wb))
    add("", "maskmem_tpos_enc", "no_mem_embed", "no_mem_pos_enc", "no_obj_ptr", "mask_downsample.weight",
        "mask_downsample.bias", *(f"obj_ptr_proj.layers.{n}.{x}" for n in range(3) for x in wb))
    return names


def _assert_same_names(got: set[str], expected: set[str]) -> None:
    assert got == expected, {"only from inverse": sorted(got - expected)[:10],
                             "only from official modules": sorted(expected - got)[:10]}


def test_official_names_written_from_the_official_modules_match_the_inverse_mapping(source, official) -> None:
    _assert_same_names(set(official), official_names(source.config))


def _mapped(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state without the new-token rows' own parameter (a copy of embedding rows, read from it at load)."""
    assert cv.NEW_TOKEN_ROWS in state
    return {k: v for k, v in state.items() if k != cv.NEW_TOKEN_ROWS}


@pytest.mark.parametrize(("preset", "layout"), [("sama-1b", "hf"), ("sama-8b", "internlm2")])
def test_paper_size_presets_map_every_official_name(preset: str, layout: str) -> None:
    """Full-size shapes on the meta device (no memory): names both ways, and the official layout converts back."""
    from sama.model.factory import create_model

    with torch.device("meta"):
        model = create_model(preset, load_llm_weights=False)
    ours = _mapped(model.state_dict())
    official = cv.to_official_state_dict(ours, model.config)
    vit_bias = any(k.endswith("attention.q_proj.bias") for k in ours if k.startswith(cv.VISION))
    _assert_same_names(set(official), official_names(model.config, layout, vit_qkv_bias=vit_bias))
    converted, report = cv.convert_with_report(official, model.config, ours)
    assert report.llm_layout == layout and set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)


def test_round_trip_is_exact_and_reports_fills(source, official) -> None:
    ours = _mapped(source.state_dict())
    converted, report = cv.convert_with_report(official, source.config, ours)
    assert set(converted) == set(ours)
    assert all(torch.equal(converted[k], ours[k]) for k in ours)
    assert set(report.filled) == {*cv.SAM2_0_NEUTRAL_FILLS, cv.LM_HEAD + "weight"}
    assert report.llm_layout == "hf" and not report.dropped and not report.adapted


def test_loaded_checkpoint_gives_identical_outputs(tmp_path, official, source_outputs, sample) -> None:
    state = {**official, "temporal_Qformer.bert.embeddings.position_ids": torch.arange(512)[None]}
    folder = _write_official(tmp_path / "official", state, shards=3, config={"llm_config": {"vocab_size": 49160}})
    reports: list[cv.ConversionReport] = []
    loaded = cv.load_official_checkpoint(folder, "sama-tiny", on_report=reports.append)
    assert "temporal_Qformer.bert.embeddings.position_ids" in reports[0].dropped
    ref_loss, ref_logits, ref_masks = source_outputs
    loss, logits, masks = _outputs(loaded, sample)
    assert torch.equal(loss, ref_loss) and torch.equal(logits, ref_logits)
    assert len(masks) == len(ref_masks) and all(np.array_equal(a, b) for a, b in zip(masks, ref_masks))


def test_cli_convert_writes_a_strictly_loadable_checkpoint(tmp_path, source, official, source_outputs, sample,
                                                          capsys) -> None:
    folder = _write_official(tmp_path / "official", official, shards=1)
    source.tokenizer.save_pretrained(str(folder))  # an official folder ships its tokenizer
    out = tmp_path / "ours"
    assert main(["convert", str(folder), "--preset", "sama-tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "filled grounding.sam2.occlusion_spatial_embedding_parameter" in printed and "tokenizer: official" in printed
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()
    reloaded = SamaModel.from_pretrained(out)
    assert torch.equal(_outputs(reloaded, sample, propagate=False)[1], source_outputs[1])


def test_internlm2_layout_split_matches_the_official_fused_attention(source) -> None:
    """SAMA-8B: the fused wqkv is split as the official InternLM2 attention reads it (rows per KV head:
    [q × groups, k, v]); checked against that reading computed independently."""
    heads, kv_heads, head_dim, width = 8, 2, 3, 5
    groups = heads // kv_heads
    wqkv = torch.randn(kv_heads * (groups + 2) * head_dim, width)
    x = torch.randn(7, width)
    fused = (x @ wqkv.T).reshape(7, kv_heads, groups + 2, head_dim)  # official: '(h gs d)' with gs = groups + 2
    q, k, v = cv.split_internlm2_wqkv(wqkv, heads, kv_heads)
    assert torch.allclose(x @ q.T, fused[:, :, :groups].reshape(7, -1), atol=1e-6)
    assert torch.allclose(x @ k.T, fused[:, :, -2].reshape(7, -1), atol=1e-6)
    assert torch.allclose(x @ v.T, fused[:, :, -1].reshape(7, -1), atol=1e-6)
    assert torch.equal(cv.fuse_internlm2_wqkv(q, k, v, kv_heads), wqkv)
    ours = _mapped(source.state_dict())
    official = cv.to_official_state_dict(ours, source.config, llm_layout="internlm2")
    assert "language_model.model.tok_embeddings.weight" in official
    assert "language_model.model.layers.0.feed_forward.w2.weight" in official
    converted, report = cv.convert_with_report(official, source.config, ours)
    assert report.llm_layout == "internlm2" and all(torch.equal(converted[k], ours[k]) for k in ours)


def test_vit_qkv_is_split_in_thirds(source, official) -> None:
    ours = source.state_dict()
    fused = official["vision_model.encoder.layers.0.attn.qkv.weight"]
    dim = source.config.vision.hidden_size
    assert fused.shape[0] == 3 * dim
    assert torch.equal(fused[dim : 2 * dim], ours[cv.VISION + "encoder.layer.0.attention.k_proj.weight"])


# -- errors ----------------------------------------------------------------------------------------------------------
def test_unknown_official_key_is_named(source, official) -> None:
    with pytest.raises(CheckpointError, match=r"1 official keys have no mapping.*mystery_head\.weight"):
        cv.convert_official_state_dict({**official, "mystery_head.weight": torch.zeros(2)}, source.config)


def test_missing_official_key_names_the_unfilled_model_key(source, official) -> None:
    state = dict(official)
    del state["Qformer_temp_proj.weight"]
    with pytest.raises(CheckpointError, match=r"1 model keys not filled.*aggregator\.inject_out\.weight"):
        cv.convert_official_state_dict(state, source.config, source.state_dict())


def test_shape_mismatch_and_qkv_bias_hint(source, official) -> None:
    dim = source.config.vision.hidden_size
    state = {**official, "vision_model.encoder.layers.0.attn.qkv.bias": torch.zeros(3 * dim),
             "mlp1.1.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError) as info:
        cv.convert_official_state_dict(state, source.config, source.state_dict())
    message = str(info.value)
    assert "3 converted keys the model does not have" in message and "attention_bias" in message
    assert "linear_1.bias (converted [3] vs model [64])" in message


def test_larger_official_qformer_vocabulary_is_trimmed_and_reported(source, official) -> None:
    word = "temporal_Qformer.bert.embeddings.word_embeddings.weight"
    rows = cv.BERT_BASE_VOCAB + len(cv.OFFICIAL_TEMPORAL_ADDED_TOKENS)
    assert rows == 30530  # modeling_sa2va_chat_all.py init_temporal_tokenizer: 30522 + [DEC] + 7 special tokens
    extra = torch.randn(rows - official[word].shape[0], official[word].shape[1])
    ours = source.state_dict()
    converted, report = cv.convert_with_report({**official, word: torch.cat([official[word], extra])},
                                               source.config, ours)
    key = "aggregator.temporal_qformer.embeddings.word_embeddings.weight"
    assert torch.equal(converted[key], ours[key]) and "30530 rows" in report.adapted[key]


def test_inverse_refuses_to_lose_sam2_1_weights(source) -> None:
    state = dict(source.state_dict())
    state[cv.SAM2 + "occlusion_spatial_embedding_parameter"] = torch.ones_like(
        state[cv.SAM2 + "occlusion_spatial_embedding_parameter"])
    with pytest.raises(CheckpointError, match=r"SAM2\.1-only weights are non-zero"):
        cv.to_official_state_dict(state, source.config)


def test_pickle_shards_need_opt_in(tmp_path, official) -> None:
    folder = tmp_path / "pickle"
    folder.mkdir()
    small = {k: official[k] for k in list(official)[:3]}
    torch.save(small, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refusing to read a pickle checkpoint"):
        cv.read_official_state_dict(folder)
    loaded = cv.read_official_state_dict(folder, allow_pickle=True)
    assert all(torch.equal(loaded[k], small[k]) for k in small)


def test_missing_folder_shards_and_index_entries_are_reported(tmp_path, official) -> None:
    with pytest.raises(CheckpointError, match="official checkpoint not found"):
        cv.read_official_state_dict(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors shards"):
        cv.read_official_state_dict(empty)
    folder = _write_official(tmp_path / "broken", {k: official[k] for k in list(official)[:4]}, shards=2)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shards listed in the index are missing"):
        cv.read_official_state_dict(folder)


def test_cli_reports_unknown_preset(tmp_path, capsys) -> None:
    assert main(["convert", str(tmp_path), "--preset", "sama-nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model preset 'sama-nope'" in capsys.readouterr().err


# -- semantics of same-shaped renames (a swap would survive a round trip; these catch it) ----------------------------
def test_internvit_layer_names_mean_what_the_official_layer_computes(source, official) -> None:
    """Official InternViT layer (modeling_intern_vit.py): x + ls1·proj(attn(norm1 x)); x + ls2·fc2(gelu(fc1(norm2 x)))
    computed from the official-named weights equals our converted vision layer."""
    import torch.nn.functional as F

    cfg = source.config.vision
    w = {k.removeprefix("vision_model.encoder.layers.0."): v for k, v in official.items()
         if k.startswith("vision_model.encoder.layers.0.")}
    dim, heads = cfg.hidden_size, cfg.num_heads
    x = torch.randn(2, 5, dim)
    h = F.layer_norm(x, (dim,), w["norm1.weight"], w["norm1.bias"], eps=1e-6)
    qkv = (h @ w["attn.qkv.weight"].T).reshape(2, 5, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = ((q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    a = (attn @ v).transpose(1, 2).reshape(2, 5, dim) @ w["attn.proj.weight"].T + w["attn.proj.bias"]
    x1 = x + a * w["ls1"]
    h = F.layer_norm(x1, (dim,), w["norm2.weight"], w["norm2.bias"], eps=1e-6)
    m = F.gelu(h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]) @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    expected = x1 + m * w["ls2"]
    layer = source.backbone.vision_tower.encoder.layer[0].eval()
    with torch.no_grad():
        got = layer(x)
    got = got[0] if isinstance(got, tuple) else got
    assert torch.allclose(got, expected, atol=1e-5)


def test_internlm2_mlp_names_mean_what_the_official_mlp_computes(source) -> None:
    """Official InternLM2MLP: w2(silu(w1 x) · w3 x) (modeling_internlm2.py) equals our converted Llama MLP."""
    import torch.nn.functional as F

    official = cv.to_official_state_dict(source.state_dict(), source.config, llm_layout="internlm2")
    p = "language_model.model.layers.0.feed_forward."
    x = torch.randn(3, source.config.llm.hidden_size)
    expected = (F.silu(x @ official[p + "w1.weight"].T) * (x @ official[p + "w3.weight"].T)) @ official[p + "w2.weight"].T
    with torch.no_grad():
        got = source.backbone.language_model.layers[0].mlp(x)
    assert torch.allclose(got, expected, atol=1e-5)
