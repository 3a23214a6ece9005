"""SAMA: multi-turn referential grounded video chat (NeurIPS 2025, arXiv 2505.18812).

The package is layered the way data flows: ``sama.data`` (formats, masks, video, sampling, synthetic world)
→ ``sama.model`` (backbone, aggregator, prompts, grounding, session) → ``sama.train`` → ``sama.evaluate``
→ ``sama.serve`` (chat / predict / demo). Heavy modules are imported lazily so ``import sama`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from sama.model.modeling import SamaModel


def create_model(name: str, **overrides: Any) -> SamaModel:
    """Build a model from a preset name (``sama-tiny``, ``sama-smol``, ``sama-1b`` …); see ``sama.config``."""
    from sama.model.factory import create_model as _create

    return _create(name, **overrides)
