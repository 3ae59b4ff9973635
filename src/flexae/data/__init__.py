"""Data sets by name, and the random minibatch source used by the trainers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flexae.errors import UserError

SYNTHETIC = ("synthetic-5d", "synthetic-2d")
IMAGES = ("mnist", "fashion-mnist", "cifar10", "celeba")
DATASETS = SYNTHETIC + IMAGES


@dataclass
class Dataset:
    """Train/test tensors: float32 (N, d) for synthetic data, uint8 (N, C, H, W) for images."""

    name: str
    train: Tensor
    test: Tensor
    extras: dict[str, Any]  # synthetic: true latents and labels; CelebA: attributes

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.train.dim() == 4


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0,
                 download: bool = False) -> Dataset:
    """Load a data set by name. `seed` fixes synthetic data; `data_dir` locates image files."""
    if name in SYNTHETIC:
        from flexae.data.synthetic import make_synthetic
        d = make_synthetic(name, seed)
        return Dataset(name, torch.from_numpy(d.train.x), torch.from_numpy(d.test.x),
                       {"train_latents": d.train.latents, "train_labels": d.train.labels,
                        "test_latents": d.test.latents, "test_labels": d.test.labels})
    if name in IMAGES:
        from flexae.data.images import load_images
        train = load_images(name, "train", data_dir, download)
        test = load_images(name, "test", data_dir, download)
        extras = {"attribute_names": train.attribute_names, "train_attributes": train.attributes}
        return Dataset(name, train.images, test.images, extras)
    raise UserError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")


def as_float(batch: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1]; float data pass through unchanged."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch


class RandomBatches:
    """Minibatches drawn uniformly *with replacement*, as the authors' code does.

    The data live on the training device (uint8 for images, so MNIST needs 47 MB and CelebA
    2 GB), so drawing a batch is one index_select with no host-device copy.
    """

    def __init__(self, data: Tensor, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def __call__(self) -> Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.batch_size,), device=self.data.device)
        return as_float(self.data.index_select(0, idx))
