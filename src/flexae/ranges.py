"""Declared ranges of every numeric config field (one table, `RANGES`) and the one generic loop
that checks them (`check_ranges`), used by flexae.validation for whole RunConfigs. A model's own
settings (`model.options`, a dataclass of its module) declare theirs on the fields
(`ranged(default, Range(...))`); `check_options` checks them, for whole RunConfigs and for models
built in Python (flexae.registry.build_model).
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
WEIGHT = Range(0, MAX_WEIGHT)
BETA = Range(0, 1, high_open=True, interval=True)  # Adam betas (and dropout rates): [0, 1)

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
    "optim.*.lr": LR,
    "optim.*.beta1": BETA,
    "optim.*.beta2": BETA,
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


def ranged(default: Any, declared: Range) -> Any:
    """A field of a model's options dataclass with its default and the range it accepts."""
    return dataclasses.field(default=default, metadata={"range": declared})


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


def check_ranges(node: Any, prefix: str = "") -> None:
    """One generic loop: every numeric field of `node` (a RunConfig, or a section with its `prefix`)
    within its declared range; None (an optional field left unset) passes. A model's own settings
    (model.options) declare their ranges themselves: `check_options`."""
    for key, value in numeric_fields(node, prefix):
        if key.startswith("model.options."):
            continue
        declared = range_of(key)
        if declared is None:
            raise AssertionError(f"config field {key} has no declared range in flexae.validation.RANGES")
        if value is not None and (problem := declared.problem(value)) is not None:
            raise UserError(f"{key} {problem}")


def check_options(options: Any) -> None:
    """A model's own settings (an instance of its options dataclass): each field within the range
    its metadata declares (other fields are type-checked only), then the dataclass's own `check()`,
    if it has one, for what a range cannot say (a choice of words, a divisibility)."""
    for f in dataclasses.fields(options):
        declared, value = f.metadata.get("range"), getattr(options, f.name)
        if isinstance(declared, Range) and value is not None and (problem := declared.problem(value)) is not None:
            raise UserError(f"model.options.{f.name} {problem}")
    check = getattr(options, "check", None)
    if callable(check):
        check()
