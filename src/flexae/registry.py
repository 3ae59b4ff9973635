"""Every model by name: how to build it, how to train it, and (for baselines that generate through
an ex-post sampler) how to fit that sampler. The training loop, the run loader, the CLI and the
experiments find models only here, so adding a model is one module plus one `register` line:

    from flexae.registry import ModelSpec, register
    register("my-ae", ModelSpec(build_my_ae, MyTrainer))

`build(cfg: ModelConfig, data_shape) -> AutoEncoder`; `trainer(model, optim_cfg, batches, options)
-> Trainer` (flexae.training.steps has the building blocks); `fit_sampler(sampler, targets, hp,
generator, seed, progress) -> stats` fits `model.prior` to `model.sampler_targets(x)` of the
training data (flexae.baselines.common.fit_expost_sampler does the encoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor, nn

from flexae.baselines.alae import ALAETrainer, build_alae
from flexae.baselines.common import ExPostFit, fit_expost_sampler
from flexae.baselines.deterministic import RAETrainer, WAEMMDTrainer, build_expost_gmm_ae, build_wae_mmd, fit_gmm
from flexae.baselines.maskaae import MaskAAETrainer, build_mask_aae
from flexae.baselines.pioneer import PioneerTrainer, build_pioneer
from flexae.baselines.variational import (IAFTrainer, TwoStageTrainer, VampTrainer, build_iaf, build_two_stage,
                                          build_vamp, fit_second_stage)
from flexae.baselines.vqvae import VQVAETrainer, build_vqvae, fit_code_prior
from flexae.config import BaselineConfig, ModelConfig, OptimConfig, class_reference
from flexae.errors import UserError
from flexae.models import AutoEncoder, build_flexae, build_vae, build_wae
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer
from flexae.training.trainers import AdversarialTrainer, VAETrainer

TrainerFactory = Callable[[AutoEncoder, OptimConfig, BatchSource, "StepOptions | None"], Trainer]


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[ModelConfig, tuple[int, ...]], AutoEncoder]  # (config, data shape) -> model
    trainer: TrainerFactory                                       # (model, optim, batches, options)
    fit_sampler: ExPostFit | None = None                          # ex-post sampler fit, if it has one
    images_only: bool = False                                     # refuses synthetic data


MODELS: dict[str, ModelSpec] = {}


def register(name: str, spec: ModelSpec) -> None:
    """Make model `name` known to the whole library (CLI, configs, runs, experiments)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already")
    MODELS[name] = spec


for _name, _spec in {
    # The paper's models (flexae.models, trainers in flexae.training.trainers).
    "flexae": ModelSpec(build_flexae, AdversarialTrainer),
    "flexae-sr": ModelSpec(build_flexae, AdversarialTrainer, images_only=True),
    "wae": ModelSpec(build_wae, AdversarialTrainer),
    "wae-gmm": ModelSpec(build_wae, AdversarialTrainer),
    "vae": ModelSpec(build_vae, VAETrainer),
    # The baselines of Table 1 (flexae.baselines).
    "wae-mmd": ModelSpec(build_wae_mmd, WAEMMDTrainer),
    "ae-gmm": ModelSpec(build_expost_gmm_ae, RAETrainer, fit_gmm),
    "rae-gmm": ModelSpec(build_expost_gmm_ae, RAETrainer, fit_gmm),
    "2s-vae": ModelSpec(build_two_stage, TwoStageTrainer, fit_second_stage),
    "vamp-vae": ModelSpec(build_vamp, VampTrainer),
    "iaf-vae": ModelSpec(build_iaf, IAFTrainer),
    "vq-vae": ModelSpec(build_vqvae, VQVAETrainer, fit_code_prior),
    "mask-aae": ModelSpec(build_mask_aae, MaskAAETrainer),
    "pioneer": ModelSpec(build_pioneer, PioneerTrainer),
    "alae": ModelSpec(build_alae, ALAETrainer),
}.items():
    register(_name, _spec)

PAPER_MODELS = ("flexae", "flexae-sr", "wae", "wae-gmm", "vae")
BASELINE_NAMES = ("wae-mmd", "ae-gmm", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae", "pioneer",
                  "alae")


def model_names() -> tuple[str, ...]:
    """Every registered model, in registration order (the paper's, the baselines, then any added)."""
    return tuple(MODELS)


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


POSITIVE = ("prior_std", "expost_gmm_components", "second_stage_width", "vamp_pseudo_inputs", "iaf_hidden",
            "vq_codebook_size", "vq_embedding_dim", "vq_prior_width", "vq_prior_layers", "vq_prior_lr",
            "second_stage_lr", "mask_lr", "sampler_steps", "sampler_batch_size", "alae_mapping_layers",
            "alae_mapping_width", "alae_head_layers", "alae_lr", "pioneer_generator_steps", "pioneer_lr")
NON_NEGATIVE = ("mmd_weight", "rae_code_weight", "rae_decoder_decay", "second_stage_depth", "vamp_init_std",
                "iaf_steps", "vq_commitment", "mask_variance_weight", "mask_rec_weight", "mask_schedule",
                "sampler_fit_points", "alae_r1_gamma", "alae_beta1", "alae_beta2", "pioneer_real_kl_weight",
                "pioneer_fake_kl_weight", "pioneer_image_weight", "pioneer_code_weight", "pioneer_beta1",
                "pioneer_beta2")
BETAS = ("alae_beta1", "alae_beta2", "pioneer_beta1", "pioneer_beta2")  # Adam betas: also < 1


def validate_baseline_config(hp: BaselineConfig) -> None:
    """One-line UserErrors for out-of-range baseline hyper-parameters."""
    for name in POSITIVE:
        if not getattr(hp, name) > 0:
            raise UserError(f"model.baseline.{name} must be positive, got {getattr(hp, name)}")
    for name in NON_NEGATIVE:
        if not getattr(hp, name) >= 0:
            raise UserError(f"model.baseline.{name} must be >= 0, got {getattr(hp, name)}")
    for name in BETAS:
        if not getattr(hp, name) < 1:
            raise UserError(f"model.baseline.{name} must be < 1, got {getattr(hp, name)}")
    if hp.vq_prior_width % 4:
        raise UserError(f"model.baseline.vq_prior_width must be divisible by its 4 attention heads, "
                        f"got {hp.vq_prior_width}")


def build_model(cfg: ModelConfig, data_shape: tuple[int, ...], *, encoder: type | str | None = None,
                decoder: type | str | None = None) -> AutoEncoder:
    """Model `cfg.name` for data of shape `data_shape` ((128,) synthetic, (C, H, W) images); it
    keeps its name and baseline hyper-parameters for its trainer and sampler fit.

    `encoder` / `decoder`: classes of your own (or "module:Class"), built as
    `Encoder(data_shape, out_features)` and `Decoder(data_shape, latent_dim)` in place of the
    paper's; they are recorded in `cfg.encoder` / `cfg.decoder`, so a run trained with this config
    is rebuilt by `load_run` (the classes must be importable then)."""
    for name, value in (("encoder", encoder), ("decoder", decoder)):
        if value is not None:
            if isinstance(value, nn.Module):
                raise UserError(f"build_model({name}=...) takes the class ({type(value).__name__}), not an "
                                f"instance: flexae builds it as Class(data_shape, size) and records its name")
            setattr(cfg, name, class_reference(value))
    entry = spec(cfg.name)
    if cfg.name in BASELINE_NAMES:
        validate_baseline_config(cfg.baseline)
    model = entry.build(cfg, data_shape)
    model.model_name = cfg.name
    model.baseline_config = cfg.baseline
    model.data_shape = tuple(data_shape)  # the shape of one data point: (C, H, W) for images
    return model


def make_trainer(model: AutoEncoder, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None) -> Trainer:
    """The trainer of a model built by `build_model`; `options` (precision, memory format) apply
    to every trainer alike (flexae.training.precision)."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise TypeError(f"{type(model).__name__} was not built by flexae.registry.build_model")
    return spec(name).trainer(model, cfg, batches, options)


def fit_sampler(model: AutoEncoder, train_data: Tensor, hp: BaselineConfig | None = None, seed: int = 0,
                progress: bool = False) -> dict[str, float]:
    """Fit the model's ex-post sampler on training data (N, ...); TypeError for models without one."""
    name = getattr(model, "model_name", None)
    fit = spec(name).fit_sampler if name is not None else None
    if fit is None or model.expost_sampler is None:
        raise TypeError(f"{type(model).__name__} has no ex-post sampler")
    return fit_expost_sampler(model, fit, train_data, hp or model.baseline_config, seed, progress)
