"""`flexae fit-prior RUN_DIR [--kind KIND] [--name NAME]`: fit a prior (flexae.app.prior_kinds:
the paper's adversarial one by default, or gmm, flow-matching, 2s-vae) on the frozen codes of a
trained run's encoder and write it into the run under its name (flexae.runs.prior_file), so
`sample`, `eval`, `export` and `load_run` generate through it when asked (`--prior NAME`).
`fit_prior(codes)` does the same for codes of any encoder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flexae.config import OptimConfig
from flexae.data import as_float, load_for_config, run_data_shape
from flexae.devices import resolve_device
from flexae.errors import UserError
from flexae.app.prior_kinds import PriorFitConfig, fit_kind
from flexae.runs import prior_file
from flexae.app.build import read_model
from flexae.runs.folder import checkpoint_path
from flexae.runs.run_folder import RunFolder
from flexae.trust import allowing_code

ENCODE_BATCH = 256
NOT_SUPPORTED = {"vq-vae": "its codes are vector-quantised (a learned prior over continuous codes would decode "
                           "points between codebook entries)"}


@torch.no_grad()
def encode_all(encode, images: Tensor, device: torch.device, batch_size: int = ENCODE_BATCH) -> Tensor:
    """Codes (N, m) on `device` of uint8 images (N, C, H, W) (or float data), in batches."""
    parts = [encode(as_float(images[i:i + batch_size]).to(device)) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts).float()


def fit_prior(codes: Tensor, *, kind: str = "adversarial", noise_dim: int | None = None, networks: str = "image",
              optim: OptimConfig | None = None, steps: int = 5000, batch_size: int = 128, seed: int = 0,
              progress: bool = True, fit: PriorFitConfig | None = None) -> tuple[torch.nn.Module, dict[str, float]]:
    """A prior of `kind` (adversarial, gmm, flow-matching, 2s-vae; flexae.app.prior_kinds) for
    codes (N, m) of your own encoder: returns (prior, statistics); `prior.sample(n)` gives (n, m)
    codes for your decoder. `networks` (adversarial): "image" (Table 8: 4 x 1024 wide MLPs) or
    "synthetic" (Table 6: 128 wide). `fit` holds the other kinds' settings (steps, batch_size and
    noise_dim given here win)."""
    if networks not in ("image", "synthetic"):
        raise UserError(f"networks must be 'image' (Table 8) or 'synthetic' (Table 6), got {networks!r}")
    fit = dataclasses.replace(fit or PriorFitConfig(), steps=steps, batch_size=batch_size, noise_dim=noise_dim)
    fitted = fit_kind(kind, codes, (1, 8, 8) if networks == "image" else (1,), fit, optim, seed, progress)
    return fitted.module, fitted.stats


def encode_run(run_dir: str | Path, fit_points: int = 0, data_dir: str | None = None, device: str = "auto",
               seed: int | None = None, trust_code: bool = False,
               with_sampler: bool = False) -> tuple[Any, Any, dict, Tensor]:
    """(model with its own prior, RunConfig, checkpoint state, codes (N, m) of the training images
    (all, or a random `fit_points`) on `device`) of a run, for fitting priors to its codes; its
    ex-post sampler (sampler.pt) is loaded only `with_sampler` (the fits do not need it)."""
    path = checkpoint_path(run_dir)
    torch_device = resolve_device(device)
    with allowing_code(trust_code):
        model, cfg, state = read_model(path, torch_device, with_sampler=with_sampler)
    if cfg.model.name in NOT_SUPPORTED:
        raise UserError(f"fit-prior does not apply to {cfg.model.name}: {NOT_SUPPORTED[cfg.model.name]}")
    if fit_points < 0:
        raise UserError(f"--fit-points must be >= 0 (0: all training images), got {fit_points}")
    model = model.to(torch_device).eval()
    train = load_for_config(cfg.train, data_dir).train
    seed = cfg.train.seed if seed is None else seed
    if fit_points and fit_points < train.shape[0]:
        train = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:fit_points]]
    return model, cfg, state, encode_all(model.encode, train, torch_device)


def fit_prior_run(run_dir: str | Path, *, kind: str = "adversarial", name: str | None = None, steps: int = 5000,
                  batch_size: int | None = None, fit_points: int = 0, noise_dim: int | None = None,
                  data_dir: str | None = None, device: str = "auto", seed: int | None = None, progress: bool = True,
                  trust_code: bool = False, fit: PriorFitConfig | None = None) -> dict[str, float]:
    """Fit a prior of `kind` on the codes of a run's training images (all, or a random `fit_points`)
    and write it into the run under `name` (default: "fitted" for the adversarial kind, that is
    RUN_DIR/prior.pt as before, else the kind), beside the priors of other names. The adversarial
    fit uses the run's optimisers (optim.critic, optim.gen, critic_steps, gp_weight); every kind
    uses the run's batch size unless given; `trust_code`: as for `load_run`."""
    prior_file.check_kind(kind)
    name = prior_file.check_prior(name or default_name(kind))
    if name == prior_file.OWN:
        raise UserError("--name own is the run's own prior; give the fitted prior another name")
    model, cfg, state, codes = encode_run(run_dir, fit_points, data_dir, device, seed, trust_code)
    run, _ = RunFolder.of(run_dir)
    seed = cfg.train.seed if seed is None else seed
    noise_dim = noise_dim or cfg.model.noise_dim or codes.shape[1]
    fit = dataclasses.replace(fit or PriorFitConfig(), steps=steps, noise_dim=noise_dim,
                              batch_size=batch_size or cfg.train.batch_size)
    with run.lock():  # not while a training process writes this run
        fitted = fit_kind(kind, codes, run_data_shape(cfg.train, run.path), fit, cfg.optim, seed, progress)
        run.save_prior(name, kind, fitted.settings, model, fitted.module, int(state["step"]), fitted.stats)
        run.log.write({"step": int(state["step"]), "prior_fit": {"name": name, "kind": kind,
                                                                 **json.loads(json.dumps(fitted.stats))}})
    return fitted.stats


def default_name(kind: str) -> str:
    """The name a fit of `kind` is saved under without --name: "fitted" (prior.pt) for the paper's prior."""
    return prior_file.DEFAULT_NAME if kind == "adversarial" else kind


__all__ = ["fit_prior", "fit_prior_run", "encode_all", "encode_run", "default_name"]
