"""`RUN_DIR/prior.pt`: a FlexAE prior (G_psi) learned after training on the frozen codes of the
run's encoder (`flexae fit-prior`, flexae.training.prior_fit). It is used only when asked:
`load_run(..., prior="fitted")` (and `--prior fitted` of `flexae sample`, `eval`, `export` and the
table evaluations) generates through it, D(G_psi(n)); the default, prior="own", is the run's own
prior whether or not the file is there, and every evaluation records which. The file holds tensors and plain
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
from flexae.runs.checkpoint import tensor_digest
from flexae.runs.layout import PRIOR_NAME
from flexae.runs.sampler_file import first_stage_fingerprint


PRIORS = ("own", "fitted")  # load_run(prior=...), --prior: the run's own prior, or prior.pt


def check_prior(prior: str) -> str:
    if prior not in PRIORS:
        raise UserError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    return prior


def save(run_dir: Path, model: nn.Module, prior: nn.Module, step: int, stats: dict[str, float]) -> Path:
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


def matching_state(model: nn.Module, run_dir: Path, step: int, required: bool = False) -> dict[str, Any] | None:
    """RUN_DIR/prior.pt, checked, if the run has one fitted to these weights at `step`; None when
    there is none, or (with a warning) when it was fitted to other weights; with `required`
    (prior="fitted") a missing or stale file is a UserError instead."""
    path = Path(run_dir) / PRIOR_NAME
    if not path.is_file():
        if required:
            raise UserError(f"{run_dir} has no fitted prior ({PRIOR_NAME}); run `flexae fit-prior {run_dir}` "
                            f"first, or use the run's own prior (--prior own)")
        return None
    state = read(path)
    if state["step"] != int(step) or not math.isclose(state["fingerprint"], first_stage_fingerprint(model),
                                                     rel_tol=1e-6):
        message = (f"{path} was fitted to other weights than the checkpoint's (step {state['step']}); "
                   f"run `flexae fit-prior {run_dir}` again")
        if required:
            raise UserError(message)
        warnings.warn(message.replace("; run", "; not used: run"), stacklevel=3)
        return None
    return state
