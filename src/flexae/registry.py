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

from flexae.baselines.common import ExPostFit, fit_expost_sampler
from flexae.baselines.deterministic import RAETrainer, WAEMMDTrainer, build_expost_gmm_ae, build_wae_mmd, fit_gmm
from flexae.baselines.maskaae import MaskAAETrainer, build_mask_aae
from flexae.baselines.variational import (IAFTrainer, TwoStageTrainer, VampTrainer, build_iaf, build_two_stage,
                                          build_vamp, fit_second_stage)
from flexae.baselines.vqvae import VQVAETrainer, build_vqvae, fit_code_prior
from flexae.config import BaselineConfig, ModelConfig, OptimConfig, class_reference
from flexae.errors import UserError
from flexae.ranges import validate_baseline_config
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
    # The model.* settings it reads beyond COMMON_MODEL_SETTINGS ("gmm_std", "baseline.mmd_weight"):
    # a --set of any other is an error. None: not declared (models registered from outside), not checked.
    settings: tuple[str, ...] | None = None


MODELS: dict[str, ModelSpec] = {}

# model.* settings every model reads (its networks and code size); the rest is declared per model.
COMMON_MODEL_SETTINGS = ("name", "latent_dim", "noise_dim", "decoder_variant", "bn_momentum", "bn_eps",
                         "encoder", "decoder")
_GMM_PRIOR = ("gmm_layout", "gmm_components", "gmm_radius", "gmm_std")
_SAMPLER_FIT = ("baseline.sampler_steps", "baseline.sampler_batch_size", "baseline.sampler_fit_points")


def _baseline(*names: str) -> tuple[str, ...]:
    return tuple(f"baseline.{n}" for n in names)


def register(name: str, spec: ModelSpec) -> None:
    """Make model `name` known to the whole library (CLI, configs, runs, experiments)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already")
    MODELS[name] = spec


for _name, _spec in {
    # The paper's models (flexae.models, trainers in flexae.training.trainers).
    "flexae": ModelSpec(build_flexae, AdversarialTrainer, settings=()),
    "flexae-sr": ModelSpec(build_flexae, AdversarialTrainer, images_only=True, settings=()),
    "wae": ModelSpec(build_wae, AdversarialTrainer, settings=()),
    "wae-gmm": ModelSpec(build_wae, AdversarialTrainer, settings=_GMM_PRIOR),
    "vae": ModelSpec(build_vae, VAETrainer, settings=()),
    # The baselines of Table 1 (flexae.baselines).
    "wae-mmd": ModelSpec(build_wae_mmd, WAEMMDTrainer, settings=_baseline("mmd_weight", "prior_std")),
    "ae-gmm": ModelSpec(build_expost_gmm_ae, RAETrainer, fit_gmm,
                        settings=_baseline("expost_gmm_components", "sampler_fit_points")),
    "rae-gmm": ModelSpec(build_expost_gmm_ae, RAETrainer, fit_gmm,
                         settings=_baseline("expost_gmm_components", "rae_code_weight", "rae_decoder_decay",
                                            "sampler_fit_points")),
    "2s-vae": ModelSpec(build_two_stage, TwoStageTrainer, fit_second_stage,
                        settings=_baseline("second_stage_width", "second_stage_depth", "second_stage_lr") + _SAMPLER_FIT),
    "vamp-vae": ModelSpec(build_vamp, VampTrainer,
                          settings=_baseline("vamp_pseudo_inputs", "vamp_init_mean", "vamp_init_std")),
    "iaf-vae": ModelSpec(build_iaf, IAFTrainer, settings=_baseline("iaf_steps", "iaf_hidden")),
    "vq-vae": ModelSpec(build_vqvae, VQVAETrainer, fit_code_prior,
                        settings=_baseline("vq_codebook_size", "vq_embedding_dim", "vq_commitment", "vq_prior_width",
                                           "vq_prior_layers", "vq_prior_lr") + _SAMPLER_FIT),
    "mask-aae": ModelSpec(build_mask_aae, MaskAAETrainer,
                          settings=_baseline("mask_variance_weight", "mask_rec_weight", "mask_lr", "mask_schedule")),
}.items():
    register(_name, _spec)

PAPER_MODELS = ("flexae", "flexae-sr", "wae", "wae-gmm", "vae")
BASELINE_NAMES = ("wae-mmd", "ae-gmm", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae")


def model_names() -> tuple[str, ...]:
    """Every registered model, in registration order (the paper's, the baselines, then any added)."""
    return tuple(MODELS)


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


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
