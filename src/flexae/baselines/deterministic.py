"""Deterministic auto-encoder baselines: WAE-MMD, AE + GMM and RAE + GMM.

All use the paper's encoder/decoder (Table 7; Table 6 on synthetic data), L_AE (per-image sum of
squared errors) and the `optim.ae` Adam (lr 2e-4, betas (0.9, 0.999)) with batch 128, so they differ
from FlexAE only in how the latent space is regularised and sampled. One update per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flexae.baselines.common import FitPointsOptions, WAEOptions
from flexae.nets.factory import encoder_decoder
from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.errors import UserError
from flexae.priors import ExPostSampler, StandardNormalPrior
from flexae.ranges import MAX_COMPONENTS, WEIGHT, Range, ranged


@dataclass
class WAEMMDOptions(WAEOptions):
    """wae-mmd's settings (model.options), besides the WAE prior, cost and input noise."""
    mmd_weight: float = ranged(10.0, WEIGHT)
    # wae-mmd: lambda on the IMQ-kernel MMD, on top of the scaled cost below
    # (authors' configs.py: 10 MNIST, 100 CelebA).


@dataclass
class ExPostGMMOptions(FitPointsOptions):
    """ae-gmm's settings (model.options)."""
    expost_gmm_components: int = ranged(10, Range(1, MAX_COMPONENTS))  # ae-gmm, rae-gmm: components of the ex-post full-covariance GMM.


@dataclass
class RAEGMMOptions(ExPostGMMOptions):
    """rae-gmm's settings (model.options): ae-gmm's and the RAE-L2 regularisers."""
    rae_code_weight: float = ranged(1e-4, WEIGHT)    # rae-gmm: beta on mean_j z_j^2 per pixel of squared error (RAE code; CIFAR 1e-3).
    rae_decoder_decay: float = ranged(1e-7, WEIGHT)  # rae-gmm: lambda on the decoder's squared weights, same scale (CIFAR 1e-6).


class ScaledNormalPrior(StandardNormalPrior):
    """The fixed prior N(0, sigma_z^2 I_m) of WAE-MMD."""

    def __init__(self, latent_dim: int, std: float):
        super().__init__(latent_dim)
        self.std = std

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.std * super().sample(n, generator)


class GaussianMixtureSampler(ExPostSampler):
    """p(z) = sum_k w_k N(z; mu_k, S_k) over codes z (m); buffers weights (K,), means (K, m),
    covariances (K, m, m)."""

    def __init__(self, components: int, dim: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("covariances", torch.eye(dim).repeat(components, 1, 1))

    def set_parameters(self, weights: Tensor, means: Tensor, covariances: Tensor) -> None:
        self.weights.copy_(weights)
        self.means.copy_(means)
        self.covariances.copy_(covariances)
        self.fitted.fill_(True)

    def check(self) -> None:
        """UserError if the mixture is degenerate (a loaded sampler.pt is checked like a fresh fit)."""
        check_gmm(self.weights, self.means, self.covariances)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        """(n, m): pick a component per sample, then mu_k + L_k eps with L_k L_k^T = S_k."""
        device = self.means.device
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)          # (n,)
        eps = torch.randn(n, self.means.shape[1], 1, device=device, generator=generator)       # (n, m, 1)
        # Cholesky in float64 on the CPU: exact enough for near-singular code covariances.
        chol, info = torch.linalg.cholesky_ex(self.covariances.double().cpu())
        if bool((info != 0).any()) or not bool(torch.isfinite(self.weights).all()):
            raise UserError("the GMM sampler is degenerate (a covariance that is not positive definite, or "
                            "NaN weights); fit it again with `flexae fit-sampler RUN_DIR`")
        chol = chol.to(device, self.means.dtype)
        return self.means[k] + (chol[k] @ eps).squeeze(-1)


def check_gmm(weights: Tensor, means: Tensor, covariances: Tensor) -> None:
    """A usable mixture: finite weights (K,) summing to 1, finite means (K, m), covariances (K, m, m)
    positive definite in float32 (what sampling factorises); else a one-line UserError."""
    finite = all(bool(torch.isfinite(t).all()) for t in (weights, means, covariances))
    if not finite or (weights < 0).any() or abs(float(weights.sum()) - 1) > 1e-3:
        raise UserError("the GMM fit degenerated (NaN or infinite weights, means or covariances); "
                        "use fewer model.options.expost_gmm_components")
    singular = torch.linalg.cholesky_ex(covariances.double())[1] != 0
    if bool(singular.any()):
        raise UserError(f"the GMM fit degenerated: the covariance of component {int(singular.nonzero()[0])} is "
                        f"singular; use fewer model.options.expost_gmm_components or more codes")


class WAEMMD(AutoEncoder):
    """WAE-MMD (Tolstikhin, Bousquet, Gelly, Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018).

    Deterministic encoder; loss L_AE + lambda * MMD_k(Q_Z, P_Z) with P_Z = N(0, sigma_z^2 I) and the
    IMQ kernel k(x, y) = C / (C + ||x - y||^2) summed over C in {.1, .2, .5, 1, 2, 5, 10} * 2 m sigma_z^2
    (the authors' code), estimated on each batch of codes against as many prior samples.

    Objective as in the authors' code (tolstikhin/wae, wae.py lines 88-89 and 339-342):
    0.05 * L_AE + lambda * MMD (`wae_cost_scale`, 0.2 on the RGB sets, which they scale to [-1, 1]),
    so lambda = 10 weighs the MMD 200 times against the raw per-image sum of squares. Encoder
    inputs get their "add_noise" (truncated normal, std 0.01, `wae_input_noise`) in training.

    Hyper-parameters (`model.options`): lambda = `mmd_weight` = 10 (configs.py line 105, MNIST;
    100 for CelebA, line 53), sigma_z = `prior_std` = 1 (lines 50, 102). Differences from the
    authors' runs: the Table 7 networks instead of the DCGAN-style ones, Adam lr 2e-4 / betas
    (0.9, 0.999) / batch 128 / no lr decay (`optim.ae`) instead of lr 1e-3, beta1 0.5, batch 100
    with decay; no encoder pre-training; m from the FlexAE paper (20 / 64) instead of 8 / 64.
    """

    def __init__(self, encoder, decoder, latent_dim: int, prior_std: float):
        super().__init__(encoder, decoder, ScaledNormalPrior(latent_dim, prior_std))


class ExPostGMMAE(AutoEncoder):
    """A deterministic AE whose generator is a GMM fitted to its training codes afterwards.

    `ae-gmm`: the plain AE of Ghosh et al. (ICLR 2020, "From Variational to Deterministic
    Autoencoders", Table 1 row "AE"): loss L_AE only. `rae-gmm`: their RAE-L2,
    L_AE + d * (beta * mean_j z_j^2 + lambda * sum ||theta_D||^2), written per pixel as in the
    authors' code (reconstruction = mean over pixels of the squared error), hence the factor
    d = number of pixels against our per-image sum. Both: ex-post density = 10-component
    full-covariance GMM on the codes of the training images (scikit-learn EM).

    Hyper-parameters (`model.options`): `expost_gmm_components` = 10 (paper: 10);
    `rae_code_weight` beta = 1e-4 and `rae_decoder_decay` lambda = 1e-7 (authors' code for MNIST
    and CelebA; CIFAR-10 uses 1e-3 and 1e-6, which `flexae reproduce table1 --dataset cifar10`
    sets). Differences: Table 7 networks instead of theirs; Adam lr 2e-4 / batch 128 / no
    plateau-halving instead of lr 1e-3 halved on plateaus, batch 100, 100 epochs; m = 20 / 64
    instead of 16 / 128 / 64; the paper writes 1/2 ||z||^2 where the code (and we) use mean_j z_j^2.
    """

    def __init__(self, encoder, decoder, latent_dim: int, components: int, name: str):
        super().__init__(encoder, decoder, GaussianMixtureSampler(components, latent_dim))
        self.name = name

    def sampler_targets(self, x: Tensor) -> Tensor:
        """What the ex-post GMM is fitted on: the codes (B, m)."""
        return self.encode(x)


def build_wae_mmd(cfg: ModelConfig, data_shape: tuple[int, ...]) -> WAEMMD:
    encoder, decoder = encoder_decoder(data_shape, cfg, cfg.latent_dim, cfg.latent_dim)
    return WAEMMD(encoder, decoder, cfg.latent_dim, cfg.options.prior_std)


def build_expost_gmm_ae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> ExPostGMMAE:
    encoder, decoder = encoder_decoder(data_shape, cfg, cfg.latent_dim, cfg.latent_dim)
    return ExPostGMMAE(encoder, decoder, cfg.latent_dim, cfg.options.expost_gmm_components, cfg.name)
