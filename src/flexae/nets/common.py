"""Building blocks shared by the synthetic (Table 6) and image (Tables 7, 8) networks."""

from __future__ import annotations

from typing import Callable

from torch import nn


def mlp(in_dim: int, hidden: int, depth: int, out_dim: int,
        activation: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """`depth` x [Linear(hidden) -> activation], then a linear output layer of size out_dim."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def glorot_init_(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear/Conv layer (the authors' TF default)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(flag)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["mlp", "glorot_init_", "requires_grad", "count_parameters"]
