"""Training side of flexae.baselines.wae_gan: the WAE-GAN trainer. Kept apart from the model so that
loading a trained model imports no training code."""

from __future__ import annotations

import torch
from torch import Tensor

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import add_input_noise
from flexae.baselines.wae_gan import WAEGAN, lr_factor
from flexae.config import Adam, OptimConfig
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


class WAEGANTrainer(Trainer):
    """Algorithm 2 of the WAE paper: one joint encoder + decoder update, then one adversary update.

    Its own Adam settings (`model.options.wae_gan_*`), not `optim.ae` / `optim.critic`: the
    authors' beta1 0.5 and learning rates, decayed by their schedule over `wae_gan_schedule_steps`."""

    def __init__(self, model: WAEGAN, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.options
        hp = self.hp
        self.scaler = self.grad_scaler()  # fp16 only: the AE update's backward runs through E and D
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.base_lr = {"ae": hp.wae_gan_lr, "adversary": hp.wae_gan_adversary_lr}
        self.optimizers = {
            "ae": make_adam(autoencoder, Adam(hp.wae_gan_lr, hp.wae_gan_beta1, 0.999)),
            "adversary": make_adam(model.latent_critic.parameters(),
                                   Adam(hp.wae_gan_adversary_lr, hp.wae_gan_beta1, 0.999))}
        if hp.wae_gan_schedule != "none":
            self.graph_unsafe = "its learning rates follow the iteration count on the host"

    def iteration(self) -> int:
        """Iterations done so far: the adversary optimizer's step count (restored on resume; that
        update has no fp16 scaler, so it never skips a step)."""
        first = next(self.model.latent_critic.parameters())
        return int(self.optimizers["adversary"].state.get(first, {}).get("step", 0))

    def _set_learning_rates(self) -> None:
        factor = lr_factor(self.hp.wae_gan_schedule, self.iteration(), self.hp.wae_gan_schedule_steps)
        for name, lr in self.base_lr.items():
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr * factor

    def logits(self, z: Tensor) -> Tensor:
        """The adversary's logits (B,) for codes z (B, m), with the prior's log density added when
        `wae_gan_prior_trick` is on."""
        logits = self.model.latent_critic(z).squeeze(1)
        if self.hp.wae_gan_prior_trick:
            logits = bl.prior_log_density_logits(logits, z, self.model.prior.std ** 2)
        return logits

    def codes(self, x: Tensor) -> Tensor:
        """E(x + input noise) (B, m) in the step's precision, in train mode (BatchNorm statistics
        refresh, as in the authors' graph, where every train-mode pass updates them)."""
        return self.ae_pass(self.model.encode, add_input_noise(x, self.hp.wae_input_noise))

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            if self.hp.wae_gan_schedule != "none":
                self._set_learning_rates()
            x = self.batches()
            z_prior = self.model.sample_latent(x.shape[0])  # (B, m), shared by both updates
            rec, penalty = self.update_autoencoder(x)
            adversary = self.update_adversary(x, z_prior)
        return {"loss_ae": rec, "penalty": penalty, "loss_adversary": adversary}

    def update_autoencoder(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """c(x, D(E(x))) + lambda * BCE(adversary(E(x)), 1); updates E and D. Returns the raw
        L_AE (per-image sum of squares, comparable across models) and the penalty."""
        hp = self.hp
        z = self.codes(x)
        rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
        with frozen(self.model.latent_critic):
            penalty = bl.js_encoder_penalty(self.logits(z))
        update(self.optimizers["ae"], bl.scaled_cost(rec, hp.wae_cost_scale) + hp.wae_gan_weight * penalty,
               self.scaler)
        return rec.detach(), penalty.detach()

    def update_adversary(self, x: Tensor, z_prior: Tensor) -> Tensor:
        """lambda * [BCE(adversary(z_prior), 1) + BCE(adversary(E(x)), 0)]; updates the adversary."""
        with torch.no_grad():
            z = self.codes(x)
        loss = bl.js_adversary_loss(self.logits(z_prior), self.logits(z), self.hp.wae_gan_weight)
        return update(self.optimizers["adversary"], loss)
