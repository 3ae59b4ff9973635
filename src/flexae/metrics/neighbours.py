"""Nearest-neighbour grids (paper Figs 16-19): each generated image followed by its k nearest
training images, in pixel space or in Inception-feature space.

A row that repeats its first image shows memorization; visibly different neighbours show the
generator produces new images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from flexae.errors import UserError
from flexae.grids import make_grid, to_uint8
from flexae.metrics.inception import InceptionExtractor
from flexae.metrics.memorization import nearest_neighbours


def neighbour_rows(generated: torch.Tensor, train: torch.Tensor, k: int = 14,
                   generated_vectors: torch.Tensor | None = None,
                   train_vectors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (G, k + 1, C, H, W): generated image g then its k nearest training images, nearest first.

    Neighbours are searched between ``generated_vectors`` (G, d) and ``train_vectors`` (M, d)
    (e.g. Inception features), or between the pixels when those are None. Also returns the
    neighbours' training indices (G, k).
    """
    if tuple(generated.shape[1:]) != tuple(train.shape[1:]):
        raise UserError(f"generated images {tuple(generated.shape[1:])} and training images "
                        f"{tuple(train.shape[1:])} differ in shape")
    queries = generated if generated_vectors is None else generated_vectors
    reference = train if train_vectors is None else train_vectors
    _, indices = nearest_neighbours(queries, reference, k=k)
    return torch.cat([generated[:, None], train[indices]], dim=1), indices


def image_grid(rows: torch.Tensor, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images (R, K, C, H, W) in [0, 1] into one uint8 RGB array (R*(H+p)+p, K*(W+p)+p, 3),
    one row of K per r (through flexae.grids, the library's one grid maker; save it with
    `flexae.grids.save_png(path, grid)`)."""
    if rows.ndim != 5 or rows.shape[2] not in (1, 3):
        raise UserError(f"rows must have shape (R, K, C, H, W) with C 1 or 3, got {tuple(rows.shape)}")
    tiles = rows.flatten(0, 1).expand(-1, 3, -1, -1)  # (R*K, 3, H, W)
    return make_grid(to_uint8(tiles), columns=rows.shape[1], pad=padding, pad_value=round(255 * pad_value))


def neighbour_grid(generated: torch.Tensor, train: torch.Tensor, k: int = 14,
                   space: Literal["pixel", "inception"] = "pixel",
                   extractor: InceptionExtractor | None = None,
                   train_features: torch.Tensor | None = None, padding: int = 2) -> np.ndarray:
    """Grid (uint8 RGB) of generated images (G, C, H, W) and their k nearest training images
    (M, C, H, W), all in [0, 1]; the paper shows G = 15 rows, k = 14.

    ``space="inception"`` needs an ``extractor``; training features go through its disk cache
    (or pass ``train_features`` (M, 2048)). Features of a 60k training set take hours on a CPU.
    """
    if space == "pixel":
        rows, _ = neighbour_rows(generated, train, k)
    elif space == "inception":
        if extractor is None:
            raise UserError("Inception-space neighbours need an Inception extractor")
        features = extractor(train) if train_features is None else train_features
        rows, _ = neighbour_rows(generated, train, k, extractor(generated, cache=False), features)
    else:
        raise UserError(f"space must be 'pixel' or 'inception', got {space!r}")
    return image_grid(rows, padding=padding)
