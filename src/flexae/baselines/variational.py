"""Variational baselines: the two-stage VAE, the VAE with a VampPrior and the VAE with an IAF
posterior.

All use the paper's encoder/decoder (Table 7; Table 6 on synthetic data) with a Gaussian encoder
head, the `optim.ae` Adam (lr 2e-4, betas (0.9, 0.999)), batch 128, one update per iteration and a
single posterior sample per image, like the `vae` baseline. The reconstruction term is L_AE (sum of
squared errors, i.e. a Gaussian decoder with fixed variance 1/2 up to a constant) except for the
two-stage VAE, whose decoder variance is learned (its defining ingredient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import SamplerFitOptions, frozen_batchnorm_stats
from flexae.nets.factory import encoder_decoder
from flexae.config import ModelConfig
from flexae.models import VAE
from flexae.priors import ExPostSampler
from flexae.priors import StandardNormalPrior
from flexae.ranges import LR, MAX_DIM, Range, ranged


@dataclass
class TwoStageOptions(SamplerFitOptions):
    """2s-vae's settings (model.options): the second stage and its ex-post fit."""
    second_stage_width: int = ranged(1024, Range(1, MAX_DIM))  # 2s-vae: width of the second-stage encoder and decoder MLPs.
    second_stage_depth: int = ranged(3, Range(0, 1000))        # 2s-vae: hidden layers of each second-stage MLP.
    second_stage_lr: float = ranged(1e-4, LR)                  # 2s-vae: Adam learning rate of the second stage.


@dataclass
class VampOptions:
    """vamp-vae's settings (model.options)."""
    vamp_pseudo_inputs: int = ranged(500, Range(1, 1_000_000))  # vamp-vae: K, the number of learned pseudo-inputs.
    vamp_init_mean: float = ranged(-0.05, Range(-1e3, 1e3))     # vamp-vae: pseudo-input pre-activations ~ N(mean, std^2) at init.
    vamp_init_std: float = ranged(0.01, Range(0, 1e3))          # vamp-vae: (images: u = sigmoid(a); synthetic data: u = a).


@dataclass
class IAFOptions:
    """iaf-vae's settings (model.options)."""
    iaf_steps: int = ranged(2, Range(0, 1000))       # iaf-vae: IAF transformations after the Gaussian posterior.
    iaf_hidden: int = ranged(320, Range(1, MAX_DIM))  # iaf-vae: hidden units of each step's MADE.


# ----------------------------------------------------------------------------------------------
# Two-stage VAE


class _ResidualMLP(nn.Module):
    """depth x [FC width -> ReLU] on x, then a linear head on concat(x, h), as in Dai & Wipf's code."""

    def __init__(self, dim: int, width: int, depth: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(dim if i == 0 else width, width), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dim + (width if depth else 0), out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.cat([x, self.body(x)], dim=1))


class SecondStageVAE(ExPostSampler):
    """A VAE on codes z (m) with a latent u of the same size (kappa = m in the paper).

    Encoder z -> (mu_u, log sd_u); decoder u -> z_hat; a learned scalar log gamma_z. Sampling:
    u ~ N(0, I), z = z_hat(u) + gamma_z eps (as in the authors' `generate`).
    """

    def __init__(self, dim: int, width: int = 1024, depth: int = 3):
        super().__init__()
        self.dim = dim
        self.encoder = _ResidualMLP(dim, width, depth, 2 * dim)
        self.decoder = _ResidualMLP(dim, width, depth, dim)
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def loss(self, z: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(negative ELBO, reconstruction NLL, KL) for a batch of codes z (B, m); `noise` (B, m) is
        the reparameterisation's N(0, I) draw, taken by the caller from its seeded generator so that
        a fit is the same in every process."""
        mu, log_sd = self.encoder(z).chunk(2, dim=1)
        u = mu + noise * log_sd.exp()
        nll = bl.gaussian_nll_learned_scale(z, self.decoder(u), self.log_gamma)
        kl = losses.kl_standard_normal(mu, 2 * log_sd)
        return nll + kl, nll, kl

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        device = self.log_gamma.device
        u = torch.randn(n, self.dim, device=device, generator=generator)
        noise = torch.randn(n, self.dim, device=device, generator=generator)
        return self.decoder(u) + self.log_gamma.exp() * noise


class TwoStageVAE(VAE):
    """2-stage VAE (Dai & Wipf, "Diagnosing and Enhancing VAE Models", ICLR 2019).

    Stage 1 (trained here): a VAE with Gaussian encoder and a Gaussian decoder N(x; D(z), gamma_x^2 I)
    whose scale gamma_x = exp(`log_gamma_x`) is learned, initialised at 1; loss
    KL(q(z|x) || N(0, I)) + sum_i [(x_i - D(z)_i)^2 / (2 gamma_x^2) + log gamma_x + log(2 pi)/2].
    Stage 2 (the ex-post sampler, `SecondStageVAE`): a VAE of latent size m on z ~ q(z|x) over
    training images, encoder and decoder each `second_stage_depth` = 3 ReLU layers of
    `second_stage_width` = 1024 plus a skip of the input into the output layer, its own learned
    gamma_z; Adam lr `second_stage_lr` = 1e-4 (all as in the paper / authors' code). Generation:
    u ~ N(0, I), z = f2(u) + gamma_z eps, x = D(z).

    Differences: Table 7 networks (the paper's InfoGAN-style ones are the same layout, plus spectral
    norm and leaky ReLU in the encoder), log-variance instead of softplus-sd encoder head, m = 20 / 64
    instead of 64, Adam lr 2e-4 / batch 128 / no lr halving for stage 1 instead of lr 1e-4, batch 64,
    400 epochs halved every 150; stage 2 runs `sampler_steps` iterations (default 5000, batch 128)
    instead of 800 epochs.
    """

    def __init__(self, encoder, decoder, sampler: SecondStageVAE):
        super().__init__(encoder, decoder, sampler)
        self.log_gamma_x = nn.Parameter(torch.zeros(()))

    def sampler_targets(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """What the second stage is fitted on: the posterior (mu, log sd), each (B, m)."""
        mu, logvar = self.posterior(x)
        return mu, 0.5 * logvar


# ----------------------------------------------------------------------------------------------
# VampPrior


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k): the encoder's Gaussian posteriors at K learned pseudo-inputs.

    Holds the pseudo-inputs; the encoder stays the VAE's own module (kept here as a plain bound
    method, not a submodule, so its weights appear once in the state dict). Pseudo-inputs pass
    through the encoder as their own batch (train mode) without updating the BatchNorm running
    statistics, so in eval mode they are normalised with the data's statistics.
    """

    trained_by_gen = False  # its pseudo-inputs are trained by the ELBO, not by L_Gen

    def __init__(self, encoder: nn.Module, data_shape: tuple[int, ...], hp: VampOptions):
        super().__init__()
        self.encoder_call = encoder.__call__
        self._cache: tuple | None = None  # (key, (mu_k, logvar_k)) of the last no-grad eval-mode call
        self.squash = len(data_shape) == 3  # images live in [0, 1]: u = sigmoid(a)
        self.pseudo_logits = nn.Parameter(torch.empty(hp.vamp_pseudo_inputs, *data_shape))
        nn.init.normal_(self.pseudo_logits, hp.vamp_init_mean, hp.vamp_init_std)

    def pseudo_inputs(self) -> Tensor:
        """(K, ...) pseudo-inputs u_k in data space."""
        return torch.sigmoid(self.pseudo_logits) if self.squash else self.pseudo_logits

    def components(self) -> tuple[Tensor, Tensor]:
        """(mu_k, logvar_k), each (K, m)."""
        encoder = self.encoder_call.__self__
        # Without gradients and in eval mode the result only changes when a weight or BatchNorm
        # statistic does (in-place updates bump a tensor's _version): reuse it, so drawing samples
        # one at a time (flexae.inference.sample) does not re-encode the K pseudo-inputs every draw.
        key = None
        if not torch.is_grad_enabled() and not encoder.training:
            tensors = [self.pseudo_logits, *encoder.state_dict().values()]
            key = tuple((t.data_ptr(), t._version) for t in tensors)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        with frozen_batchnorm_stats(encoder):
            mu, logvar = self.encoder_call(self.pseudo_inputs()).chunk(2, dim=1)
        self._cache = (key, (mu, logvar)) if key is not None else None
        return mu, logvar

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) for codes z (B, m) -> (B,)."""
        return bl.vamp_log_prior(z, *self.components())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, m): a uniformly chosen component k, then z ~ N(mu_k, diag exp(logvar_k))."""
        mu_k, logvar_k = self.components()
        k = torch.randint(0, mu_k.shape[0], (n,), device=mu_k.device, generator=generator)
        noise = torch.randn(n, mu_k.shape[1], device=mu_k.device, generator=generator)
        return mu_k[k] + noise * (0.5 * logvar_k[k]).exp()


class VampVAE(VAE):
    """VAE with a VampPrior (Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018).

    Prior p(z) = 1/K sum_k q(z | u_k), a mixture of the encoder's posteriors at K learned
    pseudo-inputs u_k (`VampPrior`); loss L_AE + E_q[log q(z|x) - log p(z)] with one sample.
    Pseudo-inputs are u = sigmoid(a) for images (data in [0, 1]; the authors' "gray" input type)
    and u = a for the synthetic data, a ~ N(-0.05, 0.01^2) at initialisation (`vamp_init_mean`,
    `vamp_init_std`, the authors' defaults), K = `vamp_pseudo_inputs` = 500 (paper: 500).

    Differences: Table 7 networks instead of MLPs / the conv VAE of the paper; Gaussian decoder
    (L_AE) instead of Bernoulli / logistic; no KL warm-up (paper: 100 epochs) since every model
    here trains at the same small budget; Adam lr 2e-4 / batch 128 instead of lr 5e-4, batch 100,
    early stopping; m = 20 / 64 instead of 40.
    """

    def __init__(self, encoder, decoder, data_shape: tuple[int, ...], hp: VampOptions):
        super().__init__(encoder, decoder, VampPrior(encoder, data_shape, hp))


# ----------------------------------------------------------------------------------------------
# IAF posterior


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask (MADE)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float(), persistent=False)  # (out, in), rebuilt from sizes

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_masks(dim: int, hidden: int) -> tuple[Tensor, Tensor]:
    """MADE masks for inputs 1..dim in natural order: (hidden, dim) and (dim, hidden).

    Hidden unit j gets degree 1 + j mod (dim - 1) and sees inputs of degree <= its own; output i
    sees hidden units of degree < i, so output i depends on inputs 1..i-1 only.
    """
    in_degree = torch.arange(1, dim + 1)
    hidden_degree = torch.arange(hidden) % max(dim - 1, 1) + 1
    first = hidden_degree[:, None] >= in_degree[None, :]
    second = in_degree[:, None] > hidden_degree[None, :]
    return first, second


class IAFStep(nn.Module):
    """One IAF transformation (Kingma et al. 2016, eq. 11-14, the numerically stable form).

    [m, s] = MADE(z, h); sigma = sigmoid(s + forget_bias); z' = sigma * z + (1 - sigma) * m;
    log |det dz'/dz| = sum_i log sigma_i (the Jacobian is triangular: m, s depend on z_<i only).
    """

    def __init__(self, dim: int, hidden: int, context: int, forget_bias: float = 1.0):
        super().__init__()
        first, second = made_masks(dim, hidden)
        self.inp = MaskedLinear(dim, hidden, first)
        self.ctx = nn.Linear(context, hidden)
        self.out_m = MaskedLinear(hidden, dim, second)
        self.out_s = MaskedLinear(hidden, dim, second)
        self.forget_bias = forget_bias  # sigma ~ sigmoid(1) ~ 0.73 at init, as the paper advises

    def forward(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, m), context h (B, c) -> (z' (B, m), log-det (B,))."""
        hidden = nn.functional.elu(self.inp(z) + self.ctx(h))
        sigma = torch.sigmoid(self.out_s(hidden) + self.forget_bias)
        z_new = sigma * z + (1 - sigma) * self.out_m(hidden)
        return z_new, torch.log(sigma).sum(dim=1)


class IAFVAE(VAE):
    """VAE with an inverse autoregressive flow posterior (Kingma, Salimans, Jozefowicz, Chen,
    Sutskever, Welling, "Improved Variational Inference with Inverse Autoregressive Flow",
    NeurIPS 2016).

    The encoder outputs (mu, logvar, h) (3m values); z_0 = mu + sigma eps, then T IAF steps
    z_t = sigma_t z_{t-1} + (1 - sigma_t) m_t with [m_t, s_t] = MADE_t(z_{t-1}, h), the variable
    order reversed between steps; log q(z_T|x) = log N(eps; 0, I) - sum log sigma_0 - sum_t sum log sigma_t.
    Loss L_AE + log q(z_T|x) - log N(z_T; 0, I) (one sample). `encode` runs the flow from eps = 0.

    Hyper-parameters: T = `iaf_steps` = 2, MADE with one hidden layer of `iaf_hidden` = 320 ELU units
    (the paper's MNIST setting "depth 2, width 320", as we read it; not checked against code),
    context h of size m, forget-gate bias +1.
    Differences: Table 7 networks instead of the paper's ResNet VAE; one hidden layer per MADE
    (the layer count is not stated for that setting); Gaussian decoder (L_AE); Adam lr 2e-4 /
    batch 128 instead of Adamax lr 2e-3 with Polyak averaging; m = 20 / 64 instead of 32.
    """

    def __init__(self, encoder, decoder, latent_dim: int, hp: IAFOptions):
        super().__init__(encoder, decoder, StandardNormalPrior(latent_dim))
        self.latent_dim = latent_dim
        self.flows = nn.ModuleList(IAFStep(latent_dim, hp.iaf_hidden, latent_dim) for _ in range(hp.iaf_steps))

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar, _ = self.encoder(x).chunk(3, dim=1)
        return mu, logvar

    def flow(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """z_0 (B, m) -> (z_T (B, m), sum of the steps' log-dets (B,))."""
        log_det = z.new_zeros(z.shape[0])
        for i, step in enumerate(self.flows):
            if i > 0:
                z = z.flip(1)  # reverse the variable order between steps (volume preserving)
            z, step_log_det = step(z, h)
            log_det = log_det + step_log_det
        if len(self.flows) > 1 and len(self.flows) % 2 == 0:
            z = z.flip(1)  # an even number of reversals restores the original order
        return z, log_det

    def sample_posterior_with_log_q(self, x: Tensor, generator: torch.Generator | None = None
                                    ) -> tuple[Tensor, Tensor]:
        """z_T ~ q(z|x) and log q(z_T|x), each (B, m) and (B,)."""
        return self.posterior_from_features(self.encoder(x), generator)

    def posterior_from_features(self, features: Tensor, generator: torch.Generator | None = None
                                ) -> tuple[Tensor, Tensor]:
        """`sample_posterior_with_log_q` from the encoder's output (B, 3m) = [mu, logvar, h]."""
        mu, logvar, h = features.chunk(3, dim=1)
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        z, log_det = self.flow(mu + eps * (0.5 * logvar).exp(), h)
        log_q = bl.standard_normal_log_density(eps) - 0.5 * logvar.sum(dim=1) - log_det
        return z, log_q

    def encode(self, x: Tensor) -> Tensor:
        mu, _, h = self.encoder(x).chunk(3, dim=1)
        return self.flow(mu, h)[0]

    def posterior_sample(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.sample_posterior_with_log_q(x, generator)[0]


# ----------------------------------------------------------------------------------------------
# Builders


def build_two_stage(cfg: ModelConfig, data_shape: tuple[int, ...]) -> TwoStageVAE:
    m, hp = cfg.latent_dim, cfg.options
    encoder, decoder = encoder_decoder(data_shape, cfg, 2 * m, m)
    return TwoStageVAE(encoder, decoder, SecondStageVAE(m, hp.second_stage_width, hp.second_stage_depth))


def build_vamp(cfg: ModelConfig, data_shape: tuple[int, ...]) -> VampVAE:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, 2 * m, m)
    return VampVAE(encoder, decoder, data_shape, cfg.options)


def build_iaf(cfg: ModelConfig, data_shape: tuple[int, ...]) -> IAFVAE:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, 3 * m, m)
    return IAFVAE(encoder, decoder, m, cfg.options)
