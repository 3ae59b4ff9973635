"""Typed run configuration. The resolved config is written to every run folder and checkpoint.

Defaults follow the paper (Algorithm 1 in the supplement; reference values in `docs/algorithm.md`).
Configs are plain dataclasses of plain values so they round-trip through JSON; checkpoints store
`RunConfig.to_dict()`, never pickled objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    name: str = "flexae"              # Model family: see flexae.models.MODEL_NAMES.
    latent_dim: int = 50              # m, the dimension of the code z = E(x).
    noise_dim: int | None = None      # m', input noise of the prior generator G_psi; None means m' = m.
    gmm_components: int = 6           # wae-gmm: number of equally weighted mixture components.
    gmm_radius: float = 4.0           # wae-gmm: component means on a circle of this radius (first two axes).
    gmm_std: float = 1.0              # wae-gmm: isotropic standard deviation of each component.
    decoder_variant: str = "paper"    # Image decoder: "paper" (last conv k4, ELU) or "code" (k3, ReLU).
    bn_momentum: float = 0.01         # BatchNorm momentum in PyTorch terms (TF default decay 0.99).
    bn_eps: float = 1e-3              # BatchNorm epsilon (TF default).


@dataclass
class Adam:
    lr: float
    beta1: float
    beta2: float


def _adam(lr: float, beta1: float, beta2: float) -> Any:
    return field(default_factory=lambda: Adam(lr, beta1, beta2))


@dataclass
class OptimConfig:
    ae: Adam = _adam(2e-4, 0.9, 0.999)      # L_AE (and the VAE loss): encoder + decoder.
    critic: Adam = _adam(1e-4, 0.0, 0.9)    # L_Critic: latent critic C_kappa.
    reg: Adam = _adam(2e-4, 0.5, 0.9)       # L_Reg: smoothing critic C_zeta (FlexAE-SR).
    ae_reg: Adam = _adam(2e-4, 0.5, 0.9)    # L_AE_Reg: encoder + decoder, own optimiser state.
    gen: Adam = _adam(1e-4, 0.0, 0.9)       # L_Gen: prior generator G_psi (authors' code: lr 2e-4).
    enc: Adam = _adam(1e-5, 0.0, 0.9)       # L_Enc: encoder pulled toward the prior, own state.
    critic_steps: int = 5                   # disc_training_ratio: critic updates per iteration.
    gp_weight: float = 10.0                 # beta, weight of the WGAN-GP gradient penalty.
    feed: str = "paper"                     # "paper": fresh batch per update; "code": the last
                                            # critic batch is reused by the final three updates.


@dataclass
class TrainConfig:
    dataset: str = "synthetic-5d"     # Data set name (see flexae.data.DATASETS).
    steps: int = 5000                 # Training iterations of Algorithm 1.
    batch_size: int = 128             # s, the minibatch size of every update.
    seed: int = 0                     # Seeds model init, batches and noise.
    data_seed: int = 0                # Seeds the synthetic data set (the map f and the points).
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", "mps".
    precision: str = "fp32"           # "fp32" or "bf16" (autocast).
    cpu_threads: int = 0              # Torch CPU threads; 0 = auto (1 for the tiny synthetic nets,
                                      # whose 128-wide matmuls only lose from threading; else all).
    log_every: int = 50               # Iterations between JSONL log lines.
    eval_every: int = 500             # Iterations between metric evaluations (0: only at the end).
    checkpoint_every: int = 1000      # Iterations between checkpoints (the last step always saves).
    eval_samples: int = 1000          # Points per set for the exact latent Wasserstein distance.
    grid_every: int = 1000            # Image data: iterations between the 8x8 sample and reconstruction
                                      # PNGs in grids/ (0: none; else the last step always writes).
    tensorboard: bool = False         # Also write the logged numbers and grids to RUN_DIR/tensorboard/.
    data_dir: str | None = None       # Image files folder given at training (reused by resume, sample,
                                      # ...); None: $FLEXAE_DATA_DIR, else ./data.


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        optim = dict(d.get("optim", {}))
        for name in ("ae", "critic", "reg", "ae_reg", "gen", "enc"):
            if name in optim and isinstance(optim[name], dict):
                optim[name] = Adam(**optim[name])
        return cls(ModelConfig(**d.get("model", {})), OptimConfig(**optim), TrainConfig(**d.get("train", {})))
