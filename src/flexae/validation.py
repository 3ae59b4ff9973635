"""Up-front checks of a RunConfig, command-line values and paths, so bad input fails at once, before
any data is loaded or file written, with a one-line UserError naming the field and what it accepts.

Types are checked against the dataclass annotations of `flexae.config` (so fields added later are
covered without changes here), every float must be finite, and the ranges and model/data-set
combinations below are checked by name.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

from flexae.config import BATCHNORM_STATS, BEST_SPLITS, CUDA_GRAPHS, PRECISIONS, RunConfig
from flexae.data import DATASETS, OWN_CHOICES, find_source
from flexae.data.user import check_image_shape, check_side
from flexae.errors import UserError
from flexae.ranges import MAX_THREADS_PER_CPU, check_options, check_ranges
from flexae.registry import COMMON_MODEL_SETTINGS, is_reference, model_names, model_options, read_by, resolve, spec
from flexae.trust import check_import, mark_from_file

CHANNELS_LAST = ("auto", "on", "off")
FEEDS = ("paper", "authors")
DECODER_VARIANTS = ("paper", "authors")
GMM_LAYOUTS = ("circle", "supplement")
INITS = ("glorot-uniform", "authors")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


# --- field types ----------------------------------------------------------------------------------

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(hint: Any) -> Any | None:
    """X for `X | None` / Optional[X], else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and type(None) in typing.get_args(hint):
            return args[0]
    return None


def _type_ok(value: Any, hint: Any) -> bool | None:
    """Whether `value` fits `hint`; None for hints this check does not understand (not checked)."""
    inner = _optional_inner(hint)
    if inner is not None:
        return True if value is None else _type_ok(value, inner)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def _type_name(hint: Any) -> str:
    inner = _optional_inner(hint)
    if inner is not None:
        return f"{_type_name(inner)} or None"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _check_types(node: Any, prefix: str) -> None:
    """Every field of the (nested) dataclass `node` has its annotated type; floats are finite."""
    for name, hint in _hints(type(node)).items():
        value, key = getattr(node, name), f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise UserError(f"{key} must be a section of settings, got {value!r:.60}")
            _check_types(value, key + ".")
            continue
        ok = _type_ok(value, hint)
        if ok is False:
            raise UserError(f"{key} must be {_type_name(hint)}, got {value!r:.60}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{key} must be a finite number, got {value}")


# --- ranges ---------------------------------------------------------------------------------------

def new_spelling(key: str) -> str:
    """A config key as this flexae spells it: `model.baseline.X` (the flat section of the baselines'
    settings before issue 20) is `model.options.X`, the model's own settings."""
    parts = key.split(".")
    return ".".join(["model", "options", *parts[2:]]) if parts[:2] == ["model", "baseline"] else key


def check_settings_read(cfg: RunConfig, keys: Any) -> None:
    """A `--set KEY=...` of a model setting the chosen model does not read is an error, not ignored
    (each model's settings are declared once, in its registry entry: `ModelSpec.settings` and
    `ModelSpec.options`)."""
    entry = spec(cfg.model.name)
    for key in keys:
        key = new_spelling(key.split("=", 1)[0].strip())
        if not key.startswith("model.") or entry.settings is None:
            continue
        name = key[len("model."):]
        if name.startswith("options."):  # the model's own settings: model_options checks them
            continue
        if name not in COMMON_MODEL_SETTINGS and name not in entry.settings:
            readers = [n for n in model_names() if spec(n).settings is not None and name in spec(n).settings]
            raise UserError(f"{cfg.model.name} does not read {key}" + (f" (read by: {', '.join(readers)})" if readers else "")
                            + "; leave it out")


def _check_paths(t: Any) -> None:
    """An empty train.data_dir ('') would silently mean the working directory ('folder:' is
    refused where train.dataset is parsed)."""
    if t.data_dir is not None and not str(t.data_dir).strip():
        raise UserError("train.data_dir is empty; give a folder, or leave it out")

def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"{name} must be positive, got {value}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise UserError(f"{name} must be >= {low}, got {value}")


def _between(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UserError(f"{name} must lie in [{low}, {high}], got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def validate_device(name: str) -> None:
    """A device string torch understands and this machine has."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} "
                            f"CUDA device(s), numbered from 0")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' requested but Apple MPS is not available; use --device cpu")


def validate_config(cfg: RunConfig, check_device: bool = True) -> None:
    """Raise a one-line UserError for the first wrong value in `cfg`.

    `check_device=False` skips the check that the configured device exists here, for configs read
    back from a run that is loaded onto another device.
    """
    if not isinstance(cfg, RunConfig):
        raise UserError(f"expected a RunConfig, got {type(cfg).__name__}")
    _check_types(cfg, "")
    m, o, t = cfg.model, cfg.optim, cfg.train
    if not isinstance(m.name, str):
        raise UserError(f"model.name must be a string, got {m.name!r:.60}")
    if is_reference(m.name):
        check_import(m, "name", m.name)  # a model module named by a file is imported only with consent
    spec(m.name)  # a registered name, or module:Name of a model of your own; one line otherwise
    options = model_options(m)
    if options is not None:
        _check_types(options, "model.options.")
    # (`m.options` itself is left as given, dict or instance: config_from_dict types it)
    data = find_source(t.dataset)  # train.dataset parsed once ("folder:" without a path refused here)
    if data is None:
        _choice("data set", t.dataset, DATASETS + OWN_CHOICES)  # not a choice: raises
    _validate_image_options(t, data.own)
    _choice("precision", t.precision, PRECISIONS)
    _choice("channels_last", t.channels_last, CHANNELS_LAST)
    _choice("cuda_graphs", t.cuda_graphs, CUDA_GRAPHS)
    _choice("feed", o.feed, FEEDS)
    _choice("decoder variant", m.decoder_variant, DECODER_VARIANTS)
    _choice("init", m.init, INITS)
    _choice("gmm layout", m.gmm_layout, GMM_LAYOUTS)
    if check_device:
        validate_device(t.device)
        if t.precision == "fp16":  # before the run folder is created; step_options checks again
            from flexae.devices import resolve_device
            from flexae.training.precision import step_options  # here: loading a run needs no training code
            step_options(t, resolve_device(t.device))
    elif not isinstance(t.device, str) or not DEVICE_PATTERN.fullmatch(t.device):
        raise UserError(f"unknown device {t.device!r}; use auto, cpu, cuda, cuda:N or mps")
    for name in ("ae", "critic", "reg", "ae_reg", "gen", "enc"):  # before the ranges: one line for both
        adam = getattr(o, name)
        if not (0 <= adam.beta1 < 1 and 0 <= adam.beta2 < 1):
            raise UserError(f"optim.{name} betas must lie in [0, 1), got ({adam.beta1}, {adam.beta2})")
    check_ranges(cfg)
    if check_device and t.cpu_threads > MAX_THREADS_PER_CPU * (os.cpu_count() or 1):
        raise UserError(f"train.cpu_threads must be at most {MAX_THREADS_PER_CPU * (os.cpu_count() or 1)} "
                        f"({MAX_THREADS_PER_CPU} per CPU of this machine's {os.cpu_count()}), got {t.cpu_threads}")
    if options is not None:
        check_options(options)
    _check_paths(t)
    if spec(m.name).images_only and not data.is_image:
        raise UserError(f"{m.name} needs image data (its smoothing critic is the convolutional net of "
                        "Table 8); use --model flexae on synthetic data")
    if t.eval_images != 0 and t.eval_images < 2:
        raise UserError(f"train.eval_images must be 0 (off) or at least 2, got {t.eval_images}")
    _choice("train.best_metric", t.best_metric, ("fid", "kid"))
    _choice("train.best_split", t.best_split, BEST_SPLITS)
    _choice("train.batchnorm_stats", t.batchnorm_stats, BATCHNORM_STATS)
    trainer = resolve(spec(m.name).trainer) if t.batchnorm_stats != "own" else None  # "own": nothing imported
    if trainer is not None and t.batchnorm_stats not in getattr(trainer, "batchnorm_stats_choices", ("own",)):
        raise UserError(f"train.batchnorm_stats={t.batchnorm_stats!r} exists for the models of Algorithm 1 "
                        f"(flexae, flexae-sr, wae, wae-gmm); {m.name} keeps 'own'")


def _validate_image_options(t: Any, own: bool) -> None:
    """train.image_size and train.image_shape: only for images of your own (`own`), and sides the
    networks take."""
    if not isinstance(t.image_size, int) or isinstance(t.image_size, bool) or t.image_size < 0:
        raise UserError(f"train.image_size must be 0 (keep the images' size) or a side, got {t.image_size!r:.60}")
    if t.image_size and not own:
        raise UserError(f"train.image_size resizes images of your own (folder:, npz:, npy:); {t.dataset} has "
                        f"a fixed size")
    if t.image_size:
        check_side(t.image_size, "train.image_size")
    if t.image_shape is not None:
        if not own:
            raise UserError(f"train.image_shape is recorded for images of your own only, not for {t.dataset}")
        check_image_shape(t.image_shape, "train.image_shape")


def config_from_dict(d: Any, source: str | Path) -> RunConfig:
    """Validated RunConfig from a JSON-like dict (a checkpoint's or config.json's); errors name `source`."""
    if not isinstance(d, dict) or not all(isinstance(d.get(k, {}), dict) for k in ("model", "optim", "train")):
        raise UserError(f"{source}: garbled config (expected sections model, optim and train)")
    try:
        cfg = RunConfig.from_dict(d)
    except (TypeError, ValueError, AttributeError) as exc:  # unknown or missing fields
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{source}: its config does not fit this flexae ({detail}); it may come from "
                        f"another flexae version") from None
    mark_from_file(cfg.model, source)  # its "module:Class" references are imported only with consent
    try:
        validate_config(cfg, check_device=False)
    except UserError as exc:
        raise UserError(f"{source}: bad config value: {exc}") from None
    # Typed, so that an older run's flat model.baseline section (RunConfig.from_dict) is written
    # back, on resume or export, as the model's own settings only.
    options = model_options(cfg.model)
    cfg.model.options = options if options is not None else {}
    return cfg


# --- command-line values --------------------------------------------------------------------------

def parse_value(raw: str, hint: Any, key: str) -> Any:
    """The text of `--set key=raw` as a value of the field's annotated type."""
    inner = _optional_inner(hint)
    if inner is not None:
        return None if raw.strip().lower() in ("none", "null") else parse_value(raw, inner, key)
    try:
        if hint is bool:
            word = raw.strip().lower()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise ValueError(raw)
            return word in TRUE_WORDS
        if hint is int:
            try:
                return int(raw)
            except ValueError:
                number = float(raw)  # accept 1e5 for 100000
                if not number.is_integer():
                    raise
                return int(number)
        if hint is float:
            return float(raw)
        if hint is str:
            return raw
    except (ValueError, OverflowError):
        raise UserError(f"cannot read {raw!r} as a value for {key} (expected {_type_name(hint)})") from None
    raise UserError(f"{key} cannot be set from the command line (its type is {hint})")


def apply_override(cfg: RunConfig, item: str) -> None:
    """Apply one `--set section.field=value` (e.g. optim.gen.lr=2e-4) with the field's own type."""
    if "=" not in item:
        raise UserError(f"--set takes KEY=VALUE, got {item!r}")
    key, raw = item.split("=", 1)
    key = new_spelling(key.strip())  # model.baseline.X of older scripts: the model's own setting X
    target: Any = cfg
    parts = key.split(".")
    if parts[:2] == ["model", "options"]:
        cfg.model.options = model_options(cfg.model)  # typed, so the value is read with its field's type
        if cfg.model.options is None:
            cfg.model.options = {}
            raise UserError(f"unknown config key {key!r}: model {cfg.model.name!r} has no settings of its own"
                            + (read_by(parts[2]) if len(parts) == 3 else ""))
        known = [f.name for f in dataclasses.fields(cfg.model.options)]
        if len(parts) == 3 and parts[2] not in known:
            raise UserError(f"model {cfg.model.name!r} has no setting model.options.{parts[2]}; its settings: "
                            f"{', '.join(sorted(known))}{read_by(parts[2])}")
    for i, part in enumerate(parts):
        fields = _hints(type(target)) if dataclasses.is_dataclass(target) else {}
        if part not in fields:
            known = ", ".join(".".join(parts[:i] + [f]) for f in fields)
            raise UserError(f"unknown config key {key!r}" + (f"; known here: {known}" if known else ""))
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(target, part)):
                raise UserError(f"{key} is a section; set one of its fields, e.g. "
                                f"{key}.{dataclasses.fields(getattr(target, part))[0].name}=...")
            setattr(target, part, parse_value(raw, fields[part], key))
            return
        target = getattr(target, part)


def validate_resume_steps(steps: int, done: int, run_dir: str | Path) -> None:
    if steps < done:
        raise UserError(f"{run_dir} is already at step {done}; --steps counts all iterations, so give "
                        f"at least {done}")


# --- paths ----------------------------------------------------------------------------------------

def validate_out_dir(out: str | Path) -> None:
    """A run folder that is a folder (or can be created) and can be written to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"run folder {out} exists and is not a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create run folder {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write run folder {out}: no write permission in {existing}")


def refuse_empty_path(value: Any, option: str) -> None:
    """'' (or blanks) as a path means the working directory to pathlib: refused with one line."""
    if value is not None and not str(value).strip():
        raise UserError(f"{option} is empty; give a path")


def validate_resume_dir(run_dir: str | Path) -> None:
    refuse_empty_path(run_dir, "--resume")
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise UserError(f"--resume takes the run folder, not a file: use --resume {run_dir.parent}")
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot resume {run_dir}: no write permission")


def validate_data_dir(data_dir: str | Path | None) -> None:
    refuse_empty_path(data_dir, "--data-dir")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"--data-dir {data_dir} is not an existing folder")
