"""A FlexAE prior learned after the fact: the generator G_psi and the WGAN-GP latent critic C_kappa
of Algorithm 1, trained on the *frozen* codes z = E(x) of an already trained auto-encoder (any
flexae run with deterministic codes, or a user's own encoder). Only lines 4-5 (critic) and 9
(L_Gen) of Algorithm 1 run, with the paper's optimisers (optim.critic, optim.gen) and critic
ratio (optim.critic_steps); the encoder and decoder are never updated, so reconstructions stay
exactly those of the trained model and only generation changes: D(G_psi(n)), n ~ N(0, I_m').
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flexae import losses
from flexae.config import OptimConfig
from flexae.errors import UserError
from flexae.eta import Notice, synchronizer, timed
from flexae.finite import nonfinite_names
from flexae.metrics.wasserstein import wasserstein1_exact
from flexae.priors import FlowMatchingPrior, LearnedPrior, StandardNormalPrior
from flexae.training.steps import frozen, make_adam, update

W1_POINTS = 1000  # codes and prior samples compared by the exact W1 after the fit


def fit_learned_prior(codes: Tensor, generator: nn.Module, critic: nn.Module, noise_dim: int,
                      optim: OptimConfig | None = None, steps: int = 5000, batch_size: int = 128,
                      seed: int = 0, progress: bool = True) -> tuple[LearnedPrior, dict[str, float]]:
    """Train `generator` (noise (N, noise_dim) -> (N, m)) against `critic` ((N, m) -> (N, 1)) so
    that G(n) matches the codes (N, m). Returns the LearnedPrior (eval mode, codes' device) and
    statistics: the last critic estimate of W1, and the exact W1 to 1000 codes of the learned prior
    and of N(0, I) for comparison."""
    codes = _check_codes(codes)
    if steps < 1 or batch_size < 1:
        raise UserError(f"the prior fit needs positive steps and batch size, got {steps} and {batch_size}")
    optim = optim or OptimConfig()
    device = codes.device
    torch.manual_seed(seed)
    prior = LearnedPrior(generator, noise_dim).to(device).train()
    critic = critic.to(device).train()
    opt_critic, opt_gen = make_adam(critic.parameters(), optim.critic), make_adam(prior.parameters(), optim.gen)

    def batch() -> Tensor:  # uniform with replacement, as the training loop draws its batches
        return codes[torch.randint(0, codes.shape[0], (batch_size,), device=device)]

    w = loss_gen = torch.zeros(())
    notice = Notice(f"{steps} prior-fit iterations", steps, "pass --steps N for fewer", str(device),
                    enabled=progress, sync=synchronizer(device))
    for _ in timed(tqdm(range(steps), desc="fitting the prior", disable=not progress, dynamic_ncols=True), notice):
        for _ in range(optim.critic_steps):                          # Algorithm 1, lines 4-5
            with torch.no_grad():
                fake = prior.sample(batch_size)
            loss, w = losses.wasserstein_critic_loss(critic, batch(), fake, optim.gp_weight)
            update(opt_critic, loss)
        with frozen(critic):                                         # line 9: L_Gen
            loss_gen = update(opt_gen, losses.generator_loss(critic, prior.sample(batch_size)))
    prior.eval()
    _check_converged(prior, critic, {"w_critic": w, "loss_gen": loss_gen}, steps)
    return prior, {"steps": float(steps), "w_critic": float(w), "loss_gen": float(loss_gen),
                   **latent_w1(prior, codes, seed)}


def fit_flow_matching(prior: FlowMatchingPrior, codes: Tensor, steps: int = 5000, batch_size: int = 256,
                      lr: float = 1e-3, seed: int = 0, progress: bool = True) -> dict[str, float]:
    """Train the velocity field of `prior` on codes (N, m) by conditional flow matching with the
    linear path: x_t = (1 - t) x_0 + t x_1, x_0 ~ N(0, I), x_1 a standardised code, t ~ U(0, 1),
    loss ||v(x_t, t) - (x_1 - x_0)||^2 averaged over the batch (per coordinate). Adam at `lr`;
    the prior's shift and scale are set to the codes' mean and std first. Returns its last loss."""
    codes = _check_codes(codes)
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise UserError(f"the flow-matching fit needs positive steps, batch size and lr, got {steps}, {batch_size}, {lr}")
    device = codes.device
    prior = prior.to(device).train()
    with torch.no_grad():  # std 0 in a coordinate (a dead code unit): keep it at scale 1
        std = codes.std(0)
        prior.shift.copy_(codes.mean(0))
        prior.scale.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
    standardised = (codes - prior.shift) / prior.scale                       # (N, m)
    gen = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(prior.velocity_net.parameters(), lr=lr)
    loss = torch.zeros(())
    for _ in tqdm(range(steps), desc="flow matching", disable=not progress, dynamic_ncols=True):
        x1 = standardised[torch.randint(0, codes.shape[0], (batch_size,), device=device, generator=gen)]
        x0 = torch.randn(x1.shape, device=device, generator=gen)           # (B, m)
        t = torch.rand(batch_size, device=device, generator=gen)            # (B,)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = update(optimizer, (prior.velocity(xt, t) - (x1 - x0)).pow(2).mean())
    prior.eval()
    _check_converged(prior, nn.Identity(), {"loss_fm": loss}, steps, "lower the flow-matching lr")
    return {"steps": float(steps), "loss_fm": float(loss)}


def _check_converged(prior: nn.Module, critic: nn.Module, last: dict[str, Tensor], steps: int,
                     hint: str = "lower optim.gen.lr / optim.critic.lr or raise optim.gp_weight") -> None:
    """A fit whose losses or weights went NaN / infinite stops with one line (before the exact W1
    of its samples, which cannot be computed then, and before anything is written)."""
    bad = nonfinite_names({"loss": dict(last), "generator": prior.state_dict(), "critic": critic.state_dict()})
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"the prior fit diverged: {bad[0]}{more} is NaN or infinite after {steps} steps; "
                        f"nothing was written ({hint})")


@torch.no_grad()
def latent_w1(prior: nn.Module, codes: Tensor, seed: int = 0) -> dict[str, float]:
    """Exact W1 between up to 1000 codes and as many draws of `prior` and of N(0, I_m)."""
    n = min(W1_POINTS, codes.shape[0])
    gen = torch.Generator(device=codes.device).manual_seed(seed)
    picked = codes[torch.randperm(codes.shape[0], generator=gen, device=codes.device)[:n]].cpu().double().numpy()
    normal = StandardNormalPrior(codes.shape[1]).to(codes.device)
    return {"w1_learned_prior": wasserstein1_exact(prior.sample(n, gen).cpu().double().numpy(), picked),
            "w1_standard_normal": wasserstein1_exact(normal.sample(n, gen).cpu().double().numpy(), picked),
            "codes": float(codes.shape[0])}


def _check_codes(codes: Any) -> Tensor:
    if not isinstance(codes, Tensor) or codes.dim() != 2 or not codes.is_floating_point():
        shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise UserError(f"codes must be a float tensor (N, m), got {shape}")
    if codes.shape[0] < 2:
        raise UserError(f"the prior fit needs at least 2 codes, got {codes.shape[0]}")
    if not torch.isfinite(codes).all():
        raise UserError("codes contain NaN or infinite values")
    return codes.detach().float()
