"""Model containers. A model holds networks and knows how to encode, decode and sample; it holds
no optimizer and computes no loss (see flexae.losses and flexae.training.trainers).

Families:
- `flexae`    deterministic AE + learned prior G_psi + WGAN-GP latent critic C_kappa.
- `flexae-sr` FlexAE + smoothing critic C_zeta on decoded interpolations (image data only).
- `wae`       deterministic AE + fixed N(0, I) prior + the same latent critic (WAE-GAN with a
              WGAN-GP adversary).
- `wae-gmm`   the same with a fixed Gaussian-mixture prior.
- `vae`       Gaussian encoder (mean, log-variance), KL to N(0, I).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flexae.baselines import BASELINE_NAMES
from flexae.config import ModelConfig
from flexae.errors import UserError
from flexae.priors import GaussianMixturePrior, LearnedPrior, StandardNormalPrior

MODEL_NAMES = ("flexae", "flexae-sr", "wae", "wae-gmm", "vae") + BASELINE_NAMES  # baselines: flexae.baselines


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

    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.decode(self.sample_latent(n, generator))


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


def _networks(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int) -> dict[str, nn.Module]:
    m, noise_dim = cfg.latent_dim, cfg.noise_dim or cfg.latent_dim
    if len(data_shape) == 1:
        from flexae.nets import synthetic as nets
        from flexae.nets.common import glorot_init_
        built = {"encoder": nets.synthetic_encoder(data_shape[0], encoder_out),
                 "decoder": nets.synthetic_decoder(m, data_shape[0]),
                 "prior_generator": nets.synthetic_prior_generator(noise_dim, m),
                 "latent_critic": nets.synthetic_latent_critic(m)}
        return {name: glorot_init_(net) for name, net in built.items()}  # the authors' Glorot init
    from flexae.nets.image import image_networks
    return image_networks(data_shape, m, noise_dim, variant=cfg.decoder_variant, bn_momentum=cfg.bn_momentum,
                          bn_eps=cfg.bn_eps, encoder_out_features=encoder_out)


def build_model(cfg: ModelConfig, data_shape: tuple[int, ...]) -> AutoEncoder:
    """Build the model `cfg.name` for data of shape `data_shape` ((128,) synthetic, (C, H, W) images)."""
    if cfg.name not in MODEL_NAMES:
        raise UserError(f"unknown model {cfg.name!r}; choose from {', '.join(MODEL_NAMES)}")
    if cfg.name in BASELINE_NAMES:
        from flexae.baselines.registry import build_baseline  # imported here: it imports this module
        return build_baseline(cfg, data_shape)
    if cfg.name == "flexae-sr" and len(data_shape) == 1:
        raise UserError("flexae-sr needs image data (its smoothing critic is the convolutional net of "
                        "Table 8); use --model flexae on synthetic data")
    m = cfg.latent_dim
    nets = _networks(data_shape, cfg, 2 * m if cfg.name == "vae" else m)
    if cfg.name == "vae":
        return VAE(nets["encoder"], nets["decoder"], StandardNormalPrior(m))
    if cfg.name in ("flexae", "flexae-sr"):
        prior = LearnedPrior(nets["prior_generator"], cfg.noise_dim or m)
    elif cfg.name == "wae":
        prior = StandardNormalPrior(m)
    else:
        prior = GaussianMixturePrior(m, cfg.gmm_components, cfg.gmm_radius, cfg.gmm_std)
    smoothing = nets["smoothing_critic"] if cfg.name == "flexae-sr" else None
    return AdversarialAE(nets["encoder"], nets["decoder"], prior, nets["latent_critic"], smoothing)
