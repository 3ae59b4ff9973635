"""The model a run's config describes, and the one check of a checkpoint's model used by every
reader of checkpoints (load_run, resume, export, fit-sampler): a config this flexae can rebuild,
finite weights and optimizer states, and weights that fit the model the config describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from flexae.config import RunConfig
from flexae.data import is_known_dataset, run_data_shape
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.files import first_line
from flexae.nets.factory import prior_networks
from flexae.priors import LearnedPrior
from flexae.registry import build_model
from flexae.runs.layout import PRIOR_NAME
from flexae.runs.checkpoint import check_finite_state, load_checkpoint
from flexae.runs import prior_file
from flexae.runs.sampler_file import load_into
from flexae.validation import config_from_dict


def build_for_config(cfg: RunConfig, source: str | Path) -> AutoEncoder:
    """The (untrained) model `cfg` describes, for the data shape of its data set."""
    if not is_known_dataset(cfg.train.dataset):
        raise UserError(f"{source} names an unknown data set {cfg.train.dataset!r}")
    return build_model(cfg.model, run_data_shape(cfg.train, source))


def model_from_checkpoint(state: dict, path: Path) -> tuple[AutoEncoder, RunConfig]:
    """(model with the checkpoint's weights, its RunConfig) from a loaded checkpoint `state`."""
    cfg = config_from_dict(state["config"], path)
    check_finite_state(state, path)
    model = build_for_config(cfg, path)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, ValueError) as exc:  # missing, extra or mis-shaped tensors
        raise UserError(f"{path}: weights do not fit the model its config describes ({first_line(exc)})") from None
    return model, cfg


def read_model(path: Path, device: str | torch.device = "cpu", with_sampler: bool = True,
               prior: str = "own") -> tuple[AutoEncoder, RunConfig, dict[str, Any]]:
    """(model, its RunConfig, the loaded checkpoint state) from the checkpoint file `path`, checked;
    with `with_sampler` the run's fitted ex-post sampler (sampler.pt) is loaded too, if it has one;
    with prior="fitted" the prior learned after training (prior.pt, `flexae fit-prior`) replaces the
    model's own prior (a UserError if the run has none fitted to these weights)."""
    prior_file.check_prior(prior)
    state = load_checkpoint(path, map_location=device)
    model, cfg = model_from_checkpoint(state, path)
    if with_sampler:
        load_into(model, Path(path).parent, state["step"])
    if prior == "fitted":
        load_learned_prior(model, Path(path).parent, state["step"], run_data_shape(cfg.train, path),
                           cfg.model.latent_dim, required=True)
    return model, cfg, state


def attach_learned_prior(model: nn.Module, noise_dim: int, data_shape: tuple[int, ...],
                         latent_dim: int) -> LearnedPrior:
    """Give `model` an (untrained) learned prior of the fit's networks, in place of its own prior."""
    generator, _ = prior_networks(data_shape, latent_dim, noise_dim)
    model.prior = LearnedPrior(generator, noise_dim)
    return model.prior


def load_learned_prior(model: nn.Module, run_dir: Path, step: int, data_shape: tuple[int, ...],
                       latent_dim: int, required: bool = False) -> bool:
    """Swap in RUN_DIR/prior.pt as the model's prior if the run has one fitted to these weights
    (with `required`, a missing or stale file is a UserError)."""
    state = prior_file.matching_state(model, run_dir, step, required)
    if state is None:
        return False
    prior = attach_learned_prior(model, state["noise_dim"], data_shape, latent_dim)
    try:
        prior.generator.load_state_dict(state["generator"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"{run_dir / PRIOR_NAME} does not fit this model ({first_line(exc)}); run "
                        f"`flexae fit-prior {run_dir}` again") from None
    return True
