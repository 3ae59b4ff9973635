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
from dataclasses import dataclass

from torch import nn

from flexae.baselines.common import WAEOptions
from flexae.baselines.deterministic import ScaledNormalPrior
from flexae.config import ModelConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder, latent_critic
from flexae.ranges import BETA, LR, MAX_STEPS, WEIGHT, Range, ranged

SCHEDULES = ("manual", "smooth", "none")  # model.options.wae_gan_schedule
SMOOTH_EPOCHS = 50  # the authors' CelebA run (configs.py line 24): manual_smooth decays over 50 epochs


@dataclass
class WAEGANOptions(WAEOptions):
    """wae-gan's settings (model.options), besides the WAE prior, cost and input noise."""
    wae_gan_weight: float = ranged(10.0, WEIGHT)
    # wae-gan: lambda on the JS adversarial penalty (authors' configs.py:
    # 10 MNIST, 100 CelebA); the adversary's loss is scaled by it too.
    wae_gan_lr: float = ranged(1e-3, LR)              # wae-gan: Adam lr of encoder + decoder (MNIST 1e-3; CelebA 3e-4).
    wae_gan_adversary_lr: float = ranged(5e-4, LR)    # wae-gan: Adam lr of the adversary on Z (MNIST 5e-4; CelebA 1e-3).
    wae_gan_beta1: float = ranged(0.5, BETA)          # wae-gan: Adam beta1 of both optimisers (beta2 0.999, TF's default).
    wae_gan_prior_trick: bool = False     # wae-gan: add log N(z; 0, sigma_z^2 I) to the adversary's logits
                                          # (authors' gan_p_trick: off MNIST, on CelebA).
    wae_gan_schedule: str = "manual"      # wae-gan lr decay: "manual" (MNIST: x1/2 from 30% of the span, x1/10 from
                                          # 50%), "smooth" (CelebA: x100^(-1/50) every 1/50 of it), "none".
    wae_gan_schedule_steps: int = ranged(60000, Range(0, MAX_STEPS))
    # wae-gan: iterations the decay spans (the authors' MNIST run: 100 epochs of
    # 600 batches); `reproduce` sets the run's steps. The last factor holds after.

    def check(self) -> None:
        if self.wae_gan_schedule not in SCHEDULES:
            raise UserError(f"model.options.wae_gan_schedule must be one of {', '.join(SCHEDULES)}, "
                            f"got {self.wae_gan_schedule!r}")


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
    return WAEGAN(encoder, decoder, latent_critic(data_shape, m), m, cfg.options.prior_std)


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
