"""Model containers. A model holds networks and knows how to encode, decode and sample; it holds
no optimizer and computes no loss (see flexae.losses and flexae.training.trainers). Models are
built by name through `flexae.registry`, which also names each one's trainer.

Families:
- `flexae`    deterministic AE + learned prior G_psi + WGAN-GP latent critic C_kappa.
- `flexae-sr` FlexAE + smoothing critic C_zeta on decoded interpolations (image data only).
- `wae`       FlexAE with its prior fixed to N(0, I): the paper's fixed-prior ablation (Fig 2, 3),
              Algorithm 1 without L_Gen (WGAN-GP latent critic, L_AE and L_Enc as separate
              updates). Not Tolstikhin et al.'s WAE-GAN: that is the baseline `wae-gan`.
- `wae-gmm`   the same with a fixed Gaussian-mixture prior.
- `vae`       Gaussian encoder (mean, log-variance), KL to N(0, I).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flexae.config import ModelConfig
from flexae.errors import UserError
from flexae.nets.factory import paper_networks
from flexae.priors import ExPostSampler, GaussianMixturePrior, LearnedPrior, StandardNormalPrior


class AutoEncoder(nn.Module):
    """Encoder E, decoder D and a latent prior; generation is D(prior sample)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.prior = encoder, decoder, prior

    def encode(self, x: Tensor) -> Tensor:
        """(B, ...) -> (B, m): the code used for reconstruction."""
        return self.encoder(x)

    def posterior_sample(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw from Q(z|x); equal to encode(x) for deterministic encoders."""
        return self.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.prior.sample(n, generator)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples D(z), z from the prior, without gradients (differentiate through
        `decode(sample_latent(n))` instead)."""
        return self.decode(self.sample_latent(n, generator))

    @property
    def expost_sampler(self) -> ExPostSampler | None:
        """The prior, if it is a sampler fitted after training (some baselines); else None."""
        return self.prior if isinstance(self.prior, ExPostSampler) else None

    def can_generate(self) -> bool:
        """False only while an ex-post sampler waits to be fitted."""
        return self.expost_sampler is None or self.expost_sampler.is_fitted


class AdversarialAE(AutoEncoder):
    """FlexAE / FlexAE-SR / WAE / WAE-GMM: a deterministic AE whose codes are matched to the prior
    by a WGAN-GP latent critic; `smoothing_critic` is present for FlexAE-SR only."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module,
                 latent_critic: nn.Module, smoothing_critic: nn.Module | None = None):
        super().__init__(encoder, decoder, prior)
        self.latent_critic = latent_critic
        self.smoothing_critic = smoothing_critic


class VAE(AutoEncoder):
    """Gaussian encoder: the encoder network outputs (B, 2m) = [mean, log-variance]."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def posterior_sample(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return reparameterise(*self.posterior(x), generator)


def reparameterise(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + eps * exp(logvar / 2), eps ~ N(0, I): a differentiable draw from N(mu, diag(exp(logvar)))."""
    noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + noise * (0.5 * logvar).exp()


# -- builders (registered by name in flexae.registry) ----------------------------------------------

def build_flexae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> AdversarialAE:
    """FlexAE, or FlexAE-SR when `cfg.name` is "flexae-sr" (image data only)."""
    if cfg.name == "flexae-sr" and len(data_shape) == 1:
        raise UserError("flexae-sr needs image data (its smoothing critic is the convolutional net of "
                        "Table 8); use --model flexae on synthetic data")
    nets = paper_networks(data_shape, cfg, cfg.latent_dim)
    prior = LearnedPrior(nets["prior_generator"], cfg.noise_dim or cfg.latent_dim)
    smoothing = nets["smoothing_critic"] if cfg.name == "flexae-sr" else None
    return AdversarialAE(nets["encoder"], nets["decoder"], prior, nets["latent_critic"], smoothing)


def build_wae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> AdversarialAE:
    """FlexAE with its prior fixed to N(0, I) (`wae`) or to a Gaussian mixture (`wae-gmm`)."""
    m = cfg.latent_dim
    nets = paper_networks(data_shape, cfg, m)
    if cfg.name == "wae-gmm":
        prior: nn.Module = (GaussianMixturePrior.from_supplement(m) if cfg.gmm_layout == "supplement" else
                            GaussianMixturePrior.on_circle(m, cfg.gmm_components, cfg.gmm_radius, cfg.gmm_std))
    else:
        prior = StandardNormalPrior(m)
    return AdversarialAE(nets["encoder"], nets["decoder"], prior, nets["latent_critic"])


def build_vae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> VAE:
    m = cfg.latent_dim
    nets = paper_networks(data_shape, cfg, 2 * m)
    return VAE(nets["encoder"], nets["decoder"], StandardNormalPrior(m))
