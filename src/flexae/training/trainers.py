"""The trainers of the paper's models (FlexAE, FlexAE-SR, WAE, WAE-GMM, VAE). A trainer owns the
optimizers of one model and performs one iteration per `step()` call; each update is a small
method that makes its own forward pass, zeroes one named optimizer, back-propagates and steps, so
`AdversarialTrainer.step` reads like Algorithm 1. Building blocks: flexae.training.steps.

Loss values are returned as detached tensors: converting them to floats (a host-device sync) is
left to the logger, which does it only every `log_every` iterations.

How a step runs (precision, memory format) is set by `StepOptions` (flexae.training.precision)
and never changes what it computes: auto-encoder passes go through `ae_pass` (the only place a low
precision may apply), everything else runs in fp32. docs/performance.md has the measurements.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flexae import losses
from flexae.config import OptimConfig
from flexae.models import VAE, AdversarialAE, reparameterise
from flexae.training.batchnorm import BATCHNORM_STATS, CODE, CODE_1, INTERPOLATION, RECONSTRUCTION, GraphStreams
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update

class AdversarialTrainer(Trainer):
    """Algorithm 1 of the paper for FlexAE-SR, and its sub-cases:

    - FlexAE: no smoothing critic, so no L_Reg / L_AE_Reg updates.
    - WAE, WAE-GMM: the prior is fixed, so no L_Gen update; everything else is identical, which
      keeps the comparison with FlexAE at equal networks, optimisers and budget.

    Each update first calls `graph_streams` with its feed: a no-op unless
    `train.batchnorm_stats = "authors"` (flexae.training.batchnorm).
    """

    batchnorm_stats_choices = BATCHNORM_STATS
    streams: GraphStreams | None = None  # the authors' BatchNorm refreshes, if chosen

    def __init__(self, model: AdversarialAE, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.cfg = model, cfg
        # fp16 only: one scaler per update whose backward runs through fp16 activations.
        self.scalers = {name: self.grad_scaler() for name in ("ae", "ae_reg", "enc")}
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.optimizers = {"ae": make_adam(autoencoder, cfg.ae),
                           "critic": make_adam(model.latent_critic.parameters(), cfg.critic),
                           "enc": make_adam(model.encoder.parameters(), cfg.enc)}
        if model.prior.trained_by_gen:
            self.optimizers["gen"] = make_adam(model.prior.parameters(), cfg.gen)
        if model.smoothing_critic is not None:
            self.optimizers["reg"] = make_adam(model.smoothing_critic.parameters(), cfg.reg)
            self.optimizers["ae_reg"] = make_adam(autoencoder, cfg.ae_reg)

    def use_batchnorm_stats(self, mode: str, seed: int) -> None:
        if mode == "authors":
            self.streams = GraphStreams(self.model, self.draw_batch, self.ae_pass, seed,
                                        interpolations=self.model.smoothing_critic is not None)
            self.graph_unsafe = ("train.batchnorm_stats='authors' seeds its private draws from a BatchNorm "
                                 "counter read on the host")

    def graph_streams(self, **feed) -> None:
        """Refresh BatchNorm from the streams of the authors' graph the update does not compute."""
        if self.streams is not None:
            self.streams.refresh(**feed)

    # -- one iteration -------------------------------------------------------------------------
    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # fp32 outside `ae_pass`, even inside a caller's autocast
            return self._algorithm1()

    def _algorithm1(self) -> dict[str, Tensor]:
        m, logs = self.model, {}
        logs["loss_ae"] = self.update_ae(self.batches())                      # line 3
        for _ in range(self.cfg.critic_steps):                                # line 4
            x = self.batches()
            logs["loss_critic"], logs["w_critic"] = self.update_critic(x)     # line 5
            if m.smoothing_critic is not None:
                x_reg = x if self.cfg.feed == "authors" else self.batches()
                logs["loss_reg"] = self.update_reg(x_reg, self.batches())     # line 6
        feed = (lambda: x) if self.cfg.feed == "authors" else self.batches
        if m.smoothing_critic is not None:
            logs["loss_ae_reg"] = self.update_ae_reg(feed(), self.batches())  # line 8
        if m.prior.trained_by_gen:
            logs["loss_gen"] = self.update_gen(x.shape[0])                    # line 9
        logs["loss_enc"] = self.update_enc(feed())                            # line 10
        return logs

    # -- the updates ---------------------------------------------------------------------------
    def update_ae(self, x: Tensor) -> Tensor:
        """Minimise L_AE, update E and D."""
        self.graph_streams(x=x, own=(CODE, RECONSTRUCTION))
        loss = losses.reconstruction_loss(self.ae_pass(self.model.reconstruct, x), x)
        return update(self.optimizers["ae"], loss, self.scalers["ae"])

    def update_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Minimise L_Critic, update C_kappa. Codes are "real", prior samples "fake"."""
        with torch.no_grad():
            z, z_hat = self.ae_pass(self.model.encode, x), self.model.sample_latent(x.shape[0])
        self.graph_streams(x=x, z_hat=z_hat, own=(CODE,))
        loss, w = losses.wasserstein_critic_loss(self.model.latent_critic, z, z_hat, self.cfg.gp_weight)
        return update(self.optimizers["critic"], loss), w

    def update_reg(self, x: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_Reg, update C_zeta: real images vs decoded interpolations of two batches' codes."""
        self.graph_streams(x=x, x_1=x_k, own=(CODE, CODE_1, INTERPOLATION))
        with torch.no_grad():
            z_inp = losses.interpolate(self.ae_pass(self.model.encode, x), self.ae_pass(self.model.encode, x_k))
            x_inp = self.ae_pass(self.model.decode, z_inp)
        loss, _ = losses.wasserstein_critic_loss(self.model.smoothing_critic, x, x_inp, self.cfg.gp_weight)
        return update(self.optimizers["reg"], loss)

    def update_ae_reg(self, x_j: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_AE_Reg, update E and D so decoded interpolations look real to C_zeta."""
        self.graph_streams(x=x_j, x_1=x_k, own=(CODE, CODE_1, INTERPOLATION))
        z_inp = losses.interpolate(self.ae_pass(self.model.encode, x_j), self.ae_pass(self.model.encode, x_k))
        with frozen(self.model.smoothing_critic):
            loss = losses.generator_loss(self.model.smoothing_critic, self.ae_pass(self.model.decode, z_inp))
        return update(self.optimizers["ae_reg"], loss, self.scalers["ae_reg"])

    def update_gen(self, n: int) -> Tensor:
        """Minimise L_Gen, update G_psi: prior samples move toward the encoder codes."""
        z_hat = self.model.sample_latent(n)
        self.graph_streams(z_hat=z_hat.detach())
        with frozen(self.model.latent_critic):
            loss = losses.generator_loss(self.model.latent_critic, z_hat)
        return update(self.optimizers["gen"], loss)

    def update_enc(self, x: Tensor) -> Tensor:
        """Minimise L_Enc, update E: encoder codes move toward the prior (tiny learning rate)."""
        self.graph_streams(x=x, own=(CODE,))
        with frozen(self.model.latent_critic):
            loss = losses.encoder_pull_loss(self.model.latent_critic, self.ae_pass(self.model.encode, x))
        return update(self.optimizers["enc"], loss, self.scalers["enc"])


class VAETrainer(Trainer):
    """One update per iteration: reconstruction (the same summed squared error as L_AE) + KL."""

    def __init__(self, model: VAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.cfg = model, cfg
        self.scaler = self.grad_scaler()
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # networks in the step's precision, the losses in fp32
            x = self.batches()
            mu, logvar = self.ae_pass_tuple(self.model.posterior, x)
            x_rec = self.ae_pass(self.model.decode, reparameterise(mu, logvar))
            rec = losses.reconstruction_loss(x_rec, x)
            kl = losses.kl_standard_normal(mu, logvar)
            update(self.optimizers["ae"], rec + kl, self.scaler)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach()}
