"""ALAE: the Adversarial Latent Autoencoder (Pidhorskyi, Adjeroh, Doretto, CVPR 2020), on the
paper's networks.

Four parts: a mapping F (z (B, m) ~ N(0, I) -> w (B, m)), a generator G (w -> x, the Table 7
decoder), an encoder E (x -> w, the Table 7 encoder) and a discriminator D(x) = head(E(x)) whose
head is a small linear stack on w. One iteration is the original's three updates in its order
(`train_alae.py`): D (E + head) on the logistic loss with R1 on real images; G (G + F) on the
non-saturating loss, E and head frozen; then E, G and F together on the latent reconstruction
||E(G(F(z))) - sg[F(z)]||^2. Generation: G(F(z)); reconstruction: G(E(x)). docs/baselines.md
lists what is kept from the original and what differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flexae.config import ModelConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder, linear_head, mapping_network
from flexae.ranges import BETA, LR, MAX_DIM, WEIGHT, Range, ranged


@dataclass
class ALAEOptions:
    """alae's settings (model.options)."""
    alae_mapping_layers: int = ranged(4, Range(1, 1000))       # alae: layers of the mapping F (their MNIST config: 4; faces: 8).
    alae_mapping_width: int = ranged(1024, Range(1, MAX_DIM))  # alae: width of F's hidden layers (theirs: the latent size; 1024 as Table 8).
    alae_head_layers: int = ranged(3, Range(1, 1000))          # alae: Linear layers of the D head on w, no activation between (theirs: 3).
    alae_r1_gamma: float = ranged(10.0, WEIGHT)                # alae: gamma of the R1 penalty (gamma/2)||grad D(x)||^2, in their [-1, 1] range.
    alae_lr: float = ranged(0.0015, LR)                        # alae: Adam learning rate of both optimizers (their MNIST config).
    alae_beta1: float = ranged(0.0, BETA)                      # alae: Adam beta1 (theirs: 0.0).
    alae_beta2: float = ranged(0.99, BETA)                     # alae: Adam beta2 (theirs: 0.99).
    alae_equalized_lr: bool = True        # alae: per-layer Adam steps lr*sqrt(2/fan_in)*lrmul as their LREQAdam (False: lr).


class MappedNormalPrior(nn.Module):
    """w = F(z), z ~ N(0, I_m): ALAE's latent distribution. F is trained by the generator and
    latent-reconstruction updates of ALAE, not by L_Gen (`trained_by_gen` False)."""

    trained_by_gen = False

    def __init__(self, mapping: nn.Module, latent_dim: int):
        super().__init__()
        self.mapping = mapping
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def forward(self, z: Tensor) -> Tensor:
        """F: (N, m) -> (N, m)."""
        return self.mapping(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.latent_dim, device=self._anchor.device, generator=generator)
        return self(z)


class ALAE(AutoEncoder):
    """E (the encoder, x -> w), G (the decoder, w -> x), F (inside `prior`) and the D head on w."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, mapping: nn.Module, head: nn.Module,
                 latent_dim: int):
        super().__init__(encoder, decoder, MappedNormalPrior(mapping, latent_dim))
        self.discriminator_head = head

    def score(self, w: Tensor) -> Tensor:
        """The D head: w (B, m) -> (B,) logits."""
        return self.discriminator_head(w).squeeze(1)


HE_GAIN = math.sqrt(2.0)  # the gain of ALAE's equalised-learning-rate layers (`lreq.py`)


def build_alae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> ALAE:
    m, hp = cfg.latent_dim, cfg.options
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    mapping = mapping_network(m, hp.alae_mapping_width, hp.alae_mapping_layers, m)
    return ALAE(encoder, decoder, mapping, linear_head(m, hp.alae_head_layers), m)
