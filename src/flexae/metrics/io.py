"""Reading the metrics' inputs: `.npy` / `.npz` image arrays, image folders, data sets by name
(`mnist:test`) and saved Inception statistics (:mod:`flexae.metrics.stats`).

Every image loader returns float32 tensors (N, C, H, W) in [0, 1]; every problem a user can fix is
a one-line :class:`~flexae.errors.UserError` saying what is wrong and what is expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flexae.data import as_float
from flexae.data.pixels import to_8bit
from flexae.data.images import DATASETS, IMAGE_SUFFIXES, load_images
from flexae.errors import UserError
from flexae.files import first_line
from flexae.metrics.stats import FeatureStats, is_stats_file, load_stats

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


# PIL modes read as they are (grayscale, RGB), and those converted; alpha is dropped, as pytorch-fid
# does. 16-bit and float images are first scaled to 8 bits by flexae.data.pixels.to_8bit (the rule of
# every image reader), or refused there.
_KEPT_MODES = ("L", "RGB")
_CONVERTED_MODES = {"1": "L", "LA": "L", "P": "RGB", "PA": "RGB", "RGBA": "RGB", "RGBX": "RGB",
                    "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def _read_image(path: Path) -> np.ndarray:
    """One PNG/JPEG as uint8 (H, W) grayscale or (H, W, 3) RGB."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, inside the try
            image = to_8bit(image, path)  # 16-bit and float: flexae.data.pixels's rule
            if image.mode not in _KEPT_MODES:
                if image.mode not in _CONVERTED_MODES:
                    raise UserError(f"{path}: image mode {image.mode} (16-bit or float) is not supported; "
                                    "save 8-bit grayscale or RGB")
                image = image.convert(_CONVERTED_MODES[image.mode])
            return np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({first_line(exc)})") from None


def read_image_folder(folder: str | os.PathLike[str]) -> torch.Tensor:
    """Every PNG/JPEG directly in ``folder`` (sorted by name) as float32 (N, C, H, W) in [0, 1].

    Images are used as they are (no crop or resize), so all must have the same size. C is 1 if all
    are grayscale, else 3 (grayscale ones repeated, which is what the Inception preprocessing does
    with them anyway).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no PNG or JPEG images in this folder")
    arrays = []
    for path in files:
        array = _read_image(path)
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            (h0, w0), (h, w) = arrays[0].shape[:2], array.shape[:2]
            raise UserError(f"{path}: image is {w}x{h} but {files[0].name} is {w0}x{h0}; "
                            f"all images in {folder} must have the same size")
        arrays.append(array)
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    return images_to_tensor(np.stack(arrays), name=str(folder))


def _dataset_name(spec: str) -> tuple[str, str] | None:
    """("mnist", "test") for "mnist:test"; None if ``spec`` does not name a known data set."""
    name, sep, split = spec.partition(":")
    return (name, split) if sep and name in DATASETS else None


def load_input(spec: str, data_dir: str | os.PathLike[str] | None = None) -> torch.Tensor | FeatureStats:
    """A metric input: images as float32 (N, C, H, W) in [0, 1], or saved Inception statistics.

    ``spec`` is an image folder, a `.npy`/`.npz` image array, a statistics `.npz` (holding ``mu``
    and ``sigma``) or a data set split NAME:SPLIT (e.g. ``mnist:test``, read from ``data_dir``).
    An existing file or folder wins over a data set name.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return read_image_folder(path)
    if path.is_file():
        if path.suffix.lower() == ".npz" and is_stats_file(path):
            return load_stats(path)
        return load_image_file(path)
    dataset = _dataset_name(spec)
    if dataset is not None:
        return as_float(load_images(*dataset, data_dir=data_dir).images)
    raise UserError(f"not found: {spec} (expected an image folder, a .npy/.npz file, a statistics .npz "
                    f"or a data set as NAME:SPLIT with NAME one of {', '.join(DATASETS)})")


def load_images_input(spec: str, data_dir: str | os.PathLike[str] | None, needed_by: str) -> torch.Tensor:
    """As :func:`load_input`, but a statistics file is an error: ``needed_by`` needs the features."""
    loaded = load_input(spec, data_dir)
    if isinstance(loaded, FeatureStats):
        raise UserError(f"{spec}: a statistics file holds only a mean and covariance, but {needed_by} "
                        "needs the images' features; pass the images instead")
    return loaded
