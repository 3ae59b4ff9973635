"""VAE with an implicit optimal prior (Takahashi, Iwata, Yamanaka, Yamada, Yagi, "Variational
Autoencoder with Implicit Optimal Priors", AAAI 2019; arXiv 1809.05284).

The prior that maximises the ELBO is the aggregated posterior q(z) = E_x q(z|x). Its KL term splits
into a closed form and a density ratio against N(0, I):

    KL(q(z|x) || q(z)) = KL(q(z|x) || N(0, I)) - E_{q(z|x)}[log q(z) / N(z; 0, I)],

and the log ratio is estimated by a discriminator T_psi(z) trained by logistic regression to tell
codes z ~ q(z|x) (label 1) from N(0, I) samples (label 0): at the optimum its logit is
T*(z) = log q(z) / N(z; 0, I). The VAE minimises L_AE + KL(q(z|x) || N(0, I)) - T_psi(z) with T's
weights held fixed: the gradient flows into the encoder only through z's reparameterisation. The
dependence of T* on the encoder is left out on purpose, since E_{q(z)}[grad_phi log q_phi(z)] = 0.

Generation: the model's prior is p(z) = N(z; 0, I) exp(T(z)) (the density the authors' code uses in
its importance-sampled log-likelihood); codes are drawn from it by sampling-importance-resampling
with N(0, I) as the proposal (`ImplicitOptimalPrior.sample`; docs/baselines.md says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flexae.baselines import losses as bl
from flexae.config import ModelConfig
from flexae.models import VAE
from flexae.nets.factory import encoder_decoder
from flexae.ranges import BETA, LR, MAX_DIM, Range, ranged

SIR_CHUNK = 256  # generated codes per estimator pass when sampling (n x K candidates at a time)


@dataclass
class IOPOptions:
    """vae-iop's settings (model.options)."""
    # vae-iop (flexae.baselines.iop): Takahashi et al., AAAI 2019; values of the authors' code.
    iop_ratio_width: int = ranged(500, Range(1, MAX_DIM))     # vae-iop: units of each hidden layer of the density-ratio estimator T(z).
    iop_ratio_depth: int = ranged(3, Range(0, 1000))          # vae-iop: tanh hidden layers of T.
    iop_ratio_dropout: float = ranged(0.5, BETA)              # vae-iop: dropout before T's output layer, in T's own updates only.
    iop_ratio_lr: float = ranged(1e-3, LR)                    # vae-iop: Adam learning rate of T (betas 0.9, 0.999).
    iop_ratio_steps: int = ranged(10, Range(1, 10_000))       # vae-iop: T updates per VAE update (authors: 10 epochs of T per VAE epoch).
    iop_sir_candidates: int = ranged(100, Range(1, 1_000_000))  # vae-iop: N(0, I) proposals per generated code (importance resampling).


class DensityRatioEstimator(nn.Module):
    """T_psi: (B, m) codes -> (B,) logits, an estimate of log q(z) / N(z; 0, I).

    `depth` tanh layers of `width` units and a linear output, dropout before the output layer
    (the authors' `Discriminator`: 3 x 500 tanh, `nn.Dropout()`, PyTorch's default init). Dropout
    is applied only when asked (T's own updates); the VAE loss and sampling use T without it, as
    the authors' code does (its discriminator is in eval mode while the VAE trains).
    """

    def __init__(self, dim: int, width: int, depth: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(dim if i == 0 else width, width), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width if depth else dim, 1)
        self.dropout = dropout

    def forward(self, z: Tensor, dropout: bool = False) -> Tensor:
        h = nn.functional.dropout(self.body(z), self.dropout, training=dropout)  # (B, width)
        return self.head(h).squeeze(1)                                            # (B,)


class ImplicitOptimalPrior(nn.Module):
    """p(z) = N(z; 0, I) exp(T(z)), the aggregated posterior as the ratio estimator sees it.

    `sample` draws by sampling-importance-resampling: K = `candidates` proposals from N(0, I) per
    code, one of them kept with probability softmax(T) over the K (the self-normalised importance
    weights q(z) / N(z; 0, I) = exp(T(z))). As K grows the draw's law tends to N(z) exp(T(z)) / Z.
    """

    trained_by_gen = False  # T is trained by its own logistic-regression updates

    def __init__(self, estimator: DensityRatioEstimator, latent_dim: int, candidates: int):
        super().__init__()
        self.estimator, self.latent_dim, self.candidates = estimator, latent_dim, candidates
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def log_ratio(self, z: Tensor) -> Tensor:
        """T(z) ~ log q(z) / N(z; 0, I) for codes z (B, m) -> (B,), without dropout."""
        return self.estimator(z)

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I) + T(z) (B,): log q(z) where T is the optimal logit."""
        return bl.standard_normal_log_density(z) + self.log_ratio(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, m) codes by sampling-importance-resampling from N(0, I) proposals."""
        return torch.cat([self._resample(min(SIR_CHUNK, n - i), generator) for i in range(0, n, SIR_CHUNK)])

    def _resample(self, n: int, generator: torch.Generator | None) -> Tensor:
        k, m = self.candidates, self.latent_dim
        proposals = torch.randn(n, k, m, device=self._anchor.device, generator=generator)  # (n, K, m)
        weights = torch.softmax(self.log_ratio(proposals.reshape(n * k, m)).view(n, k), dim=1)  # (n, K)
        chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)                 # (n,)
        return proposals[torch.arange(n, device=proposals.device), chosen]


class IOPVAE(VAE):
    """VAE-IOP: Gaussian encoder (mean, log-variance), decoder, and the implicit optimal prior
    (which holds the density-ratio estimator T). Encoding and reconstruction as the `vae`."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: ImplicitOptimalPrior):
        super().__init__(encoder, decoder, prior)


def build_iop(cfg: ModelConfig, data_shape: tuple[int, ...]) -> IOPVAE:
    m, hp = cfg.latent_dim, cfg.options
    encoder, decoder = encoder_decoder(data_shape, cfg, 2 * m, m)
    estimator = DensityRatioEstimator(m, hp.iop_ratio_width, hp.iop_ratio_depth, hp.iop_ratio_dropout)
    return IOPVAE(encoder, decoder, ImplicitOptimalPrior(estimator, m, hp.iop_sir_candidates))
