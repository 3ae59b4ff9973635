"""Every model by name: how to build it, how to train it, and (for baselines that generate through
an ex-post sampler) how to fit that sampler. The training loop, the run loader, the CLI and the
experiments find models only here, so adding a model is one module plus one `register` line:

    from flexae.registry import ModelSpec, register
    register("my-ae", ModelSpec(build_my_ae, MyTrainer))

`build(cfg: ModelConfig, data_shape) -> AutoEncoder`; `trainer(model, optim_cfg, batches, options)
-> Trainer` (flexae.training.steps has the building blocks); `fit_sampler(sampler, targets, hp,
generator, seed, progress) -> stats` fits `model.prior` to `model.sampler_targets(x)` of the
training data (flexae.baselines.common.fit_expost_sampler does the encoding). A model's own
settings are a dataclass, `ModelSpec.options`: `model.options` of its config, `model.options` of
the built model for its trainer and sampler fit.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from flexae.config import LegacyBaselineSection, ModelConfig, OptimConfig, class_reference
from flexae.errors import UserError
from flexae.trust import check_import
from flexae.ranges import check_options

if TYPE_CHECKING:  # the registry itself imports neither torch nor a model: the CLI lists its names
    from torch import Tensor
    from flexae.baselines.common import ExPostFit
    from flexae.models import AutoEncoder

# (model, optim config, batch source, StepOptions | None) -> a flexae.training.steps.Trainer
TrainerFactory = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model, and where its training side lives. Each of `build`, `trainer`,
    `fit_sampler` and `options` may be a "module:name" reference, imported on first use: listing
    the models (the CLI's help) imports nothing, building or loading one imports no training code
    (`load_run` needs only `build`).

    `options`: the dataclass of the model's own settings (`model.options`), defaults in its fields;
    a field's `metadata={"range": Range(...)}` (flexae.ranges.ranged) is checked, and so is the
    dataclass's own `check()` method, if it has one (flexae.ranges.check_options)."""

    build: Callable[[ModelConfig, tuple[int, ...]], AutoEncoder] | str  # (config, data shape) -> model
    trainer: TrainerFactory | str                                 # (model, optim, batches, options)
    fit_sampler: ExPostFit | str | None = None                    # ex-post sampler fit, if it has one
    images_only: bool = False                                     # refuses synthetic data
    options: type | str | None = None                             # dataclass of the model's own settings
    summary: str = ""                                             # what it is, for the CLI's help
    # The model.* settings it reads beyond COMMON_MODEL_SETTINGS and its options ("gmm_std"): a
    # --set of any other is an error. None: not declared (models registered from outside), not checked.
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


def register(name: str, spec: ModelSpec) -> None:
    """Make model `name` known to the whole library (CLI, configs, runs, experiments)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already")
    MODELS[name] = spec


def _baseline(family: str, build: str, trainer: str, options: str, fit_sampler: str | None = None) -> ModelSpec:
    """The entry of a baseline of flexae.baselines.<family>: its builder and options dataclass in
    that module, its trainer (and ex-post sampler fit) in <family>_train. Its settings are all
    its options (model.options), none of the other model.* fields."""
    model, train = f"flexae.baselines.{family}", f"flexae.baselines.{family}_train"
    return ModelSpec(f"{model}:{build}", f"{train}:{trainer}", f"{train}:{fit_sampler}" if fit_sampler else None,
                     options=f"{model}:{options}", settings=())


_M = "flexae.models"             # the paper's models
_T = "flexae.training.trainers"  # the paper's trainers (Algorithm 1 and the VAE)
for _name, _spec in {
    # The paper's models (flexae.models, trainers in flexae.training.trainers).
    "flexae": ModelSpec(f"{_M}:build_flexae", f"{_T}:AdversarialTrainer", settings=()),
    "flexae-sr": ModelSpec(f"{_M}:build_flexae", f"{_T}:AdversarialTrainer", images_only=True, settings=()),
    "wae": ModelSpec(f"{_M}:build_wae", f"{_T}:AdversarialTrainer", settings=(),
                     summary="FlexAE with its prior fixed to N(0, I), the paper's ablation"),
    "wae-gmm": ModelSpec(f"{_M}:build_wae", f"{_T}:AdversarialTrainer", settings=_GMM_PRIOR,
                         summary="the same, prior fixed to a Gaussian mixture"),
    "vae": ModelSpec(f"{_M}:build_vae", f"{_T}:VAETrainer", settings=()),
    # The baselines of Table 1 (flexae.baselines): each family's settings are a dataclass of its module.
    "wae-gan": _baseline("wae_gan", "build_wae_gan", "WAEGANTrainer", "WAEGANOptions"),
    "wae-mmd": _baseline("deterministic", "build_wae_mmd", "WAEMMDTrainer", "WAEMMDOptions"),
    "ae-gmm": _baseline("deterministic", "build_expost_gmm_ae", "RAETrainer", "ExPostGMMOptions", "fit_gmm"),
    "rae-gmm": _baseline("deterministic", "build_expost_gmm_ae", "RAETrainer", "RAEGMMOptions", "fit_gmm"),
    "2s-vae": _baseline("variational", "build_two_stage", "TwoStageTrainer", "TwoStageOptions", "fit_second_stage"),
    "vamp-vae": _baseline("variational", "build_vamp", "VampTrainer", "VampOptions"),
    "iaf-vae": _baseline("variational", "build_iaf", "IAFTrainer", "IAFOptions"),
    "vq-vae": _baseline("vqvae", "build_vqvae", "VQVAETrainer", "VQVAEOptions", "fit_code_prior"),
    "mask-aae": _baseline("maskaae", "build_mask_aae", "MaskAAETrainer", "MaskAAEOptions"),
    "vae-iop": _baseline("iop", "build_iop", "IOPTrainer", "IOPOptions"),
    "pioneer": _baseline("pioneer", "build_pioneer", "PioneerTrainer", "PioneerOptions"),
    "alae": _baseline("alae", "build_alae", "ALAETrainer", "ALAEOptions"),
}.items():
    register(_name, _spec)

PAPER_MODELS = ("flexae", "flexae-sr", "wae", "wae-gmm", "vae")
BASELINE_NAMES = ("wae-gan", "wae-mmd", "ae-gmm", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae")
BASELINE_NAMES += ("vae-iop", "pioneer", "alae")  # issue 19: the Table 1 rows added after the refactoring
BUILT_IN = PAPER_MODELS + BASELINE_NAMES


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


def options_type(name: str) -> type | None:
    """The options dataclass of model `name` (imported on first use), or None if it has none."""
    return resolve(spec(name).options)


def model_options(cfg: ModelConfig) -> Any:
    """`cfg.options` as an instance of the model's own options dataclass (from a dict of JSON, or
    as given); one-line UserErrors for settings the model does not have. The flat `model.baseline`
    section of an older run (config.LegacyBaselineSection) gives the settings this model has, and
    the rest, every other baseline's settings at their defaults, is dropped."""
    kind, given = options_type(cfg.name), cfg.options
    if isinstance(given, LegacyBaselineSection):
        known = {f.name for f in dataclasses.fields(kind)} if kind is not None else set()
        given = {key: value for key, value in given.items() if key in known}
    if kind is None:
        if given not in ({}, None):
            raise UserError(f"model {cfg.name!r} has no settings of its own (model.options), got {given!r:.80}")
        return None
    if isinstance(given, kind):
        return given
    if dataclasses.is_dataclass(given):
        given = dataclasses.asdict(given)
    if not isinstance(given, dict):
        raise UserError(f"model.options of {cfg.name!r} must be a section of settings, got {given!r:.60}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UserError(f"model {cfg.name!r} has no setting model.options.{unknown[0]}; its settings: "
                        f"{', '.join(sorted(known)) or 'none'}{read_by(unknown[0])}")
    return kind(**given)


def read_by(setting: str) -> str:
    """" (a setting of: vq-vae)" for a setting other models have among their options, else "": the
    hint of an error for a setting the chosen model does not have."""
    owners = [name for name in BUILT_IN if (kind := options_type(name)) is not None
              and setting in {f.name for f in dataclasses.fields(kind)}]
    return f" (a setting of: {', '.join(owners)})" if owners else ""


def set_options(cfg: ModelConfig, **values: Any) -> None:
    """Set those of `values` that are settings of the model's own (model.options), typing them
    first; values for other models' settings are no error (a table or test sets them for all its
    models at once, as the flat model.baseline section of older flexae held them)."""
    options = model_options(cfg)
    if options is None:
        return
    names = {f.name for f in dataclasses.fields(options)}
    for name, value in values.items():
        if name in names:
            setattr(options, name, value)
    cfg.options = options


def build_model(cfg: ModelConfig, data_shape: tuple[int, ...], *, encoder: type | str | None = None,
                decoder: type | str | None = None) -> AutoEncoder:
    """Model `cfg.name` for data of shape `data_shape` ((128,) synthetic, (C, H, W) images); it
    keeps its name and its own settings (`model.options`) for its trainer and sampler fit.

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
    options = model_options(cfg)  # typed: the builder reads cfg.options.<field>
    if options is not None:
        check_options(options)  # as validate_config does, for models built in Python
    cfg.options = options if options is not None else {}  # {}: config.json's value for "no settings of its own"
    model = resolve(entry.build)(cfg, data_shape)
    model.model_name = cfg.name
    model.options = options  # the model's own settings, for its trainer and sampler fit (None: it has none)
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


def fit_sampler(model: AutoEncoder, train_data: Tensor, hp: Any = None, seed: int = 0,
                progress: bool = False) -> dict[str, float]:
    """Fit the model's ex-post sampler on training data (N, ...) with the fit settings of `hp`
    (default: the model's options, flexae.baselines.common.fit_options); TypeError for models
    without one."""
    name = getattr(model, "model_name", None)
    fit = resolve(spec(name).fit_sampler) if name is not None else None
    if fit is None or model.expost_sampler is None:
        raise TypeError(f"{type(model).__name__} has no ex-post sampler")
    from flexae.baselines.common import fit_expost_sampler, fit_options
    return fit_expost_sampler(model, fit, train_data, hp or fit_options(model), seed, progress)
