"""Typed run configuration. The resolved config is written to every run folder and checkpoint.

Defaults follow the paper (Algorithm 1 in the supplement; reference values in `docs/algorithm.md`).
Configs are plain dataclasses of plain values so they round-trip through JSON; checkpoints store
`RunConfig.to_dict()`, never pickled objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from flexae.trust import note_named

PRECISIONS = ("fp32", "bf16", "fp16")  # train.precision (flexae.training.precision has the policy)
CUDA_GRAPHS = ("auto", "on", "off")     # train.cuda_graphs (flexae.training.graphs)
INCEPTION_MODES = ("pytorch-fid", "tf")  # Inception preprocessing (flexae.metrics.inception.preprocess)
PRIOR_KINDS = ("adversarial", "gmm", "flow-matching", "2s-vae")  # fit-prior --kind (flexae.app.prior_kinds)
# Images per Inception forward pass (and per generation batch of `flexae eval`), the one default of
# `flexae eval` and `flexae metrics`: pytorch-fid's default (50), whose 299 x 299 x 3 float32 inputs
# (54 MB) and activations stay small on a CPU; a GPU may take more (--batch-size).
INCEPTION_BATCH_SIZE = 50
BATCHNORM_STATS = ("own", "authors")    # train.batchnorm_stats (flexae.training.batchnorm)
BEST_SPLITS = ("validation", "test")     # train.best_split (flexae.app.image_eval)


class LegacyBaselineSection(dict):
    """The flat `model.baseline` section of the run folders written before each model had its own
    settings (`model.options`, a dataclass of its module): all the baselines' hyper-parameters in
    one, at most a few of them the model's. `RunConfig.from_dict` reads it as `model.options`;
    flexae.registry.model_options keeps the keys the model's options have and drops the others."""


@dataclass
class ModelConfig:
    name: str = "flexae"              # Model: a name of flexae.registry (model_names()), or "module:Name" of
                                      # a model defined outside flexae (a ModelSpec, or a class whose `spec` is one).
    latent_dim: int = 50              # m, the dimension of the code z = E(x).
    noise_dim: int | None = None      # m', input noise of the prior generator G_psi; None means m' = m.
    gmm_layout: str = "circle"        # wae-gmm prior: "circle" (the three values below) or "supplement"
                                      # (the synthetic data's true latent mixture, supplement 7.1).
    gmm_components: int = 6           # wae-gmm circle: number of equally weighted mixture components.
    gmm_radius: float = 4.0           # wae-gmm circle: component means on a circle of this radius (first two axes).
    gmm_std: float = 1.0              # wae-gmm circle: isotropic standard deviation of each component.
    decoder_variant: str = "paper"    # Image decoder: "paper" (last conv k4, ELU) or "authors" (k3, ReLU).
    init: str = "glorot-uniform"      # Image networks: "glorot-uniform" (every network) or "authors" (the authors'
                                      # TF init: truncated-normal fan-avg for D, G_psi, C_kappa; docs/algorithm.md).
    bn_momentum: float = 0.01         # BatchNorm momentum in PyTorch terms (TF default decay 0.99).
    bn_eps: float = 1e-3              # BatchNorm epsilon (TF default).
    encoder: str | None = None        # Your own encoder class, "module:Class", built as Class(data_shape,
                                      # out_features); None: the paper's (Tables 6-7). A class is accepted too.
    decoder: str | None = None        # Your own decoder class, "module:Class", built as Class(data_shape,
                                      # latent_dim), outputs in the data's range; None: the paper's.
    options: Any = field(default_factory=dict)  # The model's own settings: an instance of its registry entry's
                                      # `ModelSpec.options` dataclass (a dict in JSON; flexae.registry.model_options).

    def __post_init__(self) -> None:
        self.encoder, self.decoder = class_reference(self.encoder), class_reference(self.decoder)


def class_reference(value: Any) -> Any:
    """A class -> "module:QualName", the importable reference a config records; anything else as is."""
    if isinstance(value, type):  # a class in the user's hands: its module is theirs (flexae.trust)
        reference = f"{value.__module__}:{value.__qualname__}"
        note_named(reference)
        return reference
    return value


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
    feed: str = "paper"                     # "paper": fresh batch per update; "authors": the last
                                            # critic batch is reused by the final three updates.


@dataclass
class TrainConfig:
    dataset: str = "synthetic-5d"     # Data set name (see flexae.data.DATASETS), or images of your own:
                                      # "folder:PATH", "npz:PATH", "npy:PATH" (docs/data.md).
    image_size: int = 0               # Images of your own: resize every one to this square side (0: keep
                                      # their size, which must be one square size divisible by 4).
    image_shape: list[int] | None = None  # [C, S, S] of images of your own, recorded at training.
    steps: int = 5000                 # Training iterations of Algorithm 1.
    batch_size: int = 128             # s, the minibatch size of every update.
    seed: int = 0                     # Seeds model init, batches and noise.
    data_seed: int = 0                # Seeds the synthetic data set (the map f and the points), and the
                                      # held-out test split of your own images when they have none.
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", "mps".
    precision: str = "fp32"           # "fp32", "bf16" (CPU/CUDA) or "fp16" (CUDA): the encoder and decoder
                                      # passes in that precision, critics/prior/losses in fp32
                                      # (flexae.training.precision; docs/performance.md).
    channels_last: str = "auto"       # Conv nets in NHWC memory format: "auto" (CPU and CUDA), "on", "off".
    cuda_graphs: str = "auto"         # One whole iteration captured as a CUDA graph and replayed: "auto" (on for
                                      # CUDA devices), "on", "off" (flexae.training.graphs; docs/performance.md).
    tf32: bool = False                # CUDA: TF32 tensor cores for fp32 matmuls and convolutions (faster, ~1e-3
                                      # relative rounding per product). Off: the paper's numbers are fp32.
    cpu_threads: int = 0              # Torch CPU threads; 0 = auto (1 for the tiny synthetic nets,
                                      # whose 128-wide matmuls only lose from threading; else all).
    log_every: int = 50               # Iterations between JSONL log lines.
    eval_every: int = 500             # Iterations between metric evaluations (0: only at the end).
    checkpoint_every: int = 1000      # Iterations between checkpoints (the last step always saves).
    eval_samples: int = 1000          # Points per set for the exact latent Wasserstein distance.
    eval_images: int = 0              # Image data: every eval_every iterations, FID and KID of this many
                                      # generated vs held-out reference images (0: off; needs the Inception
                                      # weights; ~4 min per 1000 images on a 2-core CPU, seconds on a GPU).
    best_metric: str = "fid"          # Image runs with eval_images: keep best.pt by this metric ("fid", "kid").
    best_split: str = "validation"    # Their reference images: "validation", eval_images training images
                                      # held out from training (chosen by data_seed), or "test" (the test
                                      # split; biases numbers reported on it, so it warns).
    grid_every: int = 1000            # Image data: iterations between the 8x8 sample and reconstruction
                                      # PNGs in grids/ (0: none; else the last step always writes).
    batchnorm_stats: str = "own"      # Which passes move the BatchNorm running statistics of E and D: "own"
                                      # (PyTorch: each train-mode pass of an update) or "authors" (their TF
                                      # graph: every update refreshes them from all its streams, D(G(n))
                                      # included; flexae, flexae-sr, wae, wae-gmm; flexae.training.batchnorm).
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
        """The config of a dict (config.json, a checkpoint); the spellings of older runs are read too."""
        model, optim = dict(d.get("model", {})), dict(d.get("optim", {}))
        # Before 0.1.x, the authors'-code variants were spelled "code" (it read as "latent code").
        if model.get("decoder_variant") == "code":
            model["decoder_variant"] = "authors"
        if optim.get("feed") == "code":
            optim["feed"] = "authors"
        # Before issue 20, the baselines' settings were one flat section, model.baseline.
        legacy = model.pop("baseline", None)
        if isinstance(legacy, dict) and not model.get("options"):
            model["options"] = LegacyBaselineSection(legacy)
        for name in ("ae", "critic", "reg", "ae_reg", "gen", "enc"):
            if name in optim and isinstance(optim[name], dict):
                optim[name] = Adam(**optim[name])
        return cls(ModelConfig(**model), OptimConfig(**optim), TrainConfig(**d.get("train", {})))
