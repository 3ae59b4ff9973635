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

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from flexae.config import BaselineConfig, ModelConfig, OptimConfig, class_reference
from flexae.errors import UserError
from flexae.trust import check_import
from flexae.ranges import validate_baseline_config

if TYPE_CHECKING:  # the registry itself imports neither torch nor a model: the CLI lists its names
    from torch import Tensor
    from flexae.baselines.common import ExPostFit
    from flexae.models import AutoEncoder

# (model, optim config, batch source, StepOptions | None) -> a flexae.training.steps.Trainer
TrainerFactory = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model, and where its training side lives. Each of `build`, `trainer` and
    `fit_sampler` may be a "module:name" reference, imported on first use: listing the models
    (the CLI's help) imports nothing, building or loading one imports no training code (`load_run`
    needs only `build`)."""

    build: Callable[[ModelConfig, tuple[int, ...]], AutoEncoder] | str  # (config, data shape) -> model
    trainer: TrainerFactory | str                                 # (model, optim, batches, options)
    fit_sampler: ExPostFit | str | None = None                    # ex-post sampler fit, if it has one
    images_only: bool = False                                     # refuses synthetic data
    options: type | None = None                                   # dataclass of the model's own settings
    summary: str = ""                                             # what it is, for the CLI's help
    # The model.* settings it reads beyond COMMON_MODEL_SETTINGS ("gmm_std", "baseline.mmd_weight"):
    # a --set of any other is an error. None: not declared (models registered from outside), not checked.
    settings: tuple[str, ...] | None = None


def resolve(reference: Any) -> Any:
    """A "module:name" reference of this registry -> the object; anything else as it is."""
    if not isinstance(reference, str):
        return reference
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelSpec] = {}

# model.* settings every model reads (its networks and code size); the rest is declared per model.
COMMON_MODEL_SETTINGS = ("name", "latent_dim", "noise_dim", "decoder_variant", "init", "bn_momentum", "bn_eps",
                         "encoder", "decoder", "options")
_GMM_PRIOR = ("gmm_layout", "gmm_components", "gmm_radius", "gmm_std")
_SAMPLER_FIT = ("baseline.sampler_steps", "baseline.sampler_batch_size", "baseline.sampler_fit_points")


def _baseline(*names: str) -> tuple[str, ...]:
    return tuple(f"baseline.{n}" for n in names)


def register(name: str, spec: ModelSpec) -> None:
    """Make model `name` known to the whole library (CLI, configs, runs, experiments)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already")
    MODELS[name] = spec


_M = "flexae.models"             # the paper's models
_T = "flexae.training.trainers"  # the paper's trainers (Algorithm 1 and the VAE)
_B = "flexae.baselines"          # each baseline family: its model flexae.baselines.<family>, its
                                 # training side flexae.baselines.<family>_train
for _name, _spec in {
    # The paper's models (flexae.models, trainers in flexae.training.trainers).
    "flexae": ModelSpec(f"{_M}:build_flexae", f"{_T}:AdversarialTrainer", settings=()),
    "flexae-sr": ModelSpec(f"{_M}:build_flexae", f"{_T}:AdversarialTrainer", images_only=True, settings=()),
    "wae": ModelSpec(f"{_M}:build_wae", f"{_T}:AdversarialTrainer", settings=(),
                     summary="FlexAE with its prior fixed to N(0, I), the paper's ablation"),
    "wae-gmm": ModelSpec(f"{_M}:build_wae", f"{_T}:AdversarialTrainer", settings=_GMM_PRIOR,
                         summary="the same, prior fixed to a Gaussian mixture"),
    "vae": ModelSpec(f"{_M}:build_vae", f"{_T}:VAETrainer", settings=()),
    # The baselines of Table 1 (flexae.baselines).
    "wae-gan": ModelSpec(f"{_B}.wae_gan:build_wae_gan", f"{_B}.wae_gan_train:WAEGANTrainer", settings=_baseline('wae_gan_weight', 'wae_gan_lr', 'wae_gan_adversary_lr', 'wae_gan_beta1', 'wae_gan_prior_trick', 'wae_gan_schedule', 'wae_gan_schedule_steps', 'wae_cost_scale', 'wae_input_noise', 'prior_std')),
    "wae-mmd": ModelSpec(f"{_B}.deterministic:build_wae_mmd", f"{_B}.deterministic_train:WAEMMDTrainer", settings=_baseline("mmd_weight", "prior_std", "wae_cost_scale", "wae_input_noise")),
    "ae-gmm": ModelSpec(f"{_B}.deterministic:build_expost_gmm_ae", f"{_B}.deterministic_train:RAETrainer",
                        f"{_B}.deterministic_train:fit_gmm", settings=_baseline("expost_gmm_components", "sampler_fit_points")),
    "rae-gmm": ModelSpec(f"{_B}.deterministic:build_expost_gmm_ae", f"{_B}.deterministic_train:RAETrainer",
                         f"{_B}.deterministic_train:fit_gmm", settings=_baseline("expost_gmm_components", "rae_code_weight", "rae_decoder_decay", "sampler_fit_points")),
    "2s-vae": ModelSpec(f"{_B}.variational:build_two_stage", f"{_B}.variational_train:TwoStageTrainer",
                        f"{_B}.variational_train:fit_second_stage", settings=_baseline("second_stage_width", "second_stage_depth", "second_stage_lr") + _SAMPLER_FIT),
    "vamp-vae": ModelSpec(f"{_B}.variational:build_vamp", f"{_B}.variational_train:VampTrainer", settings=_baseline("vamp_pseudo_inputs", "vamp_init_mean", "vamp_init_std")),
    "iaf-vae": ModelSpec(f"{_B}.variational:build_iaf", f"{_B}.variational_train:IAFTrainer", settings=_baseline("iaf_steps", "iaf_hidden")),
    "vq-vae": ModelSpec(f"{_B}.vqvae:build_vqvae", f"{_B}.vqvae_train:VQVAETrainer", f"{_B}.vqvae_train:fit_code_prior", settings=_baseline("vq_codebook_size", "vq_embedding_dim", "vq_commitment", "vq_prior_width", "vq_prior_layers", "vq_prior_lr") + _SAMPLER_FIT),
    "mask-aae": ModelSpec(f"{_B}.maskaae:build_mask_aae", f"{_B}.maskaae_train:MaskAAETrainer", settings=_baseline("mask_variance_weight", "mask_rec_weight", "mask_lr", "mask_schedule")),
    "vae-iop": ModelSpec(f"{_B}.iop:build_iop", f"{_B}.iop_train:IOPTrainer", settings=_baseline('iop_ratio_width', 'iop_ratio_depth', 'iop_ratio_dropout', 'iop_ratio_lr', 'iop_ratio_steps', 'iop_sir_candidates')),
    "pioneer": ModelSpec(f"{_B}.pioneer:build_pioneer", f"{_B}.pioneer_train:PioneerTrainer", settings=_baseline('pioneer_generator_steps', 'pioneer_real_kl_weight', 'pioneer_fake_kl_weight', 'pioneer_image_weight', 'pioneer_code_weight', 'pioneer_lr', 'pioneer_beta1', 'pioneer_beta2')),
    "alae": ModelSpec(f"{_B}.alae:build_alae", f"{_B}.alae_train:ALAETrainer", settings=_baseline('alae_mapping_layers', 'alae_mapping_width', 'alae_head_layers', 'alae_r1_gamma', 'alae_lr', 'alae_beta1', 'alae_beta2', 'alae_equalized_lr')),
}.items():
    register(_name, _spec)

PAPER_MODELS = ("flexae", "flexae-sr", "wae", "wae-gmm", "vae")
BASELINE_NAMES = ("wae-gan", "wae-mmd", "ae-gmm", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae")
BASELINE_NAMES += ("vae-iop", "pioneer", "alae")  # issue 19: the Table 1 rows added after the refactoring


def is_reference(name: str) -> bool:
    """Whether a model name is a "module:Name" reference to a model defined outside flexae."""
    return ":" in name


def _external_spec(name: str) -> ModelSpec:
    """The ModelSpec a "module:Name" reference names (a ModelSpec, or a class whose `spec` is one),
    registered under that name so that the run's config.json rebuilds it in a fresh process."""
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise UserError(f"model {name!r}: a model of your own is named as module:Name")
    try:
        found = resolve(name)
    except ImportError as exc:
        raise UserError(f"model {name!r}: cannot import {module!r} ({exc})") from None
    except AttributeError:
        raise UserError(f"model {name!r}: module {module!r} has no {attr!r}") from None
    entry = getattr(found, "spec", found)
    if not isinstance(entry, ModelSpec):
        raise UserError(f"model {name!r} names a {type(found).__name__}; it must name a flexae.registry.ModelSpec "
                        f"or a class whose `spec` attribute is one")
    register(name, entry)
    return entry


def model_names() -> tuple[str, ...]:
    """Every registered model, in registration order (the paper's, the baselines, then any added)."""
    return tuple(MODELS)


def spec(name: str) -> ModelSpec:
    """The registry entry of model `name`; a "module:Name" reference is imported and registered."""
    if name not in MODELS:
        if isinstance(name, str) and is_reference(name):
            return _external_spec(name)
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)} (or module:Name of your own)")
    return MODELS[name]


def model_options(cfg: ModelConfig) -> Any:
    """`cfg.options` as an instance of the model's own options dataclass (from a dict of JSON, or
    as given); one-line UserErrors for settings the model does not have."""
    options_type = spec(cfg.name).options
    given = cfg.options
    if options_type is None:
        if given not in ({}, None):
            raise UserError(f"model {cfg.name!r} has no settings of its own (model.options), got {given!r:.80}")
        return None
    if isinstance(given, options_type):
        return given
    if dataclasses.is_dataclass(given):
        given = dataclasses.asdict(given)
    if not isinstance(given, dict):
        raise UserError(f"model.options of {cfg.name!r} must be a section of settings, got {given!r:.60}")
    known = {f.name for f in dataclasses.fields(options_type)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UserError(f"model {cfg.name!r} has no setting model.options.{unknown[0]}; its settings: "
                        f"{', '.join(sorted(known)) or 'none'}")
    return options_type(**given)


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
            if not isinstance(value, (type, str)):
                raise UserError(f"build_model({name}=...) takes the class ({type(value).__name__}), not an "
                                f"instance: flexae builds it as Class(data_shape, size) and records its name")
            setattr(cfg, name, class_reference(value))
    if is_reference(cfg.name):
        check_import(cfg, "name", cfg.name)  # a model module named by a file is imported only with consent
    entry = spec(cfg.name)
    if cfg.name in BASELINE_NAMES:
        validate_baseline_config(cfg.baseline)
        from flexae.baselines.wae_gan import SCHEDULES as WAE_GAN_SCHEDULES
        if cfg.baseline.wae_gan_schedule not in WAE_GAN_SCHEDULES:
            raise UserError(f"model.baseline.wae_gan_schedule must be one of {', '.join(WAE_GAN_SCHEDULES)}, "
                            f"got {cfg.baseline.wae_gan_schedule!r}")
    options = model_options(cfg)  # typed: the builder reads cfg.options.<field>
    if options is not None:
        cfg.options = options  # (models without settings of their own keep {}, as config.json has it)
    model = resolve(entry.build)(cfg, data_shape)
    model.model_name = cfg.name
    model.baseline_config = cfg.baseline
    model.options = options  # the model's own settings, for its trainer (None: it has none)
    model.data_shape = tuple(data_shape)  # the shape of one data point: (C, H, W) for images
    return model


def make_trainer(model: AutoEncoder, cfg: OptimConfig, batches: Callable[[], Tensor], options: Any = None,
                 batchnorm_stats: str = "own", seed: int = 0) -> Any:
    """The trainer of a model built by `build_model`; `options` (precision, memory format) apply
    to every trainer alike (flexae.training.precision). `batchnorm_stats` (train.batchnorm_stats,
    flexae.training.batchnorm) other than "own" needs a source that takes a generator
    (flexae.data.RandomBatches); `seed` seeds its private draws."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise TypeError(f"{type(model).__name__} was not built by flexae.registry.build_model")
    trainer = resolve(spec(name).trainer)(model, cfg, batches, options)
    if batchnorm_stats != "own":
        trainer.use_batchnorm_stats(batchnorm_stats, seed)
    return trainer


def fit_sampler(model: AutoEncoder, train_data: Tensor, hp: BaselineConfig | None = None, seed: int = 0,
                progress: bool = False) -> dict[str, float]:
    """Fit the model's ex-post sampler on training data (N, ...); TypeError for models without one."""
    name = getattr(model, "model_name", None)
    fit = resolve(spec(name).fit_sampler) if name is not None else None
    if fit is None or model.expost_sampler is None:
        raise TypeError(f"{type(model).__name__} has no ex-post sampler")
    from flexae.baselines.common import fit_expost_sampler
    return fit_expost_sampler(model, fit, train_data, hp or model.baseline_config, seed, progress)
