"""Training steps. A trainer owns the optimizers of one model and performs one iteration per
`step()` call; each update is a small method that makes its own forward pass, zeroes one named
optimizer, back-propagates and steps, so `AdversarialTrainer.step` reads like Algorithm 1.

Loss values are returned as detached tensors: converting them to floats (a host-device sync) is
left to the logger, which does it only every `log_every` iterations.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.config import Adam, OptimConfig
from flexae.models import VAE, AdversarialAE, AutoEncoder
from flexae.nets.common import requires_grad

BatchSource = Callable[[], Tensor]  # returns a fresh real batch (B, ...) on the model's device


def make_adam(params, cfg: Adam) -> torch.optim.Adam:
    # foreach: one multi-tensor kernel per Adam step instead of a Python loop over parameters.
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, foreach=True)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Let gradients flow *through* `module` without computing gradients for its parameters."""
    requires_grad(module, False)
    try:
        yield
    finally:
        requires_grad(module, True)


def _update(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class Trainer:
    """Common interface: `optimizers` (name -> optimizer, saved in checkpoints) and `step()`."""

    optimizers: dict[str, torch.optim.Optimizer]

    def step(self) -> dict[str, Tensor]:
        raise NotImplementedError


class AdversarialTrainer(Trainer):
    """Algorithm 1 of the paper for FlexAE-SR, and its sub-cases:

    - FlexAE: no smoothing critic, so no L_Reg / L_AE_Reg updates.
    - WAE, WAE-GMM: the prior is fixed, so no L_Gen update; everything else is identical, which
      keeps the comparison with FlexAE at equal networks, optimisers and budget.
    """

    def __init__(self, model: AdversarialAE, cfg: OptimConfig, batches: BatchSource):
        self.model, self.cfg, self.batches = model, cfg, batches
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.optimizers = {"ae": make_adam(autoencoder, cfg.ae),
                           "critic": make_adam(model.latent_critic.parameters(), cfg.critic),
                           "enc": make_adam(model.encoder.parameters(), cfg.enc)}
        if model.prior.learnable:
            self.optimizers["gen"] = make_adam(model.prior.parameters(), cfg.gen)
        if model.smoothing_critic is not None:
            self.optimizers["reg"] = make_adam(model.smoothing_critic.parameters(), cfg.reg)
            self.optimizers["ae_reg"] = make_adam(autoencoder, cfg.ae_reg)

    # -- one iteration -------------------------------------------------------------------------
    def step(self) -> dict[str, Tensor]:
        m, logs = self.model, {}
        logs["loss_ae"] = self.update_ae(self.batches())                      # line 3
        for _ in range(self.cfg.critic_steps):                                # line 4
            x = self.batches()
            logs["loss_critic"], logs["w_critic"] = self.update_critic(x)     # line 5
            if m.smoothing_critic is not None:
                x_reg = x if self.cfg.feed == "code" else self.batches()
                logs["loss_reg"] = self.update_reg(x_reg, self.batches())     # line 6
        feed = (lambda: x) if self.cfg.feed == "code" else self.batches
        if m.smoothing_critic is not None:
            logs["loss_ae_reg"] = self.update_ae_reg(feed(), self.batches())  # line 8
        if m.prior.learnable:
            logs["loss_gen"] = self.update_gen(x.shape[0])                    # line 9
        logs["loss_enc"] = self.update_enc(feed())                            # line 10
        return logs

    # -- the updates ---------------------------------------------------------------------------
    def update_ae(self, x: Tensor) -> Tensor:
        """Minimise L_AE, update E and D."""
        return _update(self.optimizers["ae"], losses.reconstruction_loss(self.model.reconstruct(x), x))

    def update_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Minimise L_Critic, update C_kappa. Codes are "real", prior samples "fake"."""
        with torch.no_grad():
            z, z_hat = self.model.encode(x), self.model.sample_latent(x.shape[0])
        loss, w = losses.wasserstein_critic_loss(self.model.latent_critic, z, z_hat, self.cfg.gp_weight)
        return _update(self.optimizers["critic"], loss), w

    def update_reg(self, x: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_Reg, update C_zeta: real images vs decoded interpolations of two batches' codes."""
        with torch.no_grad():
            x_inp = self.model.decode(losses.interpolate(self.model.encode(x), self.model.encode(x_k)))
        loss, _ = losses.wasserstein_critic_loss(self.model.smoothing_critic, x, x_inp, self.cfg.gp_weight)
        return _update(self.optimizers["reg"], loss)

    def update_ae_reg(self, x_j: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_AE_Reg, update E and D so decoded interpolations look real to C_zeta."""
        z_inp = losses.interpolate(self.model.encode(x_j), self.model.encode(x_k))
        with frozen(self.model.smoothing_critic):
            loss = losses.generator_loss(self.model.smoothing_critic, self.model.decode(z_inp))
        return _update(self.optimizers["ae_reg"], loss)

    def update_gen(self, n: int) -> Tensor:
        """Minimise L_Gen, update G_psi: prior samples move toward the encoder codes."""
        with frozen(self.model.latent_critic):
            loss = losses.generator_loss(self.model.latent_critic, self.model.sample_latent(n))
        return _update(self.optimizers["gen"], loss)

    def update_enc(self, x: Tensor) -> Tensor:
        """Minimise L_Enc, update E: encoder codes move toward the prior (tiny learning rate)."""
        with frozen(self.model.latent_critic):
            loss = losses.encoder_pull_loss(self.model.latent_critic, self.model.encode(x))
        return _update(self.optimizers["enc"], loss)


class VAETrainer(Trainer):
    """One update per iteration: reconstruction (the same summed squared error as L_AE) + KL."""

    def __init__(self, model: VAE, cfg: OptimConfig, batches: BatchSource):
        self.model, self.cfg, self.batches = model, cfg, batches
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        x = self.batches()
        mu, logvar = self.model.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = losses.reconstruction_loss(self.model.decode(z), x)
        kl = losses.kl_standard_normal(mu, logvar)
        _update(self.optimizers["ae"], rec + kl)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach()}


def make_trainer(model: AutoEncoder, cfg: OptimConfig, batches: BatchSource) -> Trainer:
    from flexae.baselines.registry import baseline_trainer  # imported here: it imports this module
    if (trainer := baseline_trainer(model, cfg, batches)) is not None:
        return trainer
    if isinstance(model, VAE):
        return VAETrainer(model, cfg, batches)
    if isinstance(model, AdversarialAE):
        return AdversarialTrainer(model, cfg, batches)
    raise TypeError(f"no trainer for {type(model).__name__}")
