"""Latent priors: the learned prior of FlexAE (a generator G_psi fed Gaussian noise) and the fixed
priors of the baselines. Every prior is an nn.Module with `sample(n) -> (n, m)` on its own device.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPrior(nn.Module):
    """P_psi: z_hat = G_psi(n), n ~ N(0, I_m'). Its parameters are trained by L_Gen."""

    learnable = True

    def __init__(self, generator: nn.Module, noise_dim: int):
        super().__init__()
        self.generator = generator
        self.noise_dim = noise_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, device=self._anchor.device, generator=generator)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(noise)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(self.noise(n, generator))


class StandardNormalPrior(nn.Module):
    """The fixed prior N(0, I_m) of WAE and VAE."""

    learnable = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self._anchor.device, generator=generator)


class GaussianMixturePrior(nn.Module):
    """A fixed, equally weighted mixture of isotropic Gaussians (WAE-GMM).

    The paper does not give the mixture; we place K means evenly on a circle of radius r in the
    first two latent coordinates (zeros elsewhere), each with standard deviation `std`.
    """

    learnable = False

    def __init__(self, latent_dim: int, components: int = 6, radius: float = 4.0, std: float = 1.0):
        super().__init__()
        angles = torch.arange(components, dtype=torch.float32) * (2 * math.pi / components)
        means = torch.zeros(components, latent_dim)
        means[:, 0] = radius * torch.cos(angles)
        if latent_dim > 1:
            means[:, 1] = radius * torch.sin(angles)
        self.register_buffer("means", means)  # (K, m)
        self.std = std

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.randint(0, self.means.shape[0], (n,), device=self.means.device, generator=generator)
        noise = torch.randn(n, self.means.shape[1], device=self.means.device, generator=generator)
        return self.means[k] + self.std * noise
