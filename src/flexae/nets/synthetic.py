"""Networks of the synthetic experiments (supplement Table 6).

Encoder x (128) -> FC128 -> ReLU -> FC m;  Decoder z -> FC128 -> Tanh (the 128 outputs are the data,
which lie in [-1, 1]);  Generator n (m') -> FC128 -> ReLU -> FC m;  Critic z -> FC128 -> ReLU ->
FC128 -> ReLU -> FC1.
"""

from __future__ import annotations

from torch import nn

from flexae.nets.common import mlp

HIDDEN = 128


def synthetic_encoder(data_dim: int, out_dim: int) -> nn.Module:
    """(B, data_dim) -> (B, out_dim); out_dim is m, or 2m for a Gaussian (VAE) encoder."""
    return mlp(data_dim, HIDDEN, 1, out_dim)


def synthetic_decoder(latent_dim: int, data_dim: int) -> nn.Module:
    """(B, m) -> (B, data_dim) in [-1, 1]: a single FC layer followed by tanh."""
    return nn.Sequential(nn.Linear(latent_dim, data_dim), nn.Tanh())


def synthetic_prior_generator(noise_dim: int, latent_dim: int) -> nn.Module:
    """(B, m') -> (B, m)."""
    return mlp(noise_dim, HIDDEN, 1, latent_dim)


def synthetic_latent_critic(latent_dim: int) -> nn.Module:
    """(B, m) -> (B, 1)."""
    return mlp(latent_dim, HIDDEN, 2, 1)
