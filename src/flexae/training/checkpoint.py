"""Checkpoints: plain tensors and JSON-compatible data only, loaded with weights_only=True so a
hostile file cannot run code. Writes go to a temporary file that is renamed over the old one, so
the run folder always holds a complete checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

import flexae
from flexae.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def versions() -> dict[str, str]:
    return {"flexae": flexae.__version__, "torch": str(torch.__version__), "python": sys.version.split()[0]}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (tensors, dicts, lists, numbers, strings) to `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling refused or file damaged
        raise UserError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise UserError(f"{path} is not a flexae checkpoint")
    return state
