"""Up-front checks of a RunConfig, so bad values fail at once with a one-line UserError."""

from __future__ import annotations

from flexae.config import RunConfig
from flexae.data import DATASETS, SYNTHETIC
from flexae.errors import UserError
from flexae.models import MODEL_NAMES

PRECISIONS = ("fp32", "bf16")
FEEDS = ("paper", "code")
DECODER_VARIANTS = ("paper", "code")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"{name} must be positive, got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def validate_config(cfg: RunConfig) -> None:
    m, o, t = cfg.model, cfg.optim, cfg.train
    _choice("model", m.name, MODEL_NAMES)
    _choice("data set", t.dataset, DATASETS)
    _choice("precision", t.precision, PRECISIONS)
    _choice("feed", o.feed, FEEDS)
    _choice("decoder variant", m.decoder_variant, DECODER_VARIANTS)
    for name in ("latent_dim", "gmm_components"):
        _positive(f"model.{name}", getattr(m, name))
    if m.noise_dim is not None:
        _positive("model.noise_dim", m.noise_dim)
    for name in ("steps", "batch_size", "log_every", "checkpoint_every", "eval_samples"):
        _positive(f"train.{name}", getattr(t, name))
    if t.cpu_threads < 0:
        raise UserError(f"train.cpu_threads must be >= 0, got {t.cpu_threads}")
    if t.eval_every < 0:
        raise UserError(f"train.eval_every must be >= 0, got {t.eval_every}")
    _positive("optim.critic_steps", o.critic_steps)
    if o.gp_weight < 0:
        raise UserError(f"optim.gp_weight must be >= 0, got {o.gp_weight}")
    for name in ("ae", "critic", "reg", "ae_reg", "gen", "enc"):
        adam = getattr(o, name)
        _positive(f"optim.{name}.lr", adam.lr)
        if not (0 <= adam.beta1 < 1 and 0 <= adam.beta2 < 1):
            raise UserError(f"optim.{name} betas must lie in [0, 1), got ({adam.beta1}, {adam.beta2})")
    if m.name == "flexae-sr" and t.dataset in SYNTHETIC:
        raise UserError("flexae-sr needs image data (its smoothing critic is the convolutional net of "
                        "Table 8); use --model flexae on synthetic data")
    if t.eval_samples < 2:
        raise UserError("train.eval_samples must be at least 2")
