"""End-to-end SamaModel tests on sama-tiny: loss, freeze policy, learning, slot-count errors, meta-device sizes."""

from __future__ import annotations

import itertools

import pytest
import torch

from sama.config import SamaConfig
from sama.errors import DataError
from sama.model.modeling import SamaModel, TokenCountError


def _loss(model, samples):
    model.train()  # the shared fixture may have been put in eval mode by a chat session
    batch = model.processor.collate([model.processor(s) for s in samples])
    return model(**batch)


def test_forward_returns_weighted_loss(tiny_model, sample, sample_factory) -> None:
    torch.manual_seed(1)
    out = _loss(tiny_model, [sample, sample_factory(num_frames=9, seed=3)])
    assert torch.isfinite(out.loss)
    w = tiny_model.config.loss
    expected = w.ce_weight * out.ce_loss + w.bce_weight * out.bce_loss + w.dice_weight * out.dice_loss
    assert torch.allclose(out.loss.detach(), expected)
    assert out.bce_loss > 0 and out.dice_loss > 0 and out.ce_loss > 0
    n_dense = tiny_model.config.sampling.num_dense
    assert out.seg_logits[0].shape[:2] == (1, n_dense)


def test_gradients_reach_exactly_the_trainable_parts(tiny_model, sample) -> None:
    tiny_model.zero_grad(set_to_none=True)
    _loss(tiny_model, [sample]).loss.backward()
    grads = {n: p.grad for n, p in tiny_model.named_parameters()}
    trainable = set(tiny_model.trainable_parameter_names())
    for name, grad in grads.items():
        if name not in trainable:
            assert grad is None, f"frozen parameter {name} got a gradient"
    for prefix in ("backbone.vlm.model.multi_modal_projector.", "aggregator.inject_q.", "aggregator.spatial_qformer.",
                   "aggregator.region_pool_proj.", "aggregator.region_shape_mlp.", "prompt_encoder.pool_proj.",
                   "prompt_encoder.shape_mlp.", "grounding.seg_proj.", "grounding.sam2.mask_decoder."):
        hit = [n for n in trainable if n.startswith(prefix) and grads[n] is not None and grads[n].abs().sum() > 0]
        assert hit, f"no gradient reached {prefix}"
    assert not any(n.startswith(("backbone.vlm.model.vision_tower.", "grounding.sam2.vision_encoder."))
                   for n in trainable)
    assert not any(n.startswith("backbone.vlm.model.language_model.layers.") for n in trainable)
    # the frozen embedding gets no gradient (the loop above); its new-token rows train as their own parameter
    assert "backbone.vlm.model.language_model.embed_tokens.weight" not in trainable
    assert grads["backbone.new_token_rows"].abs().sum() > 0
    assert tiny_model.no_decay_parameter_names() == ["backbone.new_token_rows"]
    tiny_model.zero_grad(set_to_none=True)


def test_a_few_steps_reduce_the_loss(sample) -> None:
    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-tiny"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    losses, ce = [], []
    for _ in range(8):
        torch.manual_seed(123)  # same random point draws every step
        out = _loss(model, [sample])
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
        ce.append(float(out.ce_loss))
    # The frozen LLM's CE dominates and falls steadily; the Dice term on uncertainty-sampled points is noisy.
    assert all(b < a for a, b in itertools.pairwise(ce)), ce
    assert losses[-1] < losses[0] - 0.2, losses


def test_slot_count_mismatch_raises(tiny_model, sample) -> None:
    processed = tiny_model.processor(sample)
    batch = tiny_model.processor.collate([processed])
    ids = batch["input_ids"]
    slot = int((ids[0] == tiny_model.img_context_id).nonzero()[0])
    ids[0, slot] = tiny_model.seg_token_id  # one slot fewer than embeddings
    with pytest.raises(TokenCountError, match=r"sample 0: \d+ <IMG_CONTEXT> slots in the token ids but \d+ visual"):
        tiny_model(**batch)


def test_seg_count_mismatch_raises(tiny_model, sample) -> None:
    batch = tiny_model.processor.collate([tiny_model.processor(sample)])
    batch["seg_masks"] = [torch.cat([batch["seg_masks"][0]] * 2)]
    with pytest.raises(DataError, match=r"1 \[SEG\] tokens but 2 ground-truth masks"):
        tiny_model(**batch)


def test_generate_returns_text_and_seg_states(tiny_model, sample) -> None:
    prompt = tiny_model.processor.build_prompt(sample.frames, [("What is <mask> doing?", None)],
                                               [[sample.turns[0].ref_masks[0]]])
    result = tiny_model.generate(prompt, max_new_tokens=4)
    assert isinstance(result.text, str) and 1 <= len(result.token_ids) <= 4
    assert result.seg_hidden.ndim == 2 and result.seg_hidden.shape[1] == tiny_model.config.llm.hidden_size


# Parameter counts of the paper presets, built on the meta device. Derivation of the components:
#   InternViT-300M-448px 304,012,288 (24 × 1024-d layers with qkv bias, 1025 positions, patch 14, layer scale);
#   LLM = Qwen2.5-0.5B 494,032,768 / Qwen2.5-3B 3,085,938,688 (public counts, vocab 151936, tied) minus the
#   (151936 − 151674) unused rows × C of InternVL2.5's vocabulary; InternLM2.5-7B 7,737,708,544 (vocab 92544, untied)
#   plus 9 InternVL rows × 4096 × 2; SAM2 Hiera-L 224,446,642 (transformers Sam2VideoModel, ≈ the 224.4M of
#   sam2_hiera_large); the aggregator/prompt/[SEG] heads follow from their layer shapes (checked by _llm_params).
PAPER_SIZES = {"sama-1b": 1_221_193_906, "sama-4b": 3_843_627_826, "sama-8b": 8_590_138_162}


def _llm_params(c, vocab: int, tied: bool) -> int:
    head_dim = c.hidden_size // c.num_heads
    attn = c.hidden_size * c.num_heads * head_dim * 2 + c.hidden_size * c.num_kv_heads * head_dim * 2
    bias = (c.num_heads + 2 * c.num_kv_heads) * head_dim if c.kind == "qwen2" else 0
    mlp = 3 * c.hidden_size * c.intermediate_size
    layer = attn + bias + mlp + 2 * c.hidden_size
    return vocab * c.hidden_size * (1 if tied else 2) + c.num_layers * layer + c.hidden_size


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_presets_on_meta_device(name: str) -> None:
    config = SamaConfig.from_name(name)
    with torch.device("meta"):
        model = SamaModel(config)
    # backbone.new_token_rows is a trainable copy of embedding rows (SamaBackbone.enable_new_token_rows)
    count = sum(p.numel() for n, p in model.named_parameters() if n != "backbone.new_token_rows")
    assert count == PAPER_SIZES[name]
    vit = sum(p.numel() for p in model.backbone.vision_tower.parameters())
    assert vit == 304_012_288
    llm = sum(p.numel() for p in model.backbone.language_model.parameters())
    vocab = model.backbone.vlm.lm_head.weight.shape[0]
    tied = config.llm.tie_word_embeddings
    head = 0 if tied else model.backbone.vlm.lm_head.weight.numel()
    assert llm + head == _llm_params(config.llm, vocab, tied)
    assert sum(p.numel() for p in model.grounding.sam2.parameters()) == 224_446_642


def test_save_load_round_trip_gives_identical_outputs(tiny_model, sample, tmp_path) -> None:
    tiny_model.eval()
    batch = tiny_model.processor.collate([tiny_model.processor(sample)])
    with torch.no_grad():
        torch.manual_seed(5)
        before = tiny_model(**batch)
    tiny_model.save_pretrained(tmp_path / "ckpt")
    loaded = SamaModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        torch.manual_seed(5)
        after = loaded(**batch)
    tiny_model.train()
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.loss, after.loss)


@pytest.mark.parametrize("tied", [True, False])
def test_new_token_rows_train_as_rows_of_the_full_matrices(sample, tied: bool) -> None:
    """Reference: the form before ``new_token_rows`` (the full embedding / head trainable, the rows written into
    them, no hooks) gives the same loss and the same gradient on the new-token rows."""
    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-tiny", llm={"tie_word_embeddings": tied}))
    backbone = model.backbone
    rows = backbone.new_token_rows
    assert rows.shape == (1 if tied else 2, len(backbone.new_token_ids), model.config.llm.hidden_size)
    with torch.no_grad():
        rows.add_(torch.randn_like(rows))  # "trained" rows, unlike the copies in the full matrices
    torch.manual_seed(1)
    loss = _loss(model, [sample]).loss
    loss.backward()
    for handle in backbone._row_hooks:
        handle.remove()
    backbone.sync_new_token_rows()
    matrices = backbone.new_token_row_parameters()
    assert len(matrices) == rows.shape[0]
    for matrix in matrices:
        matrix.requires_grad_(True)
    torch.manual_seed(1)
    reference = _loss(model, [sample]).loss
    reference.backward()
    torch.testing.assert_close(loss, reference)
    for matrix, grad in zip(matrices, rows.grad):
        torch.testing.assert_close(grad, matrix.grad[backbone.new_token_ids])


def test_compact_embeddings_keep_only_new_token_rows() -> None:
    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-tiny"))
    backbone, embed_key = model.backbone, "backbone.vlm.model.language_model.embed_tokens.weight"
    backbone.compact_embeddings = True
    try:
        state = model.state_dict()
        rows = state["backbone.new_token_rows"].clone()
        assert rows.shape == (1, len(backbone.new_token_ids), model.config.llm.hidden_size)  # tied: one matrix
        assert not any(k.endswith(("embed_tokens.weight", "lm_head.weight")) for k in state)
        base = backbone.input_embeddings().weight.detach().clone()
        with torch.no_grad():
            backbone.new_token_rows.zero_()
        result = model.load_state_dict({"backbone.new_token_rows": rows}, strict=False)
        assert not any(k.endswith(("embed_tokens.weight", "lm_head.weight")) for k in result.missing_keys)
        assert torch.equal(backbone.new_token_rows, rows) and torch.equal(backbone.input_embeddings().weight, base)
    finally:
        backbone.compact_embeddings = False
    full = model.state_dict()  # real parameter names (DCP, optimisers); the matrices hold the trained rows
    assert torch.equal(full[embed_key][backbone.new_token_ids], rows[0])
    # a full-matrix state without the rows' parameter (an official or older checkpoint): rows read from the matrix
    del full["backbone.new_token_rows"]
    full[embed_key] = full[embed_key].clone()
    full[embed_key][backbone.new_token_ids] += 1.0
    model.load_state_dict(full, strict=True)
    assert torch.equal(backbone.new_token_rows[0], full[embed_key][backbone.new_token_ids])


@pytest.mark.slow
def test_sama_smol_checkpoint_saves_only_what_is_not_the_packaged_base(tmp_path, sample) -> None:
    from sama.model.checkpoint import WEIGHTS_FILE

    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-smol")).eval()
    with torch.no_grad():
        model.backbone.new_token_rows[0, model.backbone.new_token_ids.index(model.seg_token_id)] += 1.0  # trained
        assert model.config.lora.enabled  # the preset trains LoRA adapters: they must be saved, the base not
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param += 0.01  # "trained" adapters (lora_B starts at zero)
    batch = model.processor.collate([model.processor(sample)])
    with torch.no_grad():
        torch.manual_seed(5)
        before = model(**batch)
    assert "backbone.vlm.model.language_model.embed_tokens.weight" in model.state_dict()  # compact only in the file
    model.save_pretrained(tmp_path / "smol")
    size = (tmp_path / "smol" / WEIGHTS_FILE).stat().st_size
    llm_bytes = 4 * sum(p.numel() for p in model.backbone.language_model.parameters())
    assert size < llm_bytes / 4  # the 135M-parameter base LLM is not in the file
    loaded = SamaModel.from_pretrained(tmp_path / "smol").eval()
    with torch.no_grad():
        torch.manual_seed(5)
        after = loaded(**batch)
    assert torch.equal(before.logits, after.logits)


def test_phrase_embeddings_follow_the_phrase_before_each_seg(tiny_model) -> None:
    tok, ids = tiny_model.tokenizer, tiny_model.backbone.token_ids
    text = "Sure, <p> the red circle </p> [SEG] and [SEG], then <p> a blue square </p> [SEG]."
    token_ids = tok.encode(text, add_special_tokens=False)
    assert token_ids.count(ids["[SEG]"]) == 3
    rows = tiny_model.phrase_embeddings(torch.tensor(token_ids))
    weight = tiny_model.backbone.input_embeddings().weight

    def words(phrase: str) -> torch.Tensor:
        start = token_ids.index(ids["<p>"], token_ids.index(ids["<p>"]) + 1) if phrase == "second" else \
            token_ids.index(ids["<p>"])
        end = token_ids.index(ids["</p>"], start)
        return weight[token_ids[start + 1 : end]].mean(0)

    torch.testing.assert_close(rows[0], words("first"))
    assert rows[1].abs().sum() == 0  # a [SEG] with no phrase of its own
    torch.testing.assert_close(rows[2], words("second"))
    assert tiny_model.phrase_embeddings([]).shape == (0, weight.shape[1])


def test_phrase_input_reaches_the_sam2_prompt(sample) -> None:
    config = SamaConfig.from_name("sama-tiny")
    config.sam2.seg_phrase_input = True
    torch.manual_seed(0)
    model = SamaModel(config)
    assert SamaConfig.from_name("sama-1b").sam2.seg_phrase_input is False  # SAMA.md §1.1: the [SEG] state alone
    assert SamaConfig.from_name("sama-smol").sam2.seg_phrase_input is True
    assert model.grounding.input_size == 2 * config.llm.hidden_size
    model.zero_grad(set_to_none=True)
    _loss(model, [sample]).loss.backward()
    assert model.grounding.phrase_proj.weight.grad.abs().sum() > 0
    assert model.grounding.seg_proj[2].weight.grad.abs().sum() > 0  # the zero-started state path learns
    assert "grounding.phrase_proj.weight" in model.trainable_parameter_names()
    # two phrases give two different prompts even when the LLM states are identical
    states = torch.zeros(2, config.llm.hidden_size)
    red, blue = (model.tokenizer.encode(f"<p> the {c} box </p> [SEG]", add_special_tokens=False) for c in ("red", "blue"))
    prompts = model.grounding.project(torch.cat([model.grounding_inputs(red, states[:1]),
                                                 model.grounding_inputs(blue, states[1:])]))
    assert not torch.allclose(prompts[0], prompts[1])
    # the state path starts at zero: a fresh model's prompt is the phrase path's alone, whatever the LLM state
    fresh = SamaModel(config).grounding
    noisy = torch.randn(1, config.llm.hidden_size)
    inputs = model.grounding_inputs(red, noisy)
    torch.testing.assert_close(fresh.project(inputs), fresh.phrase_proj(inputs[:, config.llm.hidden_size :]))
    with pytest.raises(DataError, match="grounding inputs"):
        model.grounding.project(states)  # the state alone is not enough for this config
    with pytest.raises(DataError, match="2 \\[SEG\\] states but 1"):
        model.grounding_inputs(red, torch.zeros(2, config.llm.hidden_size))


def test_motion_input_with_crop_trains_end_to_end(sample) -> None:
    """vision.motion_input with prompts.crop_size: the crop covers all six input channels (RGB and frame difference)."""
    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-tiny", vision={"motion_input": True}, prompts={"crop_size": 4}))
    assert model.prompt_encoder.crop_mlp.layers[0].in_features == 6 * 4 * 4
    out = _loss(model, [sample])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.prompt_encoder.crop_mlp.layers[0].weight.grad.abs().sum() > 0


def test_motion_input_starts_as_the_rgb_model() -> None:
    """The 3 extra patch-embedding channels start at zero: at step 0 the model is the RGB model, tensor for tensor
    (SAM2's init included), and the frame difference changes nothing until training gives it weight."""
    torch.manual_seed(0)
    rgb = SamaModel(SamaConfig.from_name("sama-tiny")).state_dict()
    torch.manual_seed(0)
    model = SamaModel(SamaConfig.from_name("sama-tiny", vision={"motion_input": True}))
    wide = model.state_dict()
    patch = "backbone.vlm.model.vision_tower.embeddings.patch_embeddings.projection."
    assert rgb.keys() == wide.keys()
    assert [k for k in rgb if not torch.equal(rgb[k], wide[k])] == [patch + "weight"]
    assert wide[patch + "weight"].shape[1] == 6
    assert torch.equal(wide[patch + "weight"][:, :3], rgb[patch + "weight"])
    assert not wide[patch + "weight"][:, 3:].any()
    assert model.backbone.vlm.config.vision_config.num_channels == 6
