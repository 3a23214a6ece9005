"""sama.model: the SAMA model (backbone, aggregator, visual prompts, grounding) and its processor.

Names are imported lazily so ``import sama.model`` stays cheap: ``create_model``, ``SamaModel``, ``SamaOutput``,
``SamaProcessor``, ``Mask``, ``Box``, ``Point``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_model": "sama.model.factory",
    "SamaModel": "sama.model.modeling",
    "SamaOutput": "sama.model.modeling",
    "GenerationResult": "sama.model.modeling",
    "TokenCountError": "sama.model.modeling",
    "SamaProcessor": "sama.model.processing",
    "Mask": "sama.model.prompts",
    "Box": "sama.model.prompts",
    "Point": "sama.model.prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sama.model' has no attribute {name!r}")
