"""The priors fitted after training on the frozen codes of a run's encoder (`flexae fit-prior
--kind KIND --name NAME`), one file per name, side by side: `prior.pt` for the name "fitted" (what
`flexae fit-prior RUN` writes, and what older runs have), `priors/NAME.pt` for the others
(flexae.runs.layout.prior_file_name). A prior is used only when asked: `load_run(..., prior=NAME)`
(and `--prior NAME` of `flexae sample`, `eval`, `export`) generates through it; the default,
prior="own", is the run's own prior whether or not such files are there, and every evaluation
records which.

A file is in the sidecar format of flexae.runs.sidecar (tensors and plain values only, read back
with `torch.load(weights_only=True)`, which refuses a pickle of anything else): the kind
(flexae.app.prior_kinds), its settings (a flat dict of ints, floats, strings), the prior module's
state dict, the training step and a fingerprint of
the weights it was fitted to, fit statistics, and a checksum over all of it.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from flexae.config import PRIOR_KINDS
from flexae.errors import UserError
from flexae.runs import sidecar
from flexae.runs.checkpoint import tensor_digest
from flexae.runs.layout import PRIOR_NAME, PRIORS_DIR, prior_file_name, prior_name_of
from flexae.runs.sampler_file import first_stage_fingerprint

OWN, DEFAULT_NAME = "own", "fitted"
PRIORS = (OWN, DEFAULT_NAME)  # the two names every run understands; other names are fitted ones
KINDS = PRIOR_KINDS  # the prior kinds this format records (their fits: flexae.app.prior_kinds)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_prior(prior: str) -> str:
    """`prior` if it is "own" or a usable name of a fitted prior (lower-case letters, digits, - and _)."""
    if not isinstance(prior, str) or not _NAME.fullmatch(prior):
        raise UserError(f"prior must be 'own', 'fitted' or the name of a prior fitted with `flexae fit-prior "
                        f"--name NAME` (lower-case letters, digits, - and _), got {prior!r}")
    return prior


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UserError(f"prior kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def path_of(run_dir: Path, name: str) -> Path:
    if check_prior(name) == OWN:
        raise UserError("'own' is the run's own prior, not a fitted one")
    return Path(run_dir) / prior_file_name(name)


def fitted_names(run_dir: Path) -> list[str]:
    """Names of the fitted prior files in the run (not checked)."""
    run_dir = Path(run_dir)
    found = [DEFAULT_NAME] if (run_dir / PRIOR_NAME).is_file() else []
    folder = run_dir / PRIORS_DIR
    if folder.is_dir():
        names = (prior_name_of(p.name) for p in folder.iterdir() if p.is_file())
        found += sorted(n for n in names if n and _NAME.fullmatch(n) and n != OWN)
    return found


def save(run_dir: Path, name: str, kind: str, settings: dict[str, Any], model: nn.Module, prior: nn.Module,
         step: int, stats: dict[str, float]) -> Path:
    """Write the fitted prior `name` of kind `kind` atomically (the model is the run's, with its own prior)."""
    path = path_of(run_dir, name)
    state = {"kind": check_kind(kind), "settings": _plain(settings), "step": int(step),
             "fingerprint": first_stage_fingerprint(model), "stats": {k: float(v) for k, v in stats.items()},
             "tensors": {k: v.detach().cpu().clone() for k, v in prior.state_dict().items()}}
    return sidecar.save(path, state, _digest)


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings of a kind, checked to be plain values (they rebuild the module, never unpickle it)."""
    for key, value in settings.items():
        if not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"prior settings must map names to plain values, got {key!r}: {value!r}")
    return dict(settings)


def _digest(state: dict[str, Any]) -> str:
    extra = f"{state['kind']}|{state['step']}|{state['fingerprint']!r}|{json.dumps(state['settings'], sort_keys=True)}"
    return tensor_digest(state["tensors"], extra)


def _legacy_digest(state: dict[str, Any]) -> str:  # prior.pt of flexae before named priors
    return tensor_digest(state["generator"], f"{state['step']}|{state['fingerprint']!r}|{state['noise_dim']}")


def _parse(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the checked file, its expected checksum); an adversarial prior.pt of older flexae (the
    generator's state dict and its noise size) reads as a prior of kind "adversarial"."""
    if "kind" in state:
        checked = {"kind": check_kind(state["kind"]), "settings": _plain(dict(state["settings"])),
                   "step": int(state["step"]), "fingerprint": float(state["fingerprint"]),
                   "tensors": dict(state["tensors"]), "stats": dict(state.get("stats", {}))}
        return checked, _digest(checked)
    legacy = {"step": int(state["step"]), "fingerprint": float(state["fingerprint"]),
              "noise_dim": int(state["noise_dim"]), "generator": dict(state["generator"])}
    checked = {"kind": "adversarial", "settings": {"noise_dim": legacy["noise_dim"]},
               "step": legacy["step"], "fingerprint": legacy["fingerprint"], "stats": state.get("stats", {}),
               "tensors": {f"generator.{k}": v for k, v in legacy["generator"].items()}}
    return checked, _legacy_digest(legacy)


def read(path: Path) -> dict[str, Any]:
    """A fitted prior file, checked: {kind, settings, step, fingerprint, stats, tensors}; a UserError
    names the command that writes it again."""
    path = Path(path)
    return sidecar.read(path, _parse, tensors="tensors",
                        fix=f"run `flexae fit-prior {_run_of(path)}` to write it again, or delete it",
                        unreadable=f"cannot load learned prior {path}")


def _run_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == PRIORS_DIR else path.parent


def matching_state(model: nn.Module, run_dir: Path, step: int, name: str = DEFAULT_NAME,
                   required: bool = False) -> dict[str, Any] | None:
    """The fitted prior `name`, checked, if the run has one fitted to these weights at `step`; None
    when there is none, or (with a warning) when it was fitted to other weights; with `required`
    a missing or stale file is a UserError instead."""
    path = path_of(run_dir, name)
    refit = f"flexae fit-prior {run_dir}" + ("" if name == DEFAULT_NAME else f" --name {name}")
    if not path.is_file():
        if required:
            others = [n for n in fitted_names(run_dir) if n != name]
            known = f" (it has: {', '.join(others)})" if others else ""
            named = "" if name == DEFAULT_NAME else f" named {name!r}"
            raise UserError(f"{run_dir} has no fitted prior{named} ({prior_file_name(name)}){known}; run "
                            f"`{refit}` first, or use the run's own prior (--prior own)")
        return None
    state = read(path)
    if state["step"] != int(step) or not math.isclose(state["fingerprint"], first_stage_fingerprint(model),
                                                     rel_tol=1e-6):
        message = (f"{path} was fitted to other weights than the checkpoint's (step {state['step']}); "
                   f"run `{refit}` again")
        if required:
            raise UserError(message)
        warnings.warn(message.replace("; run", "; not used: run"), stacklevel=3)
        return None
    return state
