"""Name -> (model builder, trainer) for every baseline. `flexae.models.build_model` and
`flexae.training.trainers.make_trainer` look baselines up here, so adding one is one entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from flexae.baselines import BASELINE_NAMES
from flexae.baselines.deterministic import (ExPostGMMAE, RAETrainer, WAEMMD, WAEMMDTrainer, build_expost_gmm_ae,
                                            build_wae_mmd)
from flexae.baselines.maskaae import MaskAAE, MaskAAETrainer, build_mask_aae
from flexae.baselines.variational import (IAFTrainer, IAFVAE, TwoStageTrainer, TwoStageVAE, VampTrainer, VampVAE,
                                          build_iaf, build_two_stage, build_vamp)
from flexae.baselines.vqvae import VQVAE, VQVAETrainer, build_vqvae
from flexae.config import BaselineConfig, ModelConfig, OptimConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.training.trainers import BatchSource, Trainer


@dataclass(frozen=True)
class Baseline:
    build: Callable[[ModelConfig, tuple[int, ...]], AutoEncoder]  # (config, data shape) -> model
    model_type: type[nn.Module]                                   # the class `build` returns
    trainer: type[Trainer]                                        # (model, optim, batches, baseline cfg)


BASELINES: dict[str, Baseline] = {
    "wae-mmd": Baseline(build_wae_mmd, WAEMMD, WAEMMDTrainer),
    "ae-gmm": Baseline(build_expost_gmm_ae, ExPostGMMAE, RAETrainer),
    "rae-gmm": Baseline(build_expost_gmm_ae, ExPostGMMAE, RAETrainer),
    "2s-vae": Baseline(build_two_stage, TwoStageVAE, TwoStageTrainer),
    "vamp-vae": Baseline(build_vamp, VampVAE, VampTrainer),
    "iaf-vae": Baseline(build_iaf, IAFVAE, IAFTrainer),
    "vq-vae": Baseline(build_vqvae, VQVAE, VQVAETrainer),
    "mask-aae": Baseline(build_mask_aae, MaskAAE, MaskAAETrainer),
}
assert tuple(BASELINES) == BASELINE_NAMES


POSITIVE = ("prior_std", "expost_gmm_components", "second_stage_width", "vamp_pseudo_inputs", "iaf_hidden",
            "vq_codebook_size", "vq_embedding_dim", "vq_prior_width", "vq_prior_layers", "vq_prior_lr",
            "second_stage_lr", "mask_lr", "sampler_steps", "sampler_batch_size")
NON_NEGATIVE = ("mmd_weight", "rae_code_weight", "rae_decoder_decay", "second_stage_depth", "vamp_init_std",
                "iaf_steps", "vq_commitment", "mask_variance_weight", "mask_rec_weight", "mask_schedule",
                "sampler_fit_points")


def validate_baseline_config(hp: BaselineConfig) -> None:
    """One-line UserErrors for out-of-range baseline hyper-parameters."""
    for name in POSITIVE:
        if not getattr(hp, name) > 0:
            raise UserError(f"model.baseline.{name} must be positive, got {getattr(hp, name)}")
    for name in NON_NEGATIVE:
        if not getattr(hp, name) >= 0:
            raise UserError(f"model.baseline.{name} must be >= 0, got {getattr(hp, name)}")
    if hp.vq_prior_width % 4:
        raise UserError(f"model.baseline.vq_prior_width must be divisible by its 4 attention heads, "
                        f"got {hp.vq_prior_width}")


def build_baseline(cfg: ModelConfig, data_shape: tuple[int, ...]) -> AutoEncoder:
    """Build baseline `cfg.name`; the model keeps its name and hyper-parameters for the trainer."""
    if cfg.name not in BASELINES:
        raise UserError(f"unknown baseline {cfg.name!r}; choose from {', '.join(BASELINES)}")
    validate_baseline_config(cfg.baseline)
    model = BASELINES[cfg.name].build(cfg, data_shape)
    model.model_name = cfg.name
    model.baseline_config = cfg.baseline
    return model


def baseline_trainer(model: nn.Module, cfg: OptimConfig, batches: BatchSource) -> Trainer | None:
    """The trainer of a baseline model, or None if `model` is not one."""
    name = getattr(model, "model_name", None)
    if name not in BASELINES or type(model) is not BASELINES[name].model_type:
        return None
    return BASELINES[name].trainer(model, cfg, batches, model.baseline_config)
