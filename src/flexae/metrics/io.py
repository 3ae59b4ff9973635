"""Reading image arrays for the metrics from `.npy` / `.npz` files.

Every loader returns float32 tensors (N, C, H, W) in [0, 1]; every problem a user can fix is a
one-line :class:`~flexae.errors.UserError` saying what is wrong and what is expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from flexae.data import as_float
from flexae.errors import UserError

EXPECTED = "expected (N, H, W) or (N, H, W, C) with C 1 or 3, uint8 in [0, 255] or float in [0, 1]"


def images_to_tensor(array: np.ndarray, name: str = "images") -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 [0, 255] / float [0, 1] -> float32 tensor (N, C, H, W) in [0, 1].

    ``name`` is used in error messages (e.g. the file the array came from).
    """
    array = np.asarray(array)
    if array.ndim in (3, 4) and 0 in array.shape[1:]:  # before the channel check: its hint would mislead
        raise UserError(f"{name}: shape {array.shape} has no pixels (a dimension of size 0), {EXPECTED}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        hint = ("; it looks channels-first, move channels last"
                if array.ndim == 4 and array.shape[1] in (1, 3) else "")
        raise UserError(f"{name}: shape {array.shape} not supported, {EXPECTED}{hint}")
    if array.shape[0] < 2:
        raise UserError(f"{name}: need at least 2 images, got {array.shape[0]}")
    if array.dtype == np.uint8:
        tensor = as_float(torch.from_numpy(np.array(array, copy=True)))
    elif np.issubdtype(array.dtype, np.floating):
        tensor = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        _check_unit_range(tensor, name)
    else:
        raise UserError(f"{name}: dtype {array.dtype} not supported, {EXPECTED}")
    return tensor.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)


def _check_unit_range(tensor: torch.Tensor, name: str) -> None:
    if not torch.isfinite(tensor).all():
        raise UserError(f"{name}: contains NaN or infinite values")
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0.0 or high > 1.0:
        raise UserError(f"{name}: float values must lie in [0, 1], found [{low:.4g}, {high:.4g}]; "
                        "rescale (e.g. (x + 1) / 2 for [-1, 1]) or save uint8")


def _npz_member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One array of an .npz; members are read lazily, so damage inside the zip shows up only here."""
    try:
        return archive[key]
    except Exception as exc:  # zlib.error, BadZipFile, NotImplementedError, EOFError, ValueError, ...
        raise UserError(f"{path}: array {key!r} is truncated or corrupt ({' '.join(str(exc).split())})") from None


def load_image_file(path: str | os.PathLike[str]) -> torch.Tensor:
    """Load a `.npy` or `.npz` image array as float32 (N, C, H, W) in [0, 1].

    A `.npz` must hold a single array, or one named ``images``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}, use .npy or .npz")
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle user files
    except Exception as exc:  # a damaged file raises many types: BadZipFile, TokenError, EOFError, ...
        raise UserError(f"{path}: not a readable {suffix} array ({' '.join(str(exc).split())})") from exc
    if suffix == ".npz":
        with loaded:
            keys = list(loaded.keys())
            if len(keys) == 1:
                array = _npz_member(loaded, keys[0], path)
            elif "images" in keys:
                array = _npz_member(loaded, "images", path)
            else:
                raise UserError(f"{path}: holds arrays {keys}; keep one, or name the images 'images'")
    else:
        array = loaded
    return images_to_tensor(array, name=str(path))
