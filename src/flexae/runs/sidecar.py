"""The one format of a run's sidecar files, `sampler.pt` (flexae.runs.sampler_file) and the fitted
priors `prior.pt` / `priors/NAME.pt` (flexae.runs.prior_file): a dict of tensors and plain values
(the training step and weight fingerprint it was fitted at, fit statistics, ...) with a checksum
over it, written atomically and read back with `torch.load(weights_only=True)`, which refuses a
pickle of anything else. Each file kind says which keys it needs and what its checksum covers
(`parse`, `digest`); the checksum functions are the files' own and never change, so files written
by older flexae read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from flexae.errors import UserError
from flexae.files import atomic_write, first_line
from flexae.finite import require_finite

PLAIN = (bool, int, float, str, type(None))  # besides tensors, dicts and lists of these


def _check_plain(value: Any, where: str) -> None:
    """Tensors and plain values only: anything else would make the file unreadable with weights_only."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, (torch.Tensor, *PLAIN)):
        raise TypeError(f"a sidecar file holds tensors and plain values only, got {type(value).__name__} at {where}")


def save(path: Path, state: dict[str, Any], digest: Callable[[dict[str, Any]], str]) -> Path:
    """Write `state` and its checksum (`digest(state)`, stored under "checksum") to `path` atomically."""
    _check_plain(state, "state")
    state = {**state, "checksum": digest(state)}
    path = Path(path)
    path.parent.mkdir(exist_ok=True)  # priors/ of a run that has none yet
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def read(path: Path, parse: Callable[[dict[str, Any]], tuple[dict[str, Any], str]], *, tensors: str,
         fix: str, unreadable: str, malformed: str | None = None, checksum_optional: bool = False) -> dict[str, Any]:
    """A sidecar file, checked: `parse(state)` returns (the checked dict, the checksum expected of it)
    and raises on a missing or mistyped key; the checksum must match (a file of older flexae may lack
    one when `checksum_optional`) and `checked[tensors]` must be finite. Every failure is a one-line
    UserError ending in `fix` (the command that writes the file again), never torch's advice to load
    unsafely: `unreadable` (with the cause) for a file torch cannot load, `malformed` for one without
    the keys (by default `unreadable` again)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged, a planted pickle, or not a sidecar file
        raise UserError(f"{unreadable} ({first_line(exc)}); {fix}") from None
    try:
        checked, expected = parse(state)
    except Exception as exc:  # missing keys, wrong types, not a dict at all
        raise UserError(malformed + f"; {fix}" if malformed else f"{unreadable} ({first_line(exc)}); {fix}") from None
    if not (checksum_optional and "checksum" not in state) and state.get("checksum") != expected:
        raise UserError(f"{path} is damaged (its contents do not match their checksum); {fix}")
    require_finite(checked[tensors], path, fix)
    return checked
