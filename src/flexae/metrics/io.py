"""Reading the metrics' inputs: `.npy` / `.npz` image arrays, image folders, data sets by name
(`mnist:test`) and saved Inception statistics (:mod:`flexae.metrics.stats`).

An image input opens as an :class:`ImageSet`: its size and a way to read any of its images, so
that `flexae metrics` streams them in chunks (memory bounded by the chunk, not the set) and can
draw a subset (`--n N --seed S`). Folders are read by the one image-file reader of `train`
(flexae.data.user.ImageFiles: recursive, the same greyscale / RGB rule, no resize), `.npy` files
are memory-mapped, `.npz` members and data sets are held as uint8. `load_input` and the loaders
below return whole float32 tensors (N, C, H, W) in [0, 1]. Every problem a user can fix is a
one-line :class:`~flexae.errors.UserError` saying what is wrong and what is expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from flexae.data import as_float
from flexae.data.images import DATASETS, load_images
from flexae.data.user import image_files, scan_files
from flexae.errors import UserError
from flexae.metrics.stats import FeatureStats, is_stats_file, load_stats

EXPECTED = "expected (N, H, W) or (N, H, W, C) with C 1 or 3, uint8 in [0, 255] or float in [0, 1]"


def check_array(array: np.ndarray, name: str = "images") -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 / float image array, checked (values are not read): as
    (N, H, W, C), a view when possible (a memory-mapped file stays on disk)."""
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
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{name}: dtype {array.dtype} not supported, {EXPECTED}")
    return array


def array_rows(array: np.ndarray, index: Sequence[int] | slice, name: str) -> torch.Tensor:
    """Rows of a checked (N, H, W, C) array -> (n, C, H, W): uint8 kept, float32 checked in [0, 1]."""
    rows = np.array(array[index], copy=True)  # reads only these rows of a memory-mapped file
    if rows.dtype == np.uint8:
        tensor = torch.from_numpy(rows)
    else:
        tensor = torch.from_numpy(rows.astype(np.float32, copy=False))
        _check_unit_range(tensor, name)
    return tensor.permute(0, 3, 1, 2).contiguous()  # (n, H, W, C) -> (n, C, H, W)


def images_to_tensor(array: np.ndarray, name: str = "images") -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 [0, 255] / float [0, 1] -> float32 tensor (N, C, H, W) in [0, 1].

    ``name`` is used in error messages (e.g. the file the array came from).
    """
    array = check_array(np.asarray(array), name)
    return as_float(array_rows(array, slice(None), name))


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


# --- image sets, read on demand ---------------------------------------------------------------

@dataclass(frozen=True)
class ImageSet:
    """The images of one metric input, read on demand: `chunks(size)` yields them in order, so
    memory holds one chunk; `subset(n, seed)` draws n of them."""

    name: str                                   # the input as given, for messages
    count: int                                  # images in the input
    read_at: Callable[[Sequence[int]], torch.Tensor]  # positions -> (n, C, H, W) uint8, or float in [0, 1]
    index: tuple[int, ...] | None = None        # the positions used (sorted); None: all

    def __len__(self) -> int:
        return self.count if self.index is None else len(self.index)

    def subset(self, n: int | None, seed: int) -> "ImageSet":
        """n images drawn without replacement, kept in order; the draw of flexae.data.images.subset
        (the same seed picks the same positions); None: all."""
        if n is None:
            return self
        if not 0 < n <= len(self):
            raise UserError(f"--n {n}: {self.name} holds {len(self)} images; pass --n {len(self)} or less")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        positions = range(self.count) if self.index is None else self.index
        return replace(self, index=tuple(positions[i] for i in order.tolist()))

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """(<= size, C, H, W) tensors of the images in order."""
        positions = range(self.count) if self.index is None else self.index
        for start in range(0, len(positions), size):
            yield self.read_at(positions[start:start + size])

    def load(self) -> torch.Tensor:
        """Every image at once, float32 (N, C, H, W) in [0, 1] (PMS compares pixels)."""
        positions = range(self.count) if self.index is None else self.index
        return as_float(self.read_at(positions))


def open_image_folder(folder: str | os.PathLike[str]) -> ImageSet:
    """Every PNG/JPEG/TIFF under ``folder`` (recursively, sorted), through `train`'s reader: C = 1
    if all are greyscale, else 3 (greyscale ones repeated, alpha dropped); no crop or resize, so all
    must have one size (Inception resizes them to 299 x 299). Sizes are checked from the headers."""
    folder = Path(folder)
    files = scan_files(image_files(folder), 0, f"image folder {folder}",
                       hint=f"all images in {folder} must have the same size")
    if len(files) < 2:
        raise UserError(f"{folder}: need at least 2 images, got {len(files)}")
    # chunks are decoded without a bar of their own: the Inception features' bar counts them
    return ImageSet(str(folder), len(files), lambda index: files.read(index, progress=False))


def open_image_file(path: str | os.PathLike[str]) -> ImageSet:
    """A `.npy` (memory-mapped: read chunk by chunk) or `.npz` image array (held as it is stored).

    A `.npz` must hold a single array, or one named ``images``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}, use .npy or .npz")
    try:  # never unpickle user files
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if suffix == ".npy" else None)
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
    array = check_array(array, str(path))
    return ImageSet(str(path), len(array), lambda index: array_rows(array, list(index), str(path)))


def load_image_file(path: str | os.PathLike[str]) -> torch.Tensor:
    """A `.npy` or `.npz` image array as float32 (N, C, H, W) in [0, 1] (see :func:`open_image_file`)."""
    return open_image_file(path).load()


def read_image_folder(folder: str | os.PathLike[str]) -> torch.Tensor:
    """Every image under ``folder`` as float32 (N, C, H, W) in [0, 1] (see :func:`open_image_folder`)."""
    return open_image_folder(folder).load()


def _dataset_name(spec: str) -> tuple[str, str] | None:
    """("mnist", "test") for "mnist:test"; None if ``spec`` does not name a known data set."""
    name, sep, split = spec.partition(":")
    return (name, split) if sep and name in DATASETS else None


def open_input(spec: str, data_dir: str | os.PathLike[str] | None = None) -> ImageSet | FeatureStats:
    """A metric input: an :class:`ImageSet`, or saved Inception statistics.

    ``spec`` is an image folder, a `.npy`/`.npz` image array, a statistics `.npz` (holding ``mu``
    and ``sigma``) or a data set split NAME:SPLIT (e.g. ``mnist:test``, read from ``data_dir``).
    An existing file or folder wins over a data set name.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return open_image_folder(path)
    if path.is_file():
        if path.suffix.lower() == ".npz" and is_stats_file(path):
            return load_stats(path)
        return open_image_file(path)
    dataset = _dataset_name(spec)
    if dataset is not None:
        images = load_images(*dataset, data_dir=data_dir).images  # uint8 (N, C, H, W)
        return ImageSet(spec, len(images), lambda index: images[list(index)])
    raise UserError(f"not found: {spec} (expected an image folder, a .npy/.npz file, a statistics .npz "
                    f"or a data set as NAME:SPLIT with NAME one of {', '.join(DATASETS)})")


def open_images_input(spec: str, data_dir: str | os.PathLike[str] | None, needed_by: str) -> ImageSet:
    """As :func:`open_input`, but a statistics file is an error: ``needed_by`` needs the features."""
    opened = open_input(spec, data_dir)
    if isinstance(opened, FeatureStats):
        raise UserError(f"{spec}: a statistics file holds only a mean and covariance, but {needed_by} "
                        "needs the images' features; pass the images instead")
    return opened


def load_input(spec: str, data_dir: str | os.PathLike[str] | None = None) -> torch.Tensor | FeatureStats:
    """As :func:`open_input`, images loaded whole: float32 (N, C, H, W) in [0, 1]."""
    opened = open_input(spec, data_dir)
    return opened if isinstance(opened, FeatureStats) else opened.load()


def load_images_input(spec: str, data_dir: str | os.PathLike[str] | None, needed_by: str) -> torch.Tensor:
    """As :func:`open_images_input`, images loaded whole."""
    return open_images_input(spec, data_dir, needed_by).load()
