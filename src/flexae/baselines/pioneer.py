"""Pioneer networks (Heljakka, Solin, Kannala, ACCV 2018) at a fixed resolution, on the paper's
networks: AGE's adversarial encoder-decoder game (Ulyanov, Vedaldi, Lempitsky, CVPR 2018) with
codes and prior samples on the unit sphere.

Per iteration, as the original's `train.py`: one encoder update on
  w_real KL(e(x)) + w_x |g(e(x)) - x|_1 - w_fake KL(e(g(z)))
(the encoder pulls real codes to N(0, I) and pushes codes of generated images away), then
`pioneer_generator_steps` decoder updates on
  w_fake KL(e(g(z))) + w_z cos-mismatch(e(g(z)), z),
KL being AGE's estimate from the batch's per-dimension Gaussian fit. z is uniform on the unit
sphere, e(x) is projected on it. Generation: g(z); reconstruction: g(e(x)). The progressive
growing is left out (docs/baselines.md says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder
from flexae.ranges import BETA, LR, WEIGHT, Range, ranged


@dataclass
class PioneerOptions:
    """pioneer's settings (model.options)."""
    pioneer_generator_steps: int = ranged(2, Range(1, 1000))  # pioneer: decoder updates per encoder update (their n_generator).
    pioneer_real_kl_weight: float = ranged(0.1, WEIGHT)       # pioneer: weight of KL(e(x)) in the encoder loss (their real_x_KL_scale).
    pioneer_fake_kl_weight: float = ranged(0.1, WEIGHT)       # pioneer: weight of KL(e(g(z))), maximised by e, minimised by g (fake_*_KL_scale).
    pioneer_image_weight: float = ranged(1.5, WEIGHT)         # pioneer: weight of the mean L1 |g(e(x)) - x| (match_x 1 x 1.5 when stable).
    pioneer_code_weight: float = ranged(100.0, WEIGHT)        # pioneer: weight of the cosine code loss of e(g(z)) to z (their match_z).
    pioneer_lr: float = ranged(0.001, LR)                     # pioneer: Adam learning rate of encoder and decoder (their --lr).
    pioneer_beta1: float = ranged(0.0, BETA)                  # pioneer: Adam beta1 (theirs: 0.0).
    pioneer_beta2: float = ranged(0.99, BETA)                 # pioneer: Adam beta2 (theirs: 0.99).


def on_sphere(v: Tensor) -> Tensor:
    """Rows of v (B, m) divided by their Euclidean norm (the original's `utils.normalize`)."""
    return v / v.norm(dim=1, keepdim=True)


class SpherePrior(nn.Module):
    """The uniform distribution on the unit sphere of R^m: normalised N(0, I_m) draws (AGE, Pioneer)."""

    trained_by_gen = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return on_sphere(torch.randn(n, self.latent_dim, device=self._anchor.device, generator=generator))


class Pioneer(AutoEncoder):
    """Encoder e with its codes on the unit sphere, decoder g, prior uniform on the sphere."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int):
        super().__init__(encoder, decoder, SpherePrior(latent_dim))

    def encode(self, x: Tensor) -> Tensor:
        return on_sphere(self.encoder(x))


def build_pioneer(cfg: ModelConfig, data_shape: tuple[int, ...]) -> Pioneer:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    return Pioneer(encoder, decoder, m)
