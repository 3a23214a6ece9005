"""create_model: build a SamaModel from a registered preset name (``sama.config`` registry) plus overrides."""

from __future__ import annotations

from typing import Any

from sama.config import SamaConfig
from sama.model.modeling import SamaModel


def create_model(name: str | SamaConfig, *, tokenizer: Any | None = None, load_llm_weights: bool = True,
                 **overrides: Any) -> SamaModel:
    """``create_model("sama-tiny", sampling={"dense_policy": "first"})``; a ``SamaConfig`` is accepted as well."""
    config = name.replace(**overrides) if isinstance(name, SamaConfig) else SamaConfig.from_name(name, **overrides)
    return SamaModel(config, tokenizer=tokenizer, load_llm_weights=load_llm_weights)
