"""Building blocks shared by the synthetic (Table 6) and image (Tables 7, 8) networks."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


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


class PixelNorm(nn.Module):
    """x / sqrt(mean_j x_j^2 + eps) over the feature dimension, (N, d) -> (N, d): each row rescaled to
    unit root-mean-square (the input normalisation of StyleGAN's and ALAE's mapping networks)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


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


__all__ = ["mlp", "PixelNorm", "glorot_init_", "requires_grad", "count_parameters"]
