"""Training side of flexae.baselines.maskaae: the authors' schedule and the MaskAAE trainer. Kept apart
from the model so that loading a trained model imports no training code."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.maskaae import MaskAAE
from flexae.config import OptimConfig
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


def default_schedule(latent_dim: int) -> int:
    """The authors' schedule interval T for m latent dimensions."""
    return 75 if latent_dim <= 20 else min(10000, math.floor(1125 * latent_dim / 10))


def polarising_weight(iteration: int, latent_dim: int, interval: int) -> float:
    """c_t: 2/m, doubled at every multiple of 4 T steps, capped at 2048."""
    doublings = min(iteration // (4 * interval), 64)  # 2/m * 2^64 is far past the cap; avoids overflow
    return min(2048.0, (2.0 / latent_dim) * 2.0 ** doublings)


class MaskAAETrainer(Trainer):
    """One iteration of the authors' loop: AE update, `critic_steps` critic updates, the encoder's
    adversarial update, then the mask update (each on a fresh batch)."""

    graph_unsafe = ("its learning rates and polarising weight follow the iteration count on the host, "
                    "and it logs the active dimensions as a host number")

    def __init__(self, model: MaskAAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.cfg, self.hp = model, cfg, model.options
        hp = self.hp
        # fp16 only: the updates whose backward runs through E or D activations.
        self.scalers = {name: self.grad_scaler() for name in ("ae", "enc", "mask")}
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.optimizers = {"ae": make_adam(autoencoder, cfg.ae),
                           "critic": make_adam(model.latent_critic.parameters(), cfg.critic),
                           "enc": make_adam(model.encoder.parameters(), cfg.gen),
                           "mask": torch.optim.Adam([model.prior.mask_param], lr=hp.mask_lr)}
        self.latent_dim = model.prior.mask_param.shape[0]
        self.interval = hp.mask_schedule or default_schedule(self.latent_dim)
        self.base_lr = {"ae": cfg.ae.lr, "mask": hp.mask_lr}

    def iteration(self) -> int:
        """Iterations done so far: the mask optimizer's step count (restored on resume)."""
        state = self.optimizers["mask"].state.get(self.model.prior.mask_param, {})
        return int(state.get("step", 0))

    def _set_learning_rates(self, iteration: int) -> None:
        factor = 0.2 if iteration > 5 * self.interval else 1.0
        for name, lr in self.base_lr.items():
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr * factor

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # E and D passes in the step's precision, the WGAN-GP critic in fp32
            return self._iteration()

    def _iteration(self) -> dict[str, Tensor]:
        iteration = self.iteration()
        self._set_learning_rates(iteration)
        logs = {"loss_ae": self.update_ae(self.batches())}
        for _ in range(self.cfg.critic_steps):
            logs["loss_critic"], logs["w_critic"] = self.update_critic(self.batches())
        logs["loss_enc"] = self.update_encoder(self.batches())
        logs["loss_mask"] = self.update_mask(self.batches(), polarising_weight(iteration, self.latent_dim, self.interval))
        logs["active_dims"] = torch.tensor(float(self.model.active_dims()))
        return logs

    def update_ae(self, x: Tensor) -> Tensor:
        """L_AE + variance penalty; updates E and D (the mask is held fixed)."""
        alpha = self.model.mask().detach()
        z = self.ae_pass(self.model.encode_unmasked, x)
        rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z * alpha), x)
        loss = rec + self.hp.mask_variance_weight * bl.masked_variance_penalty(z, alpha)
        update(self.optimizers["ae"], loss, self.scalers["ae"])
        return rec.detach()

    def _masked_codes(self, x: Tensor) -> Tensor:
        """`model.encode`: E(x) (B, m) in the step's precision, times the mask alpha in fp32."""
        return self.ae_pass(self.model.encode_unmasked, x) * self.model.mask()

    def update_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """WGAN-GP critic: masked prior samples are "real", masked codes "fake" (authors' code)."""
        with torch.no_grad():
            codes, prior = self._masked_codes(x), self.model.sample_latent(x.shape[0])
        loss, w = losses.wasserstein_critic_loss(self.model.latent_critic, prior, codes, self.cfg.gp_weight)
        return update(self.optimizers["critic"], loss), w

    def update_encoder(self, x: Tensor) -> Tensor:
        """The encoder as generator: - mean C(masked codes); updates E only."""
        with frozen(self.model.latent_critic):
            loss = losses.generator_loss(self.model.latent_critic, self._masked_codes(x))
        return update(self.optimizers["enc"], loss, self.scalers["enc"])

    def update_mask(self, x: Tensor, polarising: float) -> Tensor:
        """The mask loss; updates mu, then projects it back onto mu >= 0."""
        m = self.model
        with frozen(m.encoder), frozen(m.decoder), frozen(m.latent_critic):
            codes = self._masked_codes(x)
            rec = losses.reconstruction_loss(self.ae_pass(m.decode, codes), x)
            w = m.latent_critic(codes).mean() - m.latent_critic(m.sample_latent(x.shape[0])).mean()
            loss = self.hp.mask_rec_weight * rec + (1 - w).pow(2) + polarising * bl.polarising_penalty(m.mask())
        loss = update(self.optimizers["mask"], loss, self.scalers["mask"])
        with torch.no_grad():
            m.prior.mask_param.clamp_(min=0.0)
        return loss
