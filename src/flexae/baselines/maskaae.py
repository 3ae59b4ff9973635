"""MaskAAE: an adversarial auto-encoder with a learned mask on its latent dimensions."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.baselines import losses as bl
from flexae.nets.factory import encoder_decoder, latent_critic
from flexae.config import ModelConfig, OptimConfig
from flexae.models import AutoEncoder
from flexae.priors import StandardNormalPrior
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, update, frozen, make_adam

ACTIVE_THRESHOLD = 0.1  # a dimension counts as active when alpha >= 0.1 (authors' code)


class MaskedNormalPrior(StandardNormalPrior):
    """N(0, I_m) multiplied by the learned mask alpha = 1 - exp(-mu), mu >= 0 (m values)."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.mask_param = nn.Parameter(torch.empty(latent_dim).uniform_(0.0, 5.0))  # mu, U[0, 5] at init

    def mask(self) -> Tensor:
        """alpha (m,) in [0, 1)."""
        return 1 - torch.exp(-self.mask_param)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return super().sample(n, generator) * self.mask()


class MaskAAE(AutoEncoder):
    """MaskAAE (Mondal, Chowdhury, Jayendran, Singla, Asnani, Prathosh, "MaskAAE: Latent space
    optimization for Adversarial Auto-Encoders", UAI 2020).

    A deterministic AE whose code is multiplied by a learned mask alpha = 1 - exp(-mu), mu >= 0
    (m values, initialised U[0, 5]); the prior is N(0, I) masked the same way, and a WGAN-GP latent
    critic matches masked codes to masked prior samples (the encoder plays the generator). The
    mask is trained on w_rec L_AE + (1 - W)^2 + c_t sum_j |alpha_j (1 - alpha_j)|, W the critic's
    mean score of codes minus that of prior samples, c_t = 2/m doubled every 4 T steps (at most
    2048); the auto-encoder adds a variance penalty on masked-off dimensions. After 5 T steps the
    AE and mask learning rates drop 5x. T = `mask_schedule`, by default the authors' rule:
    75 if m <= 20, else min(10000, floor(1125 m / 10)).

    Hyper-parameters (authors' code for MNIST unless stated): variance weight 100
    (`mask_variance_weight`), mask lr 5e-4 (`mask_lr`; theirs: RMSProp 5e-4), gradient-penalty
    weight 10 and 5 critic steps per iteration (`optim.gp_weight`, `optim.critic_steps`, shared with
    FlexAE), the Table 8 latent critic. Differences: Table 7 networks instead of 4x1024 MLPs (MNIST
    script); L_AE instead of the mean binary cross-entropy, so the mask's reconstruction weight is 1
    (`mask_rec_weight`) instead of 1000 on a per-pixel mean; the variance penalty is summed over
    dimensions instead of averaged; Adam (`optim.ae` for E and D, `optim.critic` for the critic,
    `optim.gen` for the encoder's adversarial update) instead of RMSProp (5e-4 / 1e-4 / 1e-4);
    batch 128 instead of 64; m = 20 / 64 instead of 48.
    """

    def __init__(self, encoder, decoder, critic: nn.Module, latent_dim: int):
        super().__init__(encoder, decoder, MaskedNormalPrior(latent_dim))
        self.latent_critic = critic

    def mask(self) -> Tensor:
        """alpha (m,) in [0, 1), the prior's mask."""
        return self.prior.mask()

    def active_dims(self) -> int:
        return int((self.mask() >= ACTIVE_THRESHOLD).sum())

    def encode_unmasked(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def encode(self, x: Tensor) -> Tensor:
        """The masked code (B, m) used for reconstruction."""
        return self.encoder(x) * self.mask()


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
        self.model, self.cfg, self.hp = model, cfg, model.baseline_config
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


def build_mask_aae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> MaskAAE:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    return MaskAAE(encoder, decoder, latent_critic(data_shape, m), m)
