"""Weight initialisation for towers trained from scratch (no pretrained weights offline, e.g. ``sama-smol``), and
per-submodule random streams so one submodule's init does not depend on another's shape."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

DEFAULT_INIT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def pytorch_default_init(module: nn.Module) -> None:
    """Re-draw every linear / convolution layer of ``module`` with PyTorch's default (Kaiming-uniform) init.

    transformers draws them from N(0, 0.02) (``initializer_range``), an init meant to be overwritten by pretrained
    weights; the original SAM2 and InternViT code keep PyTorch's default. Loading a checkpoint overwrites it all.
    """
    for layer in module.modules():
        if isinstance(layer, DEFAULT_INIT_LAYERS):
            layer.reset_parameters()


def module_seed(base: int, name: str) -> int:
    """A seed for the submodule ``name`` derived from ``base`` alone (CRC-32 of the name, so stable across runs)."""
    return (int(base) + zlib.crc32(name.encode("utf-8"))) % 2**63


@contextmanager
def module_rng(name: str) -> Iterator[None]:
    """Draw a submodule's random init from its own seed, ``module_seed(torch.initial_seed(), name)``.

    The global CPU generator is restored afterwards, so one submodule's shape (e.g. a wider vision patch embedding)
    changes neither another submodule's init nor the random stream the caller continues with. Under
    ``torch.manual_seed(s)`` every submodule's init is a function of ``s`` and its name only.
    """
    seed = module_seed(torch.initial_seed(), name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
