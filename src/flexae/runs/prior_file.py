"""`RUN_DIR/prior.pt`: a FlexAE prior (G_psi) learned after training on the frozen codes of the
run's encoder (`flexae fit-prior`, flexae.training.prior_fit). When the file is there, `load_run`
(and so `flexae sample`, `flexae eval`, `flexae export`) generates through it: D(G_psi(n)); pass
`load_run(..., learned_prior=False)` for the run's own prior. The file holds tensors and plain
values only (the generator's state dict, its noise size, the training step and a fingerprint of
the weights it was fitted to, fit statistics), read back with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flexae.errors import UserError
from flexae.files import atomic_write, first_line
from flexae.finite import require_finite
from flexae.nets.factory import prior_networks
from flexae.priors import LearnedPrior
from flexae.runs.checkpoint import tensor_digest
from flexae.runs.layout import PRIOR_NAME
from flexae.runs.sampler_file import first_stage_fingerprint


def save(run_dir: Path, model: nn.Module, prior: LearnedPrior, step: int, stats: dict[str, float]) -> Path:
    """Write RUN_DIR/prior.pt atomically (the model is the run's, with its own prior)."""
    state = {"step": int(step), "fingerprint": first_stage_fingerprint(model), "noise_dim": int(prior.noise_dim),
             "stats": stats, "generator": {k: v.detach().cpu() for k, v in prior.generator.state_dict().items()}}
    state["checksum"] = _digest(state)
    path = Path(run_dir) / PRIOR_NAME
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def _digest(state: dict[str, Any]) -> str:
    return tensor_digest(state["generator"], f"{state['step']}|{state['fingerprint']!r}|{state['noise_dim']}")


def read(path: Path) -> dict[str, Any]:
    """RUN_DIR/prior.pt, checked; a UserError names the command that writes it again."""
    refit = f"run `flexae fit-prior {path.parent}` to write it again, or delete it"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        checked = {"step": int(state["step"]), "fingerprint": float(state["fingerprint"]),
                   "noise_dim": int(state["noise_dim"]), "generator": dict(state["generator"]),
                   "stats": state.get("stats", {})}
    except Exception as exc:  # damaged, or not a prior file
        raise UserError(f"cannot load learned prior {path} ({first_line(exc)}); {refit}") from None
    if state.get("checksum") != _digest(checked):
        raise UserError(f"{path} is damaged (its contents do not match their checksum); {refit}")
    require_finite({"generator": checked["generator"]}, path, refit)
    return checked


def attach(model: nn.Module, noise_dim: int, data_shape: tuple[int, ...], latent_dim: int) -> LearnedPrior:
    """Give `model` an (untrained) learned prior of the fit's networks, in place of its own prior."""
    generator, _ = prior_networks(data_shape, latent_dim, noise_dim)
    model.prior = LearnedPrior(generator, noise_dim)
    return model.prior


def load_into(model: nn.Module, run_dir: Path, step: int, data_shape: tuple[int, ...], latent_dim: int) -> bool:
    """Swap in RUN_DIR/prior.pt as the model's prior if the run has one fitted to these weights."""
    path = Path(run_dir) / PRIOR_NAME
    if not path.is_file():
        return False
    state = read(path)
    if state["step"] != int(step) or not math.isclose(state["fingerprint"], first_stage_fingerprint(model),
                                                     rel_tol=1e-6):
        warnings.warn(f"{path} was fitted to other weights than the checkpoint's (step {state['step']}); "
                      f"not used: run `flexae fit-prior {run_dir}` again", stacklevel=2)
        return False
    prior = attach(model, state["noise_dim"], data_shape, latent_dim)
    try:
        prior.generator.load_state_dict(state["generator"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"{path} does not fit this model ({first_line(exc)}); run `flexae fit-prior {run_dir}` "
                        f"again") from None
    return True
