"""Declared ranges of every numeric config field (one table, `RANGES`) and the one generic loop
that checks them (`check_ranges`), used by flexae.validation for whole RunConfigs and by
flexae.registry.build_model for the baseline hyper-parameters of models built in Python.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from flexae.errors import UserError

MAX_DIM = 65_536            # latent and noise sizes; beyond this an allocation fails, not a check
MAX_BATCH = 1_000_000
MAX_SEED = 2**63 - 1        # torch.manual_seed and numpy's default_rng both accept 0 .. 2**63 - 1


def _numeric(hint: Any) -> bool:
    """int, float, or `int | None` / `float | None`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(args) == 1 and args[0] in (int, float)
    return hint in (int, float)


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric config field accepts: low <= v <= high (< with high_open, > with low_open)."""
    low: float
    high: float
    low_open: bool = False   # v > low (0 open: "must be positive")
    high_open: bool = False  # v < high
    interval: bool = False   # say "must lie in [low, high]" for either side (seeds, fractions)

    def problem(self, v: float) -> str | None:
        """What is wrong with v, or None if it is in range."""
        close = ")" if self.high_open else "]"
        below = v <= self.low if self.low_open else v < self.low
        above = v >= self.high if self.high_open else v > self.high
        if self.interval and (below or above):
            return f"must lie in [{self.low}, {self.high}{close}, got {v}"
        if below:
            if self.low_open and self.low == 0 or self.low > 0 and v <= 0:
                return f"must be positive{f' (at least {self.low})' if self.low not in (0, 1) else ''}, got {v}"
            return f"must be >= {self.low}, got {v}"
        if above:
            return f"must be {'below' if self.high_open else 'at most'} {self.high}, got {v}"
        return None


MAX_STEPS = 10**9           # iterations (and the *_every intervals): ~30 years at 1 ms per iteration
MAX_WEIGHT = 1e8            # loss weights
MAX_LR = 10.0               # Adam learning rates
MAX_COMPONENTS = 10_000     # mixture components (each one a (m, m) covariance for the ex-post GMM)
MAX_THREADS_PER_CPU = 4     # train.cpu_threads on this machine (beyond, torch fails deep inside Python)
LR = Range(0, MAX_LR, low_open=True)
COUNT = Range(1, MAX_STEPS)
POSITIVE_SCALE = Range(1e-6, 1e6)  # standard deviations: below 1e-6 a float32 sample collapses to its mean

# Every int / float field of RunConfig, by its dotted key ("optim.*" is each Adam section). A test
# checks that no numeric field lacks an entry; `check_ranges` applies them all in one loop.
RANGES: dict[str, Range] = {
    "model.latent_dim": Range(1, MAX_DIM),
    "model.noise_dim": Range(1, MAX_DIM),
    "model.gmm_components": Range(1, MAX_COMPONENTS),
    "model.gmm_radius": Range(0, 1e6),
    "model.gmm_std": POSITIVE_SCALE,
    "model.bn_momentum": Range(0, 1, interval=True),
    "model.bn_eps": Range(1e-10, 1.0),  # below, BatchNorm divides by ~0 for a constant channel
    "model.baseline.mmd_weight": Range(0, MAX_WEIGHT),
    "model.baseline.prior_std": POSITIVE_SCALE,
    "model.baseline.expost_gmm_components": Range(1, MAX_COMPONENTS),
    "model.baseline.rae_code_weight": Range(0, MAX_WEIGHT),
    "model.baseline.rae_decoder_decay": Range(0, MAX_WEIGHT),
    "model.baseline.second_stage_width": Range(1, MAX_DIM),
    "model.baseline.second_stage_depth": Range(0, 1000),
    "model.baseline.second_stage_lr": LR,
    "model.baseline.vamp_pseudo_inputs": Range(1, 1_000_000),
    "model.baseline.vamp_init_mean": Range(-1e3, 1e3),
    "model.baseline.vamp_init_std": Range(0, 1e3),
    "model.baseline.iaf_steps": Range(0, 1000),
    "model.baseline.iaf_hidden": Range(1, MAX_DIM),
    "model.baseline.vq_codebook_size": Range(1, 1_000_000),
    "model.baseline.vq_embedding_dim": Range(1, MAX_DIM),
    "model.baseline.vq_commitment": Range(0, MAX_WEIGHT),
    "model.baseline.vq_prior_width": Range(1, MAX_DIM),
    "model.baseline.vq_prior_layers": Range(1, 1000),
    "model.baseline.vq_prior_lr": LR,
    "model.baseline.mask_variance_weight": Range(0, MAX_WEIGHT),
    "model.baseline.mask_rec_weight": Range(0, MAX_WEIGHT),
    "model.baseline.mask_lr": LR,
    "model.baseline.mask_schedule": Range(0, MAX_STEPS),
    "model.baseline.sampler_steps": COUNT,
    "model.baseline.sampler_batch_size": Range(1, MAX_BATCH),
    "model.baseline.sampler_fit_points": Range(0, 10**12),
    # wae-gan, wae-mmd (flexae.baselines.wae_gan, deterministic)
    "model.baseline.wae_cost_scale": Range(0, MAX_WEIGHT, low_open=True),
    "model.baseline.wae_input_noise": Range(0, 1e3),
    "model.baseline.wae_gan_weight": Range(0, MAX_WEIGHT),
    "model.baseline.wae_gan_lr": LR,
    "model.baseline.wae_gan_adversary_lr": LR,
    "model.baseline.wae_gan_beta1": Range(0, 1, high_open=True, interval=True),
    "model.baseline.wae_gan_schedule_steps": Range(0, MAX_STEPS),
    # vae-iop (flexae.baselines.iop)
    "model.baseline.iop_ratio_width": Range(1, MAX_DIM),
    "model.baseline.iop_ratio_depth": Range(0, 1000),
    "model.baseline.iop_ratio_dropout": Range(0, 1, high_open=True, interval=True),
    "model.baseline.iop_ratio_lr": LR,
    "model.baseline.iop_ratio_steps": Range(1, 10_000),
    "model.baseline.iop_sir_candidates": Range(1, 1_000_000),
    # alae, pioneer (flexae.baselines.alae, pioneer)
    "model.baseline.alae_mapping_layers": Range(1, 1000),
    "model.baseline.alae_mapping_width": Range(1, MAX_DIM),
    "model.baseline.alae_head_layers": Range(1, 1000),
    "model.baseline.alae_r1_gamma": Range(0, MAX_WEIGHT),
    "model.baseline.alae_lr": LR,
    "model.baseline.alae_beta1": Range(0, 1, high_open=True, interval=True),
    "model.baseline.alae_beta2": Range(0, 1, high_open=True, interval=True),
    "model.baseline.pioneer_generator_steps": Range(1, 1000),
    "model.baseline.pioneer_real_kl_weight": Range(0, MAX_WEIGHT),
    "model.baseline.pioneer_fake_kl_weight": Range(0, MAX_WEIGHT),
    "model.baseline.pioneer_image_weight": Range(0, MAX_WEIGHT),
    "model.baseline.pioneer_code_weight": Range(0, MAX_WEIGHT),
    "model.baseline.pioneer_lr": LR,
    "model.baseline.pioneer_beta1": Range(0, 1, high_open=True, interval=True),
    "model.baseline.pioneer_beta2": Range(0, 1, high_open=True, interval=True),
    "optim.*.lr": LR,
    "optim.*.beta1": Range(0, 1, high_open=True, interval=True),
    "optim.*.beta2": Range(0, 1, high_open=True, interval=True),
    "optim.critic_steps": Range(1, 1000),
    "optim.gp_weight": Range(0, MAX_WEIGHT),
    "train.image_size": Range(0, MAX_DIM),
    "train.steps": COUNT,
    "train.batch_size": Range(1, MAX_BATCH),
    "train.seed": Range(0, MAX_SEED, interval=True),
    "train.data_seed": Range(0, MAX_SEED, interval=True),
    "train.cpu_threads": Range(0, 65_536),  # this machine's bound: validate_config
    "train.log_every": COUNT,
    "train.eval_every": Range(0, MAX_STEPS),
    "train.checkpoint_every": COUNT,
    "train.eval_samples": Range(2, 100_000),  # the exact W1 is an O(n^3) assignment
    "train.eval_images": Range(0, 10_000_000),
    "train.grid_every": Range(0, MAX_STEPS),
}


def range_of(key: str) -> Range | None:
    """The declared range of a numeric field ("optim.gen.lr" -> the "optim.*.lr" entry)."""
    parts = key.split(".")
    return RANGES.get(key) or (RANGES.get(f"{parts[0]}.*.{parts[2]}") if len(parts) == 3 else None)


def numeric_fields(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every int / float field (optional ones included) of a nested dataclass."""
    found = []
    for name, hint in typing.get_type_hints(type(node)).items():
        value, key = getattr(node, name), f"{prefix}{name}"
        if dataclasses.is_dataclass(value):
            found += numeric_fields(value, key + ".")
        elif _numeric(hint):
            found.append((key, value))
    return found


def _own_ranges(node: Any, prefix: str) -> dict[str, Range]:
    """The ranges a model of your own declares on its options dataclass (model.options): a field's
    `metadata={"range": Range(...)}`; its other fields are type-checked only."""
    options = getattr(getattr(node, "model", None), "options", None)
    if not dataclasses.is_dataclass(options) or prefix:
        return {}
    return {f"model.options.{f.name}": f.metadata["range"] for f in dataclasses.fields(options)
            if isinstance(f.metadata.get("range"), Range)}


def check_ranges(node: Any, prefix: str = "") -> None:
    """One generic loop: every numeric field of `node` (a RunConfig, or a section with its `prefix`)
    within its declared range; None (an optional field left unset) passes."""
    own = _own_ranges(node, prefix)
    for key, value in numeric_fields(node, prefix):
        if key.startswith("model.options."):  # a model's own settings: the ranges it declares
            declared = own.get(key)
            if declared is not None and value is not None and (problem := declared.problem(value)) is not None:
                raise UserError(f"{key} {problem}")
            continue
        declared = range_of(key)
        if declared is None:
            raise AssertionError(f"config field {key} has no declared range in flexae.validation.RANGES")
        if value is not None and (problem := declared.problem(value)) is not None:
            raise UserError(f"{key} {problem}")


def validate_baseline_config(hp: Any) -> None:
    """One-line UserErrors for out-of-range baseline hyper-parameters (also for models built in Python)."""
    check_ranges(hp, "model.baseline.")
    if hp.vq_prior_width % 4:
        raise UserError(f"model.baseline.vq_prior_width must be divisible by its 4 attention heads, "
                        f"got {hp.vq_prior_width}")
