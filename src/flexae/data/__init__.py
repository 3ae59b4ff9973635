"""Data sets by name (the one table of names, shapes and paper latent sizes), loading, the uint8 ->
float conversion, and the random minibatch source used by the trainers.

torch is imported where it is used, not here: the command line lists this table's names in its
help without importing torch (seconds)."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from flexae.config import TrainConfig
from flexae.errors import UserError



@dataclass(frozen=True)
class DataSetInfo:
    """One named data set: the one record of what flexae knows of it (adding a data set is adding
    one of these to DATASET_INFO, plus its reader in flexae.data.images if its file format is new)."""

    name: str
    shape: tuple[int, ...]  # one data point: (128,) synthetic, (C, H, W) images
    latent_dim: int         # the paper's m for this data set (the default of --latent-dim)
    reader: str             # its file format: "synthetic" (generated), else a reader of flexae.data.images
    torchvision: str | None = None  # the torchvision class that downloads it (and names its folder)
    splits: tuple[str, ...] = ("train", "test")  # the official splits

    own: ClassVar[bool] = False  # not the user's own images: runs record the name only

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def resolved(self) -> "DataSetInfo":
        return self

    def default_latent_dim(self) -> int:
        return self.latent_dim

    def data_shape(self, recorded: Any = None, source: str | Path = "config") -> tuple[int, ...]:
        """The shape of one data point (a named set's is fixed; `recorded` is for the user's own)."""
        return self.shape

    def load(self, seed: int = 0, data_dir: str | Path | None = None, download: bool = False) -> "Dataset":
        """The data set: `seed` fixes synthetic data; `data_dir` (and `download`) locate image files."""
        if self.reader == "synthetic":
            import torch
            from flexae.data.synthetic import make_synthetic
            d = make_synthetic(self.name, seed)
            return Dataset(self.name, torch.from_numpy(d.train.x), torch.from_numpy(d.test.x),
                           {"train_latents": d.train.latents, "train_labels": d.train.labels,
                            "test_latents": d.test.latents, "test_labels": d.test.labels})
        from flexae.data.images import load_images
        train = load_images(self.name, "train", data_dir, download)
        test = load_images(self.name, "test", data_dir, download)
        extras = {"attribute_names": train.attribute_names, "train_attributes": train.attributes}
        return Dataset(self.name, train.images, test.images, extras)


# Paper: m = 50 (Fig 2), 2 (Fig 3), 20 (MNIST, Fashion-MNIST), 64 (CIFAR-10, CelebA).
# The authors' code used 32 and 128 for the image sets; pass --latent-dim to use those.
DATASET_INFO: dict[str, DataSetInfo] = {info.name: info for info in (
    DataSetInfo("synthetic-5d", (128,), 50, "synthetic"),
    DataSetInfo("synthetic-2d", (128,), 2, "synthetic"),
    DataSetInfo("mnist", (1, 28, 28), 20, "idx", "MNIST"),
    DataSetInfo("fashion-mnist", (1, 28, 28), 20, "idx", "FashionMNIST"),
    DataSetInfo("cifar10", (3, 32, 32), 64, "cifar10", "CIFAR10"),
    DataSetInfo("celeba", (3, 64, 64), 64, "celeba", "CelebA", splits=("train", "valid", "test")),
)}
DATASETS = tuple(DATASET_INFO)
SYNTHETIC = tuple(n for n, info in DATASET_INFO.items() if not info.is_image)
IMAGES = tuple(n for n, info in DATASET_INFO.items() if info.is_image)
DEFAULT_LATENT_DIM = {name: info.latent_dim for name, info in DATASET_INFO.items()}
OWN_CHOICES = ("folder:PATH", "npz:PATH", "npy:PATH")  # the user's own images, read by flexae.data.user

if TYPE_CHECKING:
    import torch
    from torch import Tensor
    from flexae.data.user import DataSource, GivenArrays
    Source = DataSetInfo | DataSource | GivenArrays  # what a config's train.dataset names


def find_source(name: Any, image_size: int = 0) -> "Source | None":
    """The data a config's `train.dataset` string names, parsed once: a DATASET_INFO record, a
    DataSource of the user's own files, or GivenArrays; None for an unknown name. The questions
    of the call sites (own images? shape? paper m? splits? load?) are asked of this value."""
    if isinstance(name, str) and name in DATASET_INFO:
        return DATASET_INFO[name]
    from flexae.data.user import parse_own
    return parse_own(name, image_size)


def data_source(name: Any, image_size: int = 0) -> "Source":
    """`find_source`, with a one-line error for an unknown name (listing the choices)."""
    source = find_source(name, image_size)
    if source is None:
        raise _unknown(name)
    return source


def _unknown(name: Any) -> UserError:
    return UserError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}, {', '.join(OWN_CHOICES[:-1])} "
                     f"or {OWN_CHOICES[-1]}")


def data_shape(name: str) -> tuple[int, ...]:
    """The shape of one data point of the named data set `name` (see `run_data_shape` for a run's)."""
    if name not in DATASET_INFO:
        raise _unknown(name)
    return DATASET_INFO[name].shape


def is_known_dataset(name: str) -> bool:
    """A named data set, or images of the user's own (folder:PATH, npz:PATH, npy:PATH)."""
    return find_source(name) is not None


def run_data_shape(train: TrainConfig, source: str | Path = "config") -> tuple[int, ...]:
    """The data shape of a run: from the table for a named data set, else the image shape its
    config recorded at training (so a run of the user's images loads without them)."""
    return data_source(train.dataset, train.image_size).data_shape(train.image_shape, source)


def default_latent_dim(name: str, image_size: int = 0) -> int:
    """The default m: the paper's for a named data set; for images of the user's own the paper's
    rule by channels (20 for greyscale as MNIST, 64 for colour as CIFAR-10 and CelebA)."""
    return data_source(name, image_size).default_latent_dim()


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
    data = load_source(data_source(name, image_size), data_dir, seed, download)
    data.name = name  # as given (a source's own name is its normalised path)
    return data


def load_source(source: "Source", data_dir: str | Path | None = None, seed: int = 0,
                download: bool = False) -> Dataset:
    """The Dataset of a parsed source (named: from `data_dir`; the user's own: from its path)."""
    if source.own:
        return Dataset(source.name, *source.load(seed), {})
    return source.load(seed, data_dir, download)


def given_data_name(train: TrainConfig) -> str:
    """The data-set name a run of data given in Python records: "array", unless the config names
    the user files (folder:, npz:, npy:) the images came from (then eval and resume can read them
    again)."""
    from flexae.data.user import MEMORY
    source = find_source(train.dataset)
    return train.dataset if source is not None and source.own else MEMORY


def resolve_data(train: TrainConfig, data_dir: str | Path | None = None,
                 data: Any = None) -> tuple[TrainConfig, Dataset]:
    """(the run's `train` section as it records its data, the data); `train` itself is not edited.

    The data are loaded by name (from `data_dir`, else the folder recorded at training), or given
    in Python as `data` (a Dataset, or uint8 images, see flexae.data.user.images_from_python).
    For images of the user's own, the returned section records their absolute path and image
    shape (a fresh run), or the loaded images must match the recorded shape (a run loaded again)."""
    from flexae.data.user import images_from_python
    if data is not None and not isinstance(data, Dataset):
        # no files to reload: sample works later, eval needs the images again
        train = dataclasses.replace(train, dataset=given_data_name(train))
        images = images_from_python(data, train.image_size, train.data_seed)
        data = Dataset(train.dataset, *images, {})
    if data is None:
        source = data_source(train.dataset, train.image_size).resolved()
        train = dataclasses.replace(train, dataset=source.name)
        data = load_source(source, data_dir or train.data_dir, train.data_seed)
    source = find_source(train.dataset)
    if source is not None and source.own and data.is_image:
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


def as_float(batch: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """uint8 images in [0, 255] -> floats in [0, 1] (float32 by default); float data pass through
    unchanged. The one uint8 -> float conversion of the library."""
    import torch
    return batch.to(dtype or torch.float32).div_(255.0) if batch.dtype == torch.uint8 else batch


class RandomBatches:
    """Minibatches drawn uniformly *with replacement*, as the authors' code does.

    The data live on the training device (uint8 for images, so MNIST needs 47 MB and CelebA
    2 GB), so drawing a batch is one index_select with no host-device copy.
    """

    def __init__(self, data: Tensor, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def __call__(self, generator: torch.Generator | None = None) -> Tensor:
        # generator: a private stream (train.batchnorm_stats="authors"); None: the global RNG.
        import torch
        idx = torch.randint(0, self.data.shape[0], (self.batch_size,), device=self.data.device,
                            generator=generator)
        return as_float(self.data.index_select(0, idx))
