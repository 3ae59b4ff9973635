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

import torch
from torch import Tensor, nn

from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder


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
