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
from flexae.priors import FlowMatchingPrior, LearnedPrior
from flexae.registry import build_model
from flexae.runs import prior_file
from flexae.runs.run_folder import RunFolder
from flexae.validation import config_from_dict


def build_for_config(cfg: RunConfig, source: str | Path) -> AutoEncoder:
    """The (untrained) model `cfg` describes, for the data shape of its data set."""
    if not is_known_dataset(cfg.train.dataset):
        raise UserError(f"{source} names an unknown data set {cfg.train.dataset!r}")
    return build_model(cfg.model, run_data_shape(cfg.train, source))


def model_from_checkpoint(state: dict, path: Path) -> tuple[AutoEncoder, RunConfig]:
    """(model with the checkpoint's weights, its RunConfig) from a checkpoint `state` loaded from
    `path` (with finite weights and optimizer states: RunFolder.checkpoint(finite=True))."""
    cfg = config_from_dict(state["config"], path)
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
    with prior=NAME (not "own") the prior of that name fitted after training (`flexae fit-prior`;
    "fitted" is prior.pt) replaces the model's own prior (a UserError if the run has none fitted to
    these weights)."""
    prior_file.check_prior(prior)
    path = Path(path)
    run = RunFolder(path.parent)
    state = run.checkpoint(path.name, map_location=device, finite=True)
    model, cfg = model_from_checkpoint(state, path)
    if with_sampler:
        run.load_sampler(model, state["step"])
    if prior != prior_file.OWN:
        load_learned_prior(model, run.path, state["step"], run_data_shape(cfg.train, path),
                           cfg.model.latent_dim, required=True, name=prior)
    return model, cfg, state


def build_prior(kind: str, settings: dict[str, Any], data_shape: tuple[int, ...], latent_dim: int) -> nn.Module:
    """The (unfitted) prior module of `kind` with `settings` (as a fitted prior file records them)
    for codes of size `latent_dim`; a UserError for settings that do not describe one."""
    try:
        if kind == "adversarial":  # the fit's G_psi: Table 8 networks for images, Table 6 for synthetic data
            shape = {"image": (1, 8, 8), "synthetic": (1,)}.get(settings.get("networks", ""), data_shape)
            generator, _ = prior_networks(shape, latent_dim, int(settings["noise_dim"]))
            return LearnedPrior(generator, int(settings["noise_dim"]))
        if kind == "gmm":
            from flexae.baselines.deterministic import GaussianMixtureSampler
            return GaussianMixtureSampler(int(settings["components"]), latent_dim)
        if kind == "flow-matching":
            return FlowMatchingPrior(latent_dim, int(settings["width"]), int(settings["depth"]),
                                     int(settings["ode_steps"]), str(settings["solver"]))
        if kind == "2s-vae":
            from flexae.baselines.variational import SecondStageVAE
            return SecondStageVAE(latent_dim, int(settings["width"]), int(settings["depth"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"garbled settings of a {kind} prior ({first_line(exc)})") from None
    raise UserError(f"unknown prior kind {kind!r} (known: {', '.join(prior_file.KINDS)})")


def attach_learned_prior(model: nn.Module, noise_dim: int, data_shape: tuple[int, ...],
                         latent_dim: int) -> LearnedPrior:
    """Give `model` an (untrained) learned prior of the fit's networks, in place of its own prior."""
    model.prior = build_prior("adversarial", {"noise_dim": noise_dim}, data_shape, latent_dim)
    return model.prior


def attach_prior(model: nn.Module, kind: str, settings: dict[str, Any], tensors: dict[str, torch.Tensor],
                 data_shape: tuple[int, ...], latent_dim: int, source: object, refit: str) -> nn.Module:
    """Replace the model's prior by a fitted prior of `kind` holding `tensors` (its state dict)."""
    prior = build_prior(kind, settings, data_shape, latent_dim)
    try:
        prior.load_state_dict(tensors)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"{source} does not fit this model ({first_line(exc)}); {refit}") from None
    check = getattr(prior, "check", None)  # the GMM's covariances
    if check is not None:
        check()
    model.prior = prior.eval()
    return prior


def load_learned_prior(model: nn.Module, run_dir: Path, step: int, data_shape: tuple[int, ...],
                       latent_dim: int, required: bool = False, name: str = prior_file.DEFAULT_NAME) -> bool:
    """Swap in the run's fitted prior `name` ("fitted": RUN_DIR/prior.pt) as the model's prior if the
    run has one fitted to these weights (with `required`, a missing or stale file is a UserError)."""
    run = RunFolder(run_dir)
    state = run.matching_prior(model, step, name, required)
    if state is None:
        return False
    attach_prior(model, state["kind"], state["settings"], state["tensors"], data_shape, latent_dim,
                 run.prior(name), f"run `flexae fit-prior {run_dir}` again")
    return True
