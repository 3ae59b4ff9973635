"""Image grids and image files: float images in [0, 1] -> uint8 -> PNG grid or .npz array.

Conventions: images are float tensors (N, C, H, W) in [0, 1] (C = 1 or 3); grids are filled row by
row ("like reading a book", as the paper's figures); files are written to a temporary name and
renamed, so an interrupted write never leaves half a file, and an existing file is replaced only
when asked.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flexae.errors import UserError
from flexae.files import atomic_write

OUTPUT_SUFFIXES = (".png", ".npz")
PAD = 2           # pixels between tiles
PAD_VALUE = 255   # white lines: they separate MNIST's white-on-black digits as well as faces


def to_uint8(images: Tensor) -> Tensor:
    """(N, C, H, W) floats in [0, 1] -> uint8 (N, C, H, W) on the CPU, rounded to nearest."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def make_grid(images: Tensor, columns: int, pad: int = PAD, pad_value: int = PAD_VALUE) -> np.ndarray:
    """uint8 (N, C, H, W) -> one uint8 picture (rows*(H+pad)+pad, columns*(W+pad)+pad, C).

    Tile i sits at row i // columns, column i % columns; empty cells keep the pad colour.
    """
    n, c, h, w = images.shape
    rows = max(1, math.ceil(n / columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), pad_value, np.uint8)
    tiles = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    for i, tile in enumerate(tiles):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[top:top + h, left:left + w] = tile
    return grid


def hstack_grids(grids: list[np.ndarray], gap: int = 4 * PAD, pad_value: int = PAD_VALUE) -> np.ndarray:
    """Place equally tall pictures side by side with `gap` pixels between them."""
    spacer = np.full((grids[0].shape[0], gap, grids[0].shape[2]), pad_value, np.uint8)
    parts: list[np.ndarray] = []
    for grid in grids:
        parts += [grid, spacer]
    return np.concatenate(parts[:-1], axis=1)


def check_output(path: str | Path, overwrite: bool, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    """Refuse an unknown file type, or an existing file without `overwrite`; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"output {path}: unknown file type {path.suffix or '(none)'!r}; "
                        f"use {' or '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise UserError(f"output {path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UserError(f"output {path} is a folder")
    return path


def _write_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(payload))


def save_png(path: str | Path, picture: np.ndarray) -> Path:
    """Write a uint8 (H, W, 1 or 3) picture as PNG (grayscale for one channel)."""
    from PIL import Image

    path = Path(path)
    image = Image.fromarray(picture[:, :, 0] if picture.shape[2] == 1 else picture)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    _write_atomically(path, buffer.getvalue())
    return path


def save_npz(path: str | Path, images: Tensor, **extra: np.ndarray) -> Path:
    """Write uint8 images (N, C, H, W) as an .npz holding "images" (N, H, W, C) uint8, plus `extra`."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, images=images.permute(0, 2, 3, 1).numpy(), **extra)
    _write_atomically(path, buffer.getvalue())
    return path


def write_images(path: str | Path, images: Tensor, columns: int | None = None, *, groups: int = 1,
                 overwrite: bool = False, **extra: np.ndarray) -> Path:
    """Float images (N, C, H, W) in [0, 1] -> `path`: a PNG grid or an .npz of uint8 (N, H, W, C)
    under "images" (plus the arrays `extra`).

    PNG: `columns` wide (default: the smallest square that holds N); with `groups` > 1 the images
    are split into that many equal grids placed side by side.
    """
    path = check_output(path, overwrite)
    pixels = to_uint8(images)
    if path.suffix.lower() == ".npz":
        return save_npz(path, pixels, **extra)
    per_group = len(pixels) // groups
    columns = columns or math.ceil(math.sqrt(per_group))
    grids = [make_grid(pixels[g * per_group:(g + 1) * per_group], columns) for g in range(groups)]
    return save_png(path, hstack_grids(grids) if groups > 1 else grids[0])


__all__ = ["OUTPUT_SUFFIXES", "to_uint8", "make_grid", "hstack_grids", "check_output", "save_png",
           "save_npz", "write_images"]
