"""WAE-GAN as Tolstikhin, Bousquet, Gelly and Schoelkopf wrote it ("Wasserstein Auto-Encoders",
ICLR 2018, Algorithm 2; code: tolstikhin/wae, `wae.py`, `models.py`, `configs.py`).

One iteration, as their `WAE.train` runs it (wae.py lines 573-611):
1. encoder + decoder, one Adam step on c(x, D(E(x))) + lambda * penalty, where c is their scaled
   cost (0.05 * per-image sum of squares) and the penalty is the non-saturating GAN term on the
   codes, BCE(adversary(E(x)), 1);
2. the adversary on Z, one Adam step on lambda * [BCE(adversary(z_prior), 1) + BCE(adversary(E(x)), 0)],
   on the same images and prior samples, with the codes of the just-updated encoder.

The adversary is the paper's latent critic network (Table 8, C_kappa; Table 6 on synthetic data),
its output read as logits. docs/baselines.md lists what differs from the authors' runs and why.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import add_input_noise
from flexae.baselines.deterministic import ScaledNormalPrior
from flexae.config import Adam, ModelConfig, OptimConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder, latent_critic
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update

SCHEDULES = ("manual", "smooth", "none")  # model.baseline.wae_gan_schedule
SMOOTH_EPOCHS = 50  # the authors' CelebA run (configs.py line 24): manual_smooth decays over 50 epochs


class WAEGAN(AutoEncoder):
    """Deterministic encoder, fixed prior N(0, sigma_z^2 I), and an adversary on Z (`latent_critic`,
    codes (B, m) -> logits (B, 1)) used only in training."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, adversary: nn.Module, latent_dim: int,
                 prior_std: float):
        super().__init__(encoder, decoder, ScaledNormalPrior(latent_dim, prior_std))
        self.latent_critic = adversary


def build_wae_gan(cfg: ModelConfig, data_shape: tuple[int, ...]) -> WAEGAN:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    return WAEGAN(encoder, decoder, latent_critic(data_shape, m), m, cfg.baseline.prior_std)


def lr_factor(schedule: str, iteration: int, span: int) -> float:
    """The authors' learning-rate decay after `iteration` of a run whose decay spans `span`
    iterations (their epoch e of E is iteration e * span / E here).

    "manual" (MNIST, wae.py lines 542-548, E = 100): x1/2 from epoch 30, x1/5 more from epoch 50
    (their x1/10 at epoch 100 never comes: epochs run 0..99). "smooth" (CelebA, lines 549-552,
    E = 50): decay /= 100^(1/E) at the start of every epoch, epoch 0 included, so epoch e runs at
    100^(-(e + 1) / E). "none": 1. Past the span the last factor holds."""
    if schedule == "none":
        return 1.0
    progress = iteration / span
    if schedule == "manual":
        return 1.0 if progress < 0.3 else 0.5 if progress < 0.5 else 0.1
    epoch = min(math.floor(progress * SMOOTH_EPOCHS), SMOOTH_EPOCHS - 1)
    return 100.0 ** (-(epoch + 1) / SMOOTH_EPOCHS)


class WAEGANTrainer(Trainer):
    """Algorithm 2 of the WAE paper: one joint encoder + decoder update, then one adversary update.

    Its own Adam settings (`model.baseline.wae_gan_*`), not `optim.ae` / `optim.critic`: the
    authors' beta1 0.5 and learning rates, decayed by their schedule over `wae_gan_schedule_steps`."""

    def __init__(self, model: WAEGAN, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.baseline_config
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
