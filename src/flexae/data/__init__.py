"""Data sets by name (the one table of names, shapes and paper latent sizes), loading, the uint8 ->
float conversion, and the random minibatch source used by the trainers."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flexae.config import TrainConfig
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
    """The shape of one data point of the named data set `name` (see `run_data_shape` for a run's)."""
    if name not in DATASET_INFO:
        raise UserError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}, "
                        f"folder:PATH, npz:PATH or npy:PATH")
    return DATASET_INFO[name].shape


def is_known_dataset(name: str) -> bool:
    """A named data set, or images of the user's own (folder:PATH, npz:PATH, npy:PATH)."""
    from flexae.data.user import is_user_data
    return name in DATASET_INFO or is_user_data(name)


def run_data_shape(train: TrainConfig, source: str | Path = "config") -> tuple[int, ...]:
    """The data shape of a run: from the table for a named data set, else the image shape its
    config recorded at training (so a run of the user's images loads without them)."""
    from flexae.data.user import check_image_shape, is_user_data
    if not is_user_data(train.dataset):
        return data_shape(train.dataset)
    if train.image_shape is None:
        raise UserError(f"{source}: trained on {train.dataset} but records no train.image_shape")
    return check_image_shape(train.image_shape, f"{source}: train.image_shape")


def default_latent_dim(name: str, image_size: int = 0) -> int:
    """The default m: the paper's for a named data set; for images of the user's own the paper's
    rule by channels (20 for greyscale as MNIST, 64 for colour as CIFAR-10 and CelebA)."""
    from flexae.data.user import is_user_data, user_image_shape
    if name in DATASET_INFO:
        return DATASET_INFO[name].latent_dim
    if is_user_data(name):
        return 20 if user_image_shape(name, image_size)[0] == 1 else 64
    data_shape(name)  # the unknown-name error
    raise AssertionError("unreachable")


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
                 download: bool = False, image_size: int = 0) -> Dataset:
    """Load a data set by name. `seed` fixes synthetic data (and the held-out split of user data
    without a test split); `data_dir` locates image files; `image_size` resizes user images
    ("folder:PATH", "npz:PATH", "npy:PATH", see flexae.data.user; 0 keeps their size)."""
    from flexae.data.user import is_user_data, load_user_data
    if is_user_data(name):
        train, test = load_user_data(name, image_size, seed)
        return Dataset(name, train, test, {})
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
    data_shape(name)  # the unknown-name error
    raise AssertionError("unreachable")


def given_data_name(train: TrainConfig) -> str:
    """The data-set name a run of data given in Python records: "array", unless the config names
    the user files (folder:, npz:, npy:) the images came from (then eval and resume can read them
    again)."""
    from flexae.data.user import MEMORY, is_user_data
    return train.dataset if is_user_data(train.dataset) else MEMORY


def resolve_data(train: TrainConfig, data_dir: str | Path | None = None,
                 data: Any = None) -> tuple[TrainConfig, Dataset]:
    """(the run's `train` section as it records its data, the data); `train` itself is not edited.

    The data are loaded by name (from `data_dir`, else the folder recorded at training), or given
    in Python as `data` (a Dataset, or uint8 images, see flexae.data.user.images_from_python).
    For images of the user's own, the returned section records their absolute path and image
    shape (a fresh run), or the loaded images must match the recorded shape (a run loaded again)."""
    from flexae.data.user import images_from_python, is_user_data, resolved_name
    if data is not None and not isinstance(data, Dataset):
        # no files to reload: sample works later, eval needs the images again
        train = dataclasses.replace(train, dataset=given_data_name(train))
        images = images_from_python(data, train.image_size, train.data_seed)
        data = Dataset(train.dataset, *images, {})
    if data is None:
        if is_user_data(train.dataset):
            train = dataclasses.replace(train, dataset=resolved_name(train.dataset))
        data = load_dataset(train.dataset, data_dir or train.data_dir, train.data_seed, image_size=train.image_size)
    if is_user_data(train.dataset) and data.is_image:
        shape = list(data.shape)
        if train.image_shape is None:
            train = dataclasses.replace(train, image_shape=shape)
        elif list(train.image_shape) != shape:
            raise UserError(f"the images of {train.dataset} are now {'x'.join(map(str, shape))}, but the run "
                            f"was trained on {'x'.join(map(str, train.image_shape))}")
    return train, data


def load_for_config(train: TrainConfig, data_dir: str | Path | None = None) -> Dataset:
    """The data of a run with config section `train` (see `resolve_data`; `train` is not edited)."""
    return resolve_data(train, data_dir)[1]


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

    def __call__(self, generator: torch.Generator | None = None) -> Tensor:
        # generator: a private stream (train.batchnorm_stats="authors"); None: the global RNG.
        idx = torch.randint(0, self.data.shape[0], (self.batch_size,), device=self.data.device,
                            generator=generator)
        return as_float(self.data.index_select(0, idx))
