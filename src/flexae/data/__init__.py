"""Data sets by name (the one table of names, shapes and paper latent sizes), loading, the uint8 ->
float conversion, and the random minibatch source used by the trainers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flexae.errors import UserError



@dataclass(frozen=True)
class DataSetInfo:
    shape: tuple[int, ...]  # one data point: (128,) synthetic, (C, H, W) images
    latent_dim: int         # the paper's m for this data set (the default of --latent-dim)


# Paper: m = 50 (Fig 2), 2 (Fig 3), 20 (MNIST, Fashion-MNIST), 64 (CIFAR-10, CelebA).
# The authors' code used 32 and 128 for the image sets; pass --latent-dim to use those.
DATASET_INFO: dict[str, DataSetInfo] = {
    "synthetic-5d": DataSetInfo((128,), 50),
    "synthetic-2d": DataSetInfo((128,), 2),
    "mnist": DataSetInfo((1, 28, 28), 20),
    "fashion-mnist": DataSetInfo((1, 28, 28), 20),
    "cifar10": DataSetInfo((3, 32, 32), 64),
    "celeba": DataSetInfo((3, 64, 64), 64),
}
DATASETS = tuple(DATASET_INFO)
SYNTHETIC = tuple(n for n, info in DATASET_INFO.items() if len(info.shape) == 1)
IMAGES = tuple(n for n, info in DATASET_INFO.items() if len(info.shape) == 3)
DEFAULT_LATENT_DIM = {name: info.latent_dim for name, info in DATASET_INFO.items()}


def data_shape(name: str) -> tuple[int, ...]:
    """The shape of one data point of data set `name`."""
    if name not in DATASET_INFO:
        raise UserError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return DATASET_INFO[name].shape


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


def as_float(batch: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images in [0, 255] -> floats in [0, 1] (float32 by default); float data pass through
    unchanged. The one uint8 -> float conversion of the library."""
    return batch.to(dtype).div_(255.0) if batch.dtype == torch.uint8 else batch


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
