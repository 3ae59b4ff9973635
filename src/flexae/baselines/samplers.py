"""Ex-post samplers: densities fitted to a *trained* model's codes, used for generation.

- `GaussianMixtureSampler` (ae-gmm, rae-gmm; Ghosh et al. 2020): a K-component full-covariance GMM
  fitted with scikit-learn on the codes of training images; stored as tensors (weights, means,
  covariances), sampled with torch.
- `SecondStageVAE` (2s-vae; Dai & Wipf 2019): a VAE on the first stage's codes.
- `CodePrior` (vq-vae; van den Oord et al. 2017): an autoregressive model over code indices.

Each is the `prior` submodule of its model, with a `fitted` flag buffer. The fit is a separate step
of a run (`fit_and_save`, CLI `flexae fit-sampler RUN_DIR`, also called at the end of training)
that writes `RUN_DIR/sampler.pt`: the sampler's state dict (tensors only), the training step it was
fitted at and fit statistics, loaded with `torch.load(weights_only=True)` by `load_into`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flexae.baselines import losses as bl
from flexae.config import BaselineConfig
from flexae.errors import UserError
from flexae.losses import kl_standard_normal

SAMPLER_NAME = "sampler.pt"


class FittedFlag(nn.Module):
    """Base for ex-post samplers: a persistent `fitted` buffer saved with the state dict.

    Subclasses implement `_sample`; `sample(n, generator) -> (n, m)` refuses to draw from an
    unfitted sampler, so `model.generate` and anything drawing `model.prior.sample` get a UserError.
    """

    learnable = False  # never trained with the first stage (AdversarialTrainer reads this flag)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if not self.is_fitted:
            raise UserError(f"this model generates through an ex-post sampler ({type(self).__name__}) that has "
                            f"not been fitted yet; run `flexae fit-sampler RUN_DIR` (it also runs at the end "
                            f"of `flexae train`)")
        return self._sample(n, generator)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# GMM (ae-gmm, rae-gmm)


class GaussianMixtureSampler(FittedFlag):
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

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        """(n, m): pick a component per sample, then mu_k + L_k eps with L_k L_k^T = S_k."""
        device = self.means.device
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)          # (n,)
        eps = torch.randn(n, self.means.shape[1], 1, device=device, generator=generator)       # (n, m, 1)
        # Cholesky in float64 on the CPU: exact enough for near-singular code covariances.
        chol = torch.linalg.cholesky(self.covariances.double().cpu()).to(device, self.means.dtype)
        return self.means[k] + (chol[k] @ eps).squeeze(-1)


def fit_gmm(sampler: GaussianMixtureSampler, codes: Tensor, seed: int) -> dict[str, float]:
    """Fit the GMM to codes (N, m) with scikit-learn's EM (full covariances); store it as tensors."""
    from sklearn.mixture import GaussianMixture

    components, dim = sampler.means.shape
    if codes.shape[0] < components:
        raise UserError(f"cannot fit a {components}-component GMM to {codes.shape[0]} codes")
    data = codes.double().cpu().numpy()
    gmm = GaussianMixture(n_components=components, covariance_type="full", max_iter=500,
                          random_state=seed).fit(data)
    sampler.set_parameters(*(torch.as_tensor(np.asarray(a), dtype=torch.float32)
                             for a in (gmm.weights_, gmm.means_, gmm.covariances_)))
    return {"gmm_avg_log_likelihood": float(gmm.score(data)), "gmm_converged": float(gmm.converged_)}


# ----------------------------------------------------------------------------------------------
# Second-stage VAE (2s-vae)


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


class SecondStageVAE(FittedFlag):
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

    def loss(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(negative ELBO, reconstruction NLL, KL) for a batch of codes z (B, m)."""
        mu, log_sd = self.encoder(z).chunk(2, dim=1)
        u = mu + torch.randn_like(mu) * log_sd.exp()
        nll = bl.gaussian_nll_learned_scale(z, self.decoder(u), self.log_gamma)
        kl = kl_standard_normal(mu, 2 * log_sd)
        return nll + kl, nll, kl

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        device = self.log_gamma.device
        u = torch.randn(n, self.dim, device=device, generator=generator)
        noise = torch.randn(n, self.dim, device=device, generator=generator)
        return self.decoder(u) + self.log_gamma.exp() * noise


def fit_second_stage(sampler: SecondStageVAE, mu: Tensor, log_sd: Tensor, cfg: BaselineConfig,
                     generator: torch.Generator, progress: bool) -> dict[str, float]:
    """Train the second stage on z = mu + sd * eps, a fresh draw from the first stage's posterior
    for every minibatch (the authors' code); Adam, `cfg.sampler_steps` iterations."""
    optimizer = torch.optim.Adam(sampler.parameters(), lr=cfg.second_stage_lr)
    sampler.train()
    loss = nll = kl = torch.zeros(())
    for _ in tqdm(range(cfg.sampler_steps), desc="2nd-stage VAE", disable=not progress, dynamic_ncols=True):
        idx = torch.randint(0, mu.shape[0], (cfg.sampler_batch_size,), generator=generator)
        eps = torch.randn(len(idx), mu.shape[1], generator=generator)
        z = (mu[idx] + eps * log_sd[idx].exp()).to(sampler.log_gamma.device)
        loss, nll, kl = sampler.loss(z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sampler.fitted.fill_(True)
    return {"stage2_loss": float(loss.detach()), "stage2_nll": float(nll.detach()), "stage2_kl": float(kl.detach()),
            "stage2_gamma": float(sampler.log_gamma.detach().exp())}


# ----------------------------------------------------------------------------------------------
# Autoregressive prior over VQ code indices (vq-vae)


class CodePrior(FittedFlag):
    """p(k_1..k_L) = prod_i p(k_i | k_<i): a small causal transformer over the L code indices.

    Tokens are shifted right behind a start token, so logits[:, i] predict k_i from k_<i.
    `sample` returns codes: `embed` maps drawn indices (n, L) to latent vectors (n, L * D) (the
    VQ-VAE's codebook lookup; kept as a plain callable so the codebook stays the VQ-VAE's own).
    """

    def __init__(self, length: int, codebook_size: int, embed: Callable[[Tensor], Tensor],
                 width: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.length, self.codebook_size, self.embed = length, codebook_size, embed
        self.token = nn.Embedding(codebook_size + 1, width)    # index K is the start token
        self.position = nn.Parameter(torch.zeros(length, width))
        nn.init.normal_(self.position, std=0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codebook_size))
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def logits(self, indices: Tensor) -> Tensor:
        """indices (B, t) with t <= L -> logits (B, t, K) of k_1..k_t given the preceding indices."""
        b, t = indices.shape
        start = torch.full((b, 1), self.codebook_size, dtype=torch.long, device=indices.device)
        tokens = torch.cat([start, indices[:, :-1]], dim=1)                    # (B, t)
        h = self.token(tokens) + self.position[:t]                             # (B, t, width)
        h = self.blocks(h, mask=self.causal_mask[:t, :t], is_causal=True)
        return self.head(h)

    def nll(self, indices: Tensor) -> Tensor:
        """Mean negative log-likelihood per code index (nats)."""
        logits = self.logits(indices)
        return nn.functional.cross_entropy(logits.reshape(-1, self.codebook_size), indices.reshape(-1))

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.embed(self.sample_indices(n, generator))

    @torch.no_grad()
    def sample_indices(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, L) code indices, drawn one position at a time."""
        device = self.position.device
        out = torch.zeros(n, self.length, dtype=torch.long, device=device)
        for i in range(self.length):
            # Feeding the first i+1 positions: position i only sees the start token and out[:, :i].
            probs = self.logits(out[:, :i + 1])[:, i].softmax(dim=-1)           # (n, K)
            out[:, i] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return out


def fit_code_prior(prior: CodePrior, indices: Tensor, cfg: BaselineConfig, generator: torch.Generator,
                   progress: bool) -> dict[str, float]:
    """Maximum likelihood on the code indices (N, L) of training images; Adam, `cfg.sampler_steps`."""
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.vq_prior_lr)
    prior.train()
    device = prior.position.device
    loss = torch.zeros(())
    for _ in tqdm(range(cfg.sampler_steps), desc="VQ code prior", disable=not progress, dynamic_ncols=True):
        idx = torch.randint(0, indices.shape[0], (cfg.sampler_batch_size,), generator=generator)
        loss = prior.nll(indices[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    prior.eval()
    prior.fitted.fill_(True)
    used = int(indices.unique().numel())
    return {"prior_nll_per_index": float(loss.detach()), "codes_used": float(used),
            "uniform_nll": math.log(prior.codebook_size)}


# ----------------------------------------------------------------------------------------------
# The fit step of a run


def expost_sampler(model: nn.Module) -> FittedFlag | None:
    """The model's ex-post sampler, or None for models that sample a fixed or trained prior."""
    prior = getattr(model, "prior", None)
    return prior if isinstance(prior, FittedFlag) else None


def sampler_ready(model: nn.Module) -> bool:
    """True unless the model needs an ex-post sampler that is not fitted yet."""
    sampler = expost_sampler(model)
    return sampler is None or sampler.is_fitted


@torch.no_grad()
def _encode_all(encode: Callable[[Tensor], Any], images: Tensor, device: torch.device,
                batch: int = 500) -> Any:
    """Apply `encode` (eval mode) to data (N, ...) in chunks; concatenates tensors or tuples."""
    from flexae.data import as_float

    parts = [encode(as_float(images[i:i + batch]).to(device)) for i in range(0, images.shape[0], batch)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[j] for p in parts]).cpu() for j in range(len(parts[0])))
    return torch.cat(parts).cpu()


def fit(model: nn.Module, train_data: Tensor, cfg: BaselineConfig, seed: int = 0,
        progress: bool = False) -> dict[str, float]:
    """Fit the model's ex-post sampler on (up to `cfg.sampler_fit_points`) training data.

    The first stage is used in eval mode (the BatchNorm statistics generation will use); returns
    fit statistics. Raises TypeError for models without an ex-post sampler.
    """
    sampler = expost_sampler(model)
    if sampler is None:
        raise TypeError(f"{type(model).__name__} has no ex-post sampler")
    generator = torch.Generator().manual_seed(seed)
    if 0 < cfg.sampler_fit_points < train_data.shape[0]:
        train_data = train_data[torch.randperm(train_data.shape[0], generator=generator)[:cfg.sampler_fit_points]]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        targets = _encode_all(model.sampler_targets, train_data, device)  # type: ignore[operator]
        if isinstance(sampler, GaussianMixtureSampler):
            stats = fit_gmm(sampler, targets, seed)
        elif isinstance(sampler, SecondStageVAE):
            stats = fit_second_stage(sampler, *targets, cfg, generator, progress)
        elif isinstance(sampler, CodePrior):
            stats = fit_code_prior(sampler, targets, cfg, generator, progress)
        else:
            raise TypeError(f"no fit for {type(sampler).__name__}")
    finally:
        model.train(was_training)
    return stats


def first_stage_fingerprint(model: nn.Module) -> float:
    """Sum of |values| of every floating-point tensor of the model outside its sampler: a cheap
    check that a saved sampler belongs to these weights (e.g. not to an overwritten earlier run)."""
    return sum(float(t.detach().double().abs().sum()) for name, t in model.state_dict().items()
               if not name.startswith("prior.") and t.is_floating_point())


def save(run_dir: Path, model: nn.Module, step: int, stats: dict[str, float]) -> Path:
    """Write RUN_DIR/sampler.pt atomically: the sampler's tensors, the step, the fit statistics."""
    sampler = expost_sampler(model)
    assert sampler is not None and sampler.is_fitted
    state = {"step": int(step), "fingerprint": first_stage_fingerprint(model), "stats": stats,
             "sampler": {k: v.detach().cpu() for k, v in sampler.state_dict().items()}}
    path = Path(run_dir) / SAMPLER_NAME
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_sampler_file(path: Path) -> dict[str, Any]:
    """RUN_DIR/sampler.pt as {"step": int, "fingerprint": float, "sampler": dict}, or a UserError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged file or refused unpickling
        raise UserError(f"cannot load ex-post sampler {path}: {_first_line(exc)}") from None
    try:
        return {"step": int(state["step"]), "fingerprint": float(state["fingerprint"]),
                "sampler": dict(state["sampler"])}
    except (KeyError, TypeError, ValueError, IndexError):
        raise UserError(f"{path} is not an ex-post sampler file (expected step, fingerprint and sampler); "
                        f"run `flexae fit-sampler {path.parent}` to write it again") from None


def load_into(model: nn.Module, run_dir: Path, step: int | None = None) -> bool:
    """Load RUN_DIR/sampler.pt into the model's sampler if there is one; returns True if loaded.

    A sampler fitted at another training step than `step` (the checkpoint's) or to other weights is
    stale: it is not loaded (with a warning), so generation asks for `flexae fit-sampler`.
    """
    sampler = expost_sampler(model)
    path = Path(run_dir) / SAMPLER_NAME
    if sampler is None or not path.is_file():
        return False
    state = _read_sampler_file(path)
    stale = step is not None and state["step"] != int(step)
    if stale or not math.isclose(state["fingerprint"], first_stage_fingerprint(model), rel_tol=1e-6):
        warnings.warn(f"{path} was fitted to other weights than the checkpoint's (step {state['step']}); "
                      f"not loaded: run `flexae fit-sampler {run_dir}` again", stacklevel=2)
        return False
    try:
        sampler.load_state_dict(state["sampler"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # another model's or a garbled sampler
        raise UserError(f"{path} does not fit this model's sampler ({_first_line(exc)}); "
                        f"run `flexae fit-sampler {run_dir}` again") from None
    return True


def fit_and_save(model: nn.Module, run_dir: Path, train_data: Tensor, cfg: BaselineConfig, step: int,
                 seed: int = 0, progress: bool = False,
                 log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, float]:
    """The fit step of a run: fit, save RUN_DIR/sampler.pt and log the statistics."""
    stats = fit(model, train_data, cfg, seed, progress)
    save(run_dir, model, step, stats)
    if log is not None:
        log({"step": int(step), "sampler_fit": json.loads(json.dumps(stats))})
    return stats


def ensure_fitted(model: nn.Module, run_dir: Path, train_data: Tensor, cfg: BaselineConfig, step: int,
                  seed: int = 0, progress: bool = False,
                  log: Callable[[dict[str, Any]], None] | None = None) -> None:
    """End of training: reuse RUN_DIR/sampler.pt if it was fitted at `step`, else fit and save.
    A no-op for models without an ex-post sampler."""
    if expost_sampler(model) is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stale sampler is simply refitted
        if load_into(model, run_dir, step):
            return
    fit_and_save(model, run_dir, train_data, cfg, step, seed, progress, log)


def fit_run(run_dir: str | Path, *, steps: int | None = None, fit_points: int | None = None,
            data_dir: str | None = None, device: str = "cpu", progress: bool = True) -> dict[str, float]:
    """`flexae fit-sampler RUN_DIR`: fit the ex-post sampler of a trained run and save sampler.pt.

    `steps` / `fit_points` override the config's `sampler_steps` / `sampler_fit_points` for this fit.
    """
    import dataclasses

    from flexae.data import load_dataset
    from flexae.runs import load_run
    from flexae.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

    run_dir = Path(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stale sampler.pt is what this command replaces
        model, cfg = load_run(run_dir, device)
    if expost_sampler(model) is None:
        raise UserError(f"{cfg.model.name} has no ex-post sampler to fit (only ae-gmm, rae-gmm, 2s-vae and vq-vae do)")
    hp = cfg.model.baseline
    hp = dataclasses.replace(hp, sampler_steps=hp.sampler_steps if steps is None else steps,
                             sampler_fit_points=hp.sampler_fit_points if fit_points is None else fit_points)
    if hp.sampler_steps < 1 or hp.sampler_fit_points < 0:
        raise UserError("--steps must be positive and --fit-points >= 0")
    step = int(load_checkpoint(run_dir / CHECKPOINT_NAME)["step"])
    data = load_dataset(cfg.train.dataset, data_dir or cfg.train.data_dir, cfg.train.data_seed)
    log_path = run_dir / "log.jsonl"

    def log(record: dict[str, Any]) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    stats = fit_and_save(model, run_dir, data.train, hp, step, cfg.train.seed, progress, log)
    return {**stats, "sampler_steps": float(hp.sampler_steps)}
