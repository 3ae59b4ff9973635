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

from torch import nn

from flexae.baselines.deterministic import ScaledNormalPrior
from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder, latent_critic

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
