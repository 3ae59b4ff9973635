"""MaskAAE: an adversarial auto-encoder with a learned mask on its latent dimensions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flexae.nets.factory import encoder_decoder, latent_critic
from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.priors import StandardNormalPrior
from flexae.ranges import LR, MAX_STEPS, WEIGHT, Range, ranged

ACTIVE_THRESHOLD = 0.1  # a dimension counts as active when alpha >= 0.1 (authors' code)


@dataclass
class MaskAAEOptions:
    """mask-aae's settings (model.options)."""
    mask_variance_weight: float = ranged(100.0, WEIGHT)     # mask-aae: weight of the variance penalty on masked-off code dims.
    mask_rec_weight: float = ranged(1.0, WEIGHT)            # mask-aae: weight of L_AE in the mask loss.
    mask_lr: float = ranged(5e-4, LR)                       # mask-aae: Adam learning rate of the mask parameters.
    mask_schedule: int = ranged(0, Range(0, MAX_STEPS))     # mask-aae: schedule interval in steps; 0 = the authors' rule from m.


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


def build_mask_aae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> MaskAAE:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    return MaskAAE(encoder, decoder, latent_critic(data_shape, m), m)
