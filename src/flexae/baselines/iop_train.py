"""Training side of flexae.baselines.iop: the VAE-IOP trainer (density-ratio estimator updates, then
the VAE update). Kept apart from the model so that loading a trained model imports no training code."""

from __future__ import annotations

import torch
from torch import Tensor

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import frozen_batchnorm_stats
from flexae.baselines.iop import IOPOptions, IOPVAE
from flexae.config import Adam, OptimConfig
from flexae.models import reparameterise
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


class IOPTrainer(Trainer):
    """One iteration: `iop_ratio_steps` logistic-regression updates of T on fresh batches, then one
    update of E and D on L_AE + KL(q(z|x) || N(0, I)) - T(z).

    The authors alternate by epochs (one VAE epoch, then 10 epochs of T); per iteration, T first
    and then the VAE keeps that cycle's order and its 10 : 1 ratio of updates, and the VAE step
    always sees a T fitted to the current codes. T's batches are encoded without gradients, in
    train mode (batch statistics, as the VAE update sees them) but without moving the encoder's
    BatchNorm running statistics, so those move once per iteration as in the `vae` baseline.
    """

    def __init__(self, model: IOPVAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        hp: IOPOptions = model.options
        self.model, self.scaler, self.ratio_steps = model, self.grad_scaler(), hp.iop_ratio_steps
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.optimizers = {"ae": make_adam(autoencoder, cfg.ae),
                           "ratio": make_adam(model.prior.estimator.parameters(), Adam(hp.iop_ratio_lr, 0.9, 0.999))}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # encoder and decoder in the step's precision, T and the losses in fp32
            logs: dict[str, Tensor] = {}
            for _ in range(self.ratio_steps):
                logs["loss_ratio"], logs["ratio_ess"] = self.update_ratio(self.batches())
            logs.update(self.update_vae(self.batches()))
        return logs

    def update_ratio(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Minimise the logistic loss of T: codes z ~ q(z|x) are label 1, N(0, I) samples label 0."""
        with torch.no_grad(), frozen_batchnorm_stats(self.model.encoder):
            z_q = reparameterise(*self.ae_pass_tuple(self.model.posterior, x))  # (B, m)
        z_p = torch.randn_like(z_q)                                              # (B, m)
        estimator = self.model.prior.estimator
        logits_p = estimator(z_p, dropout=True)
        loss = bl.density_ratio_loss(estimator(z_q, dropout=True), logits_p)
        return update(self.optimizers["ratio"], loss), bl.relative_ess(logits_p.detach())

    def update_vae(self, x: Tensor) -> dict[str, Tensor]:
        """Minimise L_AE + KL(q(z|x) || N(0, I)) - T(z), update E and D (T fixed)."""
        mu, logvar = self.ae_pass_tuple(self.model.posterior, x)
        z = reparameterise(mu, logvar)                                            # (B, m)
        rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
        with frozen(self.model.prior.estimator):
            log_ratio = self.model.prior.log_ratio(z)                             # (B,)
        kl = bl.iop_kl(mu, logvar, log_ratio)
        update(self.optimizers["ae"], rec + kl, self.scaler)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach(), "log_ratio": log_ratio.detach().mean()}
