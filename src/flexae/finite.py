"""The one finiteness rule for every file a run holds or a command reads (checkpoint, prior.pt,
sampler.pt, exported weights, statistics files): every floating-point tensor or array in it must be
finite. Each loader calls `require_finite` on what it read, so `export`, `sample`, `eval`,
`load_run` and `flexae metrics` refuse the same files with the same one-line message.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from flexae.errors import UserError


def _arrays(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, tensor or array) for every torch tensor / numpy array in nested dicts and lists."""
    if isinstance(tree, (torch.Tensor, np.ndarray)):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _arrays(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _arrays(value, f"{prefix}.{i}" if prefix else str(i))


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.complexfloating):
        return bool(np.isfinite(value).all())
    return True


def nonfinite_names(tree: Any) -> list[str]:
    """Names of the floating-point tensors / arrays in `tree` that hold a NaN or an infinity."""
    return [name for name, value in _arrays(tree) if not _finite(value)]


def require_finite(tree: Any, source: Any, remedy: str) -> None:
    """UserError "SOURCE: NAME (and k more) holds NaN or infinity; REMEDY" unless all is finite."""
    bad = nonfinite_names(tree)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"{source}: {bad[0] or 'a value'}{more} holds NaN or infinity; {remedy}")
