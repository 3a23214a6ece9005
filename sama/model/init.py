"""Weight initialisation for towers trained from scratch (no pretrained weights offline, e.g. ``sama-smol``)."""

from __future__ import annotations

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
