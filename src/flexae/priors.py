"""Latent priors: the learned prior of FlexAE (a generator G_psi fed Gaussian noise), the fixed
priors of the baselines, and the base of the ex-post samplers some baselines fit after training.
Every prior is an nn.Module with `sample(n) -> (n, m)` on its own device.

`trained_by_gen`: True only for a prior whose parameters the L_Gen update of Algorithm 1 trains
(FlexAE's G_psi). Priors with parameters trained another way (VampPrior's pseudo-inputs, by the
ELBO) or fitted after training (`ExPostSampler`) say False.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from flexae.data.synthetic import COMPONENTS
from flexae.errors import UserError


class LearnedPrior(nn.Module):
    """P_psi: z_hat = G_psi(n), n ~ N(0, I_m'). Its parameters are trained by L_Gen."""

    trained_by_gen = True

    def __init__(self, generator: nn.Module, noise_dim: int):
        super().__init__()
        self.generator = generator
        self.noise_dim = noise_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, device=self._anchor.device, generator=generator)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(noise)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(self.noise(n, generator))


class StandardNormalPrior(nn.Module):
    """The fixed prior N(0, I_m) of WAE and VAE."""

    trained_by_gen = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self._anchor.device, generator=generator)


class GaussianMixturePrior(nn.Module):
    """A fixed, equally weighted mixture of isotropic Gaussians (WAE-GMM).

    The paper does not give the mixture. Two layouts, both fixed before training (never fitted to
    codes, which would make WAE-GMM another model), chosen by `model.gmm_layout`:
    - "circle" (default): K means evenly on a circle of radius r in the first two latent
      coordinates (zeros elsewhere), each with standard deviation `std`.
    - "supplement": the true latent mixture of the synthetic data (supplement 7.1): its 6 means in
      the first min(m, 5) coordinates and its per-component variances; an oracle prior that knows
      how the data were made.
    """

    trained_by_gen = False

    def __init__(self, means: torch.Tensor, stds: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.float())  # (K, m)
        # (K,); rebuilt from the config, so checkpoints written before it existed still load.
        self.register_buffer("stds", stds.float(), persistent=False)

    @classmethod
    def on_circle(cls, latent_dim: int, components: int = 6, radius: float = 4.0,
                  std: float = 1.0) -> "GaussianMixturePrior":
        angles = torch.arange(components, dtype=torch.float32) * (2 * math.pi / components)
        means = torch.zeros(components, latent_dim)
        means[:, 0] = radius * torch.cos(angles)
        if latent_dim > 1:
            means[:, 1] = radius * torch.sin(angles)
        return cls(means, torch.full((components,), float(std)))

    @classmethod
    def from_supplement(cls, latent_dim: int) -> "GaussianMixturePrior":
        """The synthetic data's own latent mixture (flexae.data.synthetic.COMPONENTS)."""
        n = min(latent_dim, len(COMPONENTS[0][0]))
        means = torch.zeros(len(COMPONENTS), latent_dim)
        means[:, :n] = torch.tensor([mean[:n] for mean, _ in COMPONENTS])
        stds = torch.tensor([math.sqrt(var) for _, var in COMPONENTS])
        return cls(means, stds)

    @property
    def std(self) -> torch.Tensor:
        return self.stds

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.randint(0, self.means.shape[0], (n,), device=self.means.device, generator=generator)
        noise = torch.randn(n, self.means.shape[1], device=self.means.device, generator=generator)
        return self.means[k] + self.stds[k, None] * noise


class ExPostSampler(nn.Module):
    """Base of the ex-post samplers (a GMM, a second-stage VAE, a code prior) that some baselines
    fit to a *trained* model's codes: a persistent `fitted` flag saved with the state dict.

    Subclasses implement `_sample`; `sample(n, generator) -> (n, m)` refuses to draw from an
    unfitted sampler, so `model.generate` and anything drawing `model.prior.sample` get a UserError.
    """

    trained_by_gen = False  # fitted after the first stage, never by its updates

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.is_fitted:
            raise UserError(f"this model generates through an ex-post sampler ({type(self).__name__}) that has "
                            f"not been fitted yet; run `flexae fit-sampler RUN_DIR` (it also runs at the end "
                            f"of `flexae train`)")
        return self._sample(n, generator)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


FLOW_SOLVERS = ("euler", "midpoint")


class FlowMatchingPrior(nn.Module):
    """A prior over codes z (m) by flow matching (Lipman et al., ICLR 2023; the linear path of
    rectified flow, Liu et al., ICLR 2023): an MLP velocity field v(x, t) carries noise x_0 ~
    N(0, I_m) at t = 0 to codes at t = 1 along dx/dt = v(x, t), integrated by a fixed-step ODE
    solver ("euler" or "midpoint", `ode_steps` steps). It works on standardised codes
    (z - shift) / scale, with shift, scale (m,) the codes' mean and std, because an AE's codes are
    not of unit scale and the path starts at N(0, I). Trained by flexae.app.prior_kinds.

    Like LearnedPrior it splits a draw into `noise(n)` (n, m) and the deterministic `forward(noise)`,
    so a sample depends only on its noise (flexae.inference draws row i with seed + i)."""

    trained_by_gen = False

    def __init__(self, dim: int, width: int = 256, depth: int = 3, ode_steps: int = 32, solver: str = "midpoint"):
        super().__init__()
        if solver not in FLOW_SOLVERS:
            raise UserError(f"the flow-matching solver must be one of {', '.join(FLOW_SOLVERS)}, got {solver!r}")
        if ode_steps < 1 or width < 1 or depth < 1:
            raise UserError(f"the flow-matching prior needs positive steps, width and depth, got "
                            f"{ode_steps}, {width}, {depth}")
        self.dim, self.ode_steps, self.solver = dim, int(ode_steps), solver
        layers: list[nn.Module] = []
        for i in range(depth):  # input: x (m) and t (1)
            layers += [nn.Linear(dim + 1 if i == 0 else width, width), nn.SiLU()]
        self.velocity_net = nn.Sequential(*layers, nn.Linear(width, dim))
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x, t): x (N, m) standardised, t (N,) in [0, 1] -> (N, m)."""
        return self.velocity_net(torch.cat([x, t[:, None]], dim=1))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, device=self.shift.device, generator=generator)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Integrate dx/dt = v(x, t) from t = 0 (x = noise (N, m)) to t = 1; codes (N, m)."""
        x, dt = noise, 1.0 / self.ode_steps
        for i in range(self.ode_steps):
            t = torch.full((x.shape[0],), i * dt, device=x.device, dtype=x.dtype)
            if self.solver == "euler":
                x = x + dt * self.velocity(x, t)
            else:  # midpoint: the velocity half a step ahead
                x = x + dt * self.velocity(x + 0.5 * dt * self.velocity(x, t), t + 0.5 * dt)
        return x * self.scale + self.shift

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(self.noise(n, generator))
