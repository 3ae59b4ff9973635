"""`RUN_DIR/sampler.pt`: the fitted ex-post sampler of a baseline run, saved as its state dict
(tensors only), the training step it was fitted at, a fingerprint of the first stage's weights
and fit statistics, in the sidecar format of flexae.runs.sidecar. The fit step that writes it
is `flexae.app.fit_sampler`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from flexae.errors import UserError
from flexae.files import first_line
from flexae.runs import sidecar
from flexae.runs.checkpoint import tensor_digest
from flexae.runs.layout import SAMPLER_NAME


def first_stage_fingerprint(model: nn.Module) -> float:
    """Sum of |values| of every floating-point tensor of the model outside its sampler: a cheap
    check that a saved sampler belongs to these weights (e.g. not to an overwritten earlier run)."""
    return sum(float(t.detach().double().abs().sum()) for name, t in model.state_dict().items()
               if not name.startswith("prior.") and t.is_floating_point())


def save(run_dir: Path, model: nn.Module, step: int, stats: dict[str, float]) -> Path:
    """Write RUN_DIR/sampler.pt atomically: the sampler's tensors, the step, the fit statistics."""
    sampler = model.expost_sampler
    assert sampler is not None and sampler.is_fitted
    state = {"step": int(step), "fingerprint": first_stage_fingerprint(model), "stats": stats,
             "sampler": {k: v.detach().cpu() for k, v in sampler.state_dict().items()}}
    return sidecar.save(Path(run_dir) / SAMPLER_NAME, state, _digest)


def _digest(state: dict[str, Any]) -> str:
    return tensor_digest(state["sampler"], f"{state['step']}|{state['fingerprint']!r}")


def _parse(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    checked = {"step": int(state["step"]), "fingerprint": float(state["fingerprint"]),
               "sampler": dict(state["sampler"])}
    return checked, _digest(checked)


def read(path: Path) -> dict[str, Any]:
    """RUN_DIR/sampler.pt as {"step": int, "fingerprint": float, "sampler": dict}, or a UserError
    that names the command rewriting it. Files of older flexae have no checksum."""
    path = Path(path)
    return sidecar.read(path, _parse, tensors="sampler",
                        fix=f"run `flexae fit-sampler {path.parent}` to write it again",
                        unreadable=f"cannot load ex-post sampler {path}: damaged or not a sampler file",
                        malformed=f"{path} is not an ex-post sampler file (expected step, fingerprint and sampler)",
                        checksum_optional=True)


def load_into(model: nn.Module, run_dir: Path, step: int | None = None) -> bool:
    """Load RUN_DIR/sampler.pt into the model's sampler if there is one; returns True if loaded.

    A sampler fitted at another training step than `step` (the checkpoint's) or to other weights is
    stale: it is not loaded (with a warning), so generation asks for `flexae fit-sampler`.
    """
    sampler = model.expost_sampler
    path = Path(run_dir) / SAMPLER_NAME
    if sampler is None or not path.is_file():
        return False
    state = read(path)
    stale = step is not None and state["step"] != int(step)
    if stale or not math.isclose(state["fingerprint"], first_stage_fingerprint(model), rel_tol=1e-6):
        warnings.warn(f"{path} was fitted to other weights than the checkpoint's (step {state['step']}); "
                      f"not loaded: run `flexae fit-sampler {run_dir}` again", stacklevel=2)
        return False
    try:
        sampler.load_state_dict(state["sampler"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # another model's or a garbled sampler
        raise UserError(f"{path} does not fit this model's sampler ({first_line(exc)}); "
                        f"run `flexae fit-sampler {run_dir}` again") from None
    check = getattr(sampler, "check", None)  # a sampler's own consistency check (the GMM's covariances)
    if check is not None:
        try:
            check()
        except UserError as exc:
            raise UserError(f"{path}: {str(exc).split(';')[0]}; run `flexae fit-sampler {run_dir}` again") from None
    return True
