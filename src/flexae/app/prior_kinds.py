"""One interface for the priors fitted on a trained auto-encoder's frozen codes: `fit_kind(kind,
codes, ...)` returns a `FittedPrior` (the module, with `sample(n, generator) -> (n, m)`, the plain
settings that rebuild it, fit statistics), which `flexae.runs.prior_file` saves as tensors and
`flexae.app.build.attach_prior` loads. The kinds:

    adversarial    the paper's prior: G_psi against a WGAN-GP latent critic (Algorithm 1, lines 4-5, 9)
    gmm            the ex-post full-covariance GMM of AE/RAE+GMM (scikit-learn EM), any components
    flow-matching  an MLP velocity field trained by conditional flow matching on the linear path,
                   sampled by a fixed-step ODE solver (Euler or midpoint; steps and solver recorded)
    2s-vae         the second-stage VAE of the 2-stage VAE (Dai & Wipf), here on deterministic codes

Every fit reports the same latent distances of 1000 prior draws to 1000 codes (`latent_distances`):
exact W1 and the IMQ-kernel MMD^2 of WAE-MMD, and the W1 of N(0, I) for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from flexae.config import OptimConfig
from flexae.errors import UserError
from flexae.metrics.wasserstein import wasserstein1_exact
from flexae.priors import FLOW_SOLVERS, StandardNormalPrior
from flexae.runs.prior_file import KINDS, check_kind

DISTANCE_POINTS = 1000  # codes and prior draws compared after a fit (exact W1 is O(n^3))


@dataclass
class PriorFitConfig:
    """Settings of a prior fit; each kind reads its own (the rest are ignored)."""

    steps: int = 5000              # adversarial, flow-matching, 2s-vae: optimiser steps
    batch_size: int = 128          # codes per step
    noise_dim: int | None = None   # adversarial: m' of G_psi (default m)
    components: int = 10           # gmm: mixture components (AE/RAE+GMM's default)
    width: int = 256               # flow-matching, 2s-vae: MLP width (2s-vae's paper value: 1024)
    depth: int = 3                 # flow-matching, 2s-vae: hidden layers
    ode_steps: int = 32            # flow-matching: fixed ODE steps from noise to codes
    solver: str = "midpoint"       # flow-matching: "euler" or "midpoint"
    lr: float = 1e-3               # flow-matching: Adam lr (2s-vae: TwoStageOptions.second_stage_lr, 1e-4)

    def check(self) -> "PriorFitConfig":
        if self.steps < 1 or self.batch_size < 1 or self.components < 1 or self.width < 1 or self.depth < 1 \
                or self.ode_steps < 1 or (self.noise_dim is not None and self.noise_dim < 1):
            raise UserError(f"prior fit settings must be positive, got {self}")
        if self.solver not in FLOW_SOLVERS:
            raise UserError(f"--solver must be one of {', '.join(FLOW_SOLVERS)}, got {self.solver!r}")
        return self


@dataclass
class FittedPrior:
    kind: str
    module: nn.Module              # eval mode; sample(n, generator) -> (n, m)
    settings: dict[str, Any]       # plain values that rebuild the module (flexae.app.build.build_prior)
    stats: dict[str, float]


def fit_kind(kind: str, codes: Tensor, data_shape: tuple[int, ...], fit: PriorFitConfig | None = None,
             optim: OptimConfig | None = None, seed: int = 0, progress: bool = True) -> FittedPrior:
    """Fit a prior of `kind` to codes (N, m) of an encoder whose data have shape `data_shape`
    (it picks the adversarial prior's networks: Table 8 for images, Table 6 otherwise); `optim`:
    the adversarial fit's optimisers (the run's). Same seed, same codes: the same prior."""
    fit = (fit or PriorFitConfig()).check()
    check_kind(kind)
    _check_codes(codes)
    torch.manual_seed(seed)  # before the networks are built: their initialisation is part of the fit
    module, settings, stats = _FITS[kind](codes.detach().float(), data_shape, fit, optim, seed, progress)
    module.eval()
    return FittedPrior(kind, module, settings, {**stats, **latent_distances(module, codes, seed)})


def _fit_adversarial(codes, data_shape, fit, optim, seed, progress):
    from flexae.nets.factory import prior_networks
    from flexae.training.prior_fit import fit_learned_prior
    m = codes.shape[1]
    noise_dim = fit.noise_dim or m
    generator, critic = prior_networks(data_shape, m, noise_dim)
    prior, stats = fit_learned_prior(codes, generator, critic, noise_dim, optim, fit.steps, fit.batch_size, seed,
                                     progress)
    networks = "synthetic" if len(data_shape) == 1 else "image"
    return prior, {"noise_dim": noise_dim, "networks": networks}, stats


def _fit_gmm(codes, data_shape, fit, optim, seed, progress):
    from flexae.baselines.deterministic import ExPostGMMOptions, GaussianMixtureSampler
    from flexae.baselines.deterministic_train import fit_gmm
    sampler = GaussianMixtureSampler(fit.components, codes.shape[1]).to(codes.device)
    stats = fit_gmm(sampler, codes, ExPostGMMOptions(expost_gmm_components=fit.components), None, seed, progress)
    return sampler, {"components": fit.components}, stats


def _fit_flow_matching(codes, data_shape, fit, optim, seed, progress):
    from flexae.priors import FlowMatchingPrior
    from flexae.training.prior_fit import fit_flow_matching
    prior = FlowMatchingPrior(codes.shape[1], fit.width, fit.depth, fit.ode_steps, fit.solver)
    stats = fit_flow_matching(prior, codes, fit.steps, fit.batch_size, fit.lr, seed, progress)
    settings = {"width": fit.width, "depth": fit.depth, "ode_steps": fit.ode_steps, "solver": fit.solver}
    return prior, settings, stats


def _fit_second_stage(codes, data_shape, fit, optim, seed, progress):
    from flexae.baselines.variational import SecondStageVAE, TwoStageOptions
    from flexae.baselines.variational_train import fit_second_stage
    sampler = SecondStageVAE(codes.shape[1], fit.width, fit.depth).to(codes.device)
    hp = TwoStageOptions(sampler_steps=fit.steps, sampler_batch_size=fit.batch_size)  # 2s-vae's second_stage_lr
    # Deterministic codes: a posterior of zero spread (log sd = -inf gives z = mu exactly).
    targets = (codes.cpu(), torch.full_like(codes.cpu(), -float("inf")))
    stats = fit_second_stage(sampler, targets, hp, torch.Generator().manual_seed(seed), seed, progress)
    return sampler, {"width": fit.width, "depth": fit.depth}, stats


_FITS = {"adversarial": _fit_adversarial, "gmm": _fit_gmm, "flow-matching": _fit_flow_matching,
         "2s-vae": _fit_second_stage}
assert tuple(_FITS) == KINDS


@torch.no_grad()
def latent_distances(prior: nn.Module, codes: Tensor, seed: int = 0,
                     points: int = DISTANCE_POINTS) -> dict[str, float]:
    """Exact W1 and IMQ MMD^2 between up to `points` codes (N, m) and as many draws of `prior`,
    and the exact W1 of as many N(0, I_m) draws; the same codes (by `seed`) for every prior."""
    from flexae.baselines.losses import mmd_imq
    n = min(points, codes.shape[0])
    picked = codes[torch.randperm(codes.shape[0], generator=torch.Generator().manual_seed(seed))[:n].to(codes.device)]
    gen = torch.Generator(device=codes.device).manual_seed(seed)
    drawn = prior.sample(n, gen).float()                                   # (n, m)
    normal = StandardNormalPrior(codes.shape[1]).to(codes.device).sample(n, gen)
    # The kernel's scales follow the codes' spread (WAE-MMD sets them by the prior's variance).
    variance = float(picked.var(0).mean().clamp_min(1e-12))
    as_numpy = lambda t: t.cpu().double().numpy()  # noqa: E731
    return {"w1_prior": wasserstein1_exact(as_numpy(drawn), as_numpy(picked)),
            "mmd_prior": float(mmd_imq(picked.double(), drawn.double(), variance)),
            "w1_standard_normal": wasserstein1_exact(as_numpy(normal), as_numpy(picked)),
            "codes": float(codes.shape[0])}


def _check_codes(codes: Any) -> None:
    if not isinstance(codes, Tensor) or codes.dim() != 2 or not codes.is_floating_point():
        shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise UserError(f"codes must be a float tensor (N, m), got {shape}")
    if codes.shape[0] < 2 or not torch.isfinite(codes).all():
        raise UserError(f"a prior fit needs at least 2 finite codes, got {codes.shape[0]} (or NaN / infinity)")


__all__ = ["KINDS", "PriorFitConfig", "FittedPrior", "fit_kind", "latent_distances"]
