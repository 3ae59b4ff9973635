"""Image data of the user's own: `folder:PATH` (PNG/JPEG files), `npz:PATH` and `npy:PATH` (uint8
arrays N x H x W [x C]), and arrays handed to `flexae.train(..., data=...)` in Python.

A source name is parsed once into a `DataSource` (kind, path, image size). Every source becomes
uint8 (N, C, S, S) train and test tensors, C 1 or 3, for a square side S the networks accept
(`check_side`). Image files are read by `ImageFiles`, the one image-file reader of flexae: `train`,
`eval`, `data export` and `flexae metrics` (which keeps any one size and reads every file under a
folder, in chunks) see the same pixels. The rules, also in docs/data.md:

- Size: `image_size` (config `train.image_size`, `--set train.image_size=S`) resizes every image
  to S x S (centre crop to the largest square, antialiased bilinear). 0 (the default) keeps the
  images' own size, which must then be one square size for all of them.
- Channels: a folder whose images are all greyscale gives C = 1, any colour image C = 3 (RGB);
  arrays keep theirs (N x H x W is C = 1).
- Test split: `PATH/test/` (and `PATH/train/`) of a folder, the arrays `train` and `test` of an
  .npz; otherwise a held-out split: 10% of the images (at least 1), drawn by a generator seeded
  with `train.data_seed` (0), so every run of the same files holds out the same images.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flexae.data.pixels import to_8bit
from flexae.errors import UserError

KINDS = ("folder", "npz", "npy")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # 16-bit / float: flexae.data.pixels
MIN_SIDE, MAX_SIDE = 8, 128  # two stride-2 stages need side % 4 == 0; past 128 the decoder's FC explodes
TEST_FRACTION = 0.1
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 8-bit and deeper grey (pixels.to_8bit)
SIZE_HINT = "--set train.image_size=S (Python: TrainConfig(image_size=S))"
ARRAY_LAYOUT = "uint8 N x H x W or N x H x W x C with C 1 or 3"


MEMORY = "array"  # cfg.train.dataset of a run trained on arrays given in Python (no files to reload)
MEMORY_ERROR = ("this run was trained on arrays given in Python and keeps no copy of them; pass the images "
                "again (e.g. save them with numpy.savez(FILE, train=..., test=...) and use npz:FILE)")


def is_user_data(name: Any) -> bool:
    """True for "folder:PATH", "npz:PATH" and "npy:PATH" (also for the name of in-memory data)."""
    if not isinstance(name, str):
        return False
    return name == MEMORY or (":" in name and name.partition(":")[0] in KINDS)


def user_data_path(name: str) -> Path:
    """The PATH of "folder:PATH" / "npz:PATH" / "npy:PATH"; an empty one ("folder:") is refused, since
    Path("") would be the working directory."""
    kind, _, raw = name.partition(":")
    if not raw.strip():
        raise UserError(f"--dataset {kind}: needs a path after the colon, e.g. {kind}:./my-images")
    return Path(raw).expanduser()


def check_side(side: int, what: str) -> int:
    """The networks (Tables 7, 8) take any square side divisible by 4 from 8 to 128."""
    if not (MIN_SIDE <= side <= MAX_SIDE and side % 4 == 0):
        raise UserError(f"{what}: side {side} not supported; the networks take square images of a side "
                        f"divisible by 4 from {MIN_SIDE} to {MAX_SIDE} (e.g. 28, 32, 64): resize with {SIZE_HINT}")
    return side


def check_image_shape(shape: Any, what: str) -> tuple[int, int, int]:
    """A recorded (C, S, S) image shape, checked."""
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        raise UserError(f"{what}: image shape must be [channels, side, side], got {shape!r:.60}")
    c, h, w = shape
    if c not in (1, 3) or h != w:
        raise UserError(f"{what}: image shape {list(shape)} must be [1 or 3, S, S]")
    check_side(h, what)
    return c, h, w


# --- the held-out split -------------------------------------------------------------------------

def held_out_split(images: Tensor, seed: int, what: str) -> tuple[Tensor, Tensor]:
    """(train, test) of uint8 images (N, C, S, S) without a test split of their own: a random 10%
    (at least 1) is held out, chosen by a CPU generator seeded with `seed`, both kept in order."""
    n = images.shape[0]
    if n < 2:
        raise UserError(f"{what}: holds {n} image; at least 2 are needed (one is held out for testing)")
    k = max(1, round(TEST_FRACTION * n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, train = order[:k].sort().values, order[k:].sort().values
    return images[train], images[test]


# --- arrays -------------------------------------------------------------------------------------

def array_to_images(array: Any, image_size: int, what: str) -> Tensor:
    """A uint8 numpy array N x H x W [x C] -> uint8 tensor (N, C, S, S), resized if asked."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        hint = " (floats in [0, 1]: save (x * 255).round().astype(np.uint8))" if array.dtype.kind == "f" else ""
        raise UserError(f"{what}: dtype {array.dtype}, expected {ARRAY_LAYOUT}{hint}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        hint = "; it looks channels-first, move channels last" if array.ndim == 4 and array.shape[1] in (1, 3) else ""
        raise UserError(f"{what}: shape {array.shape}, expected {ARRAY_LAYOUT}{hint}")
    n, h, w, _ = array.shape
    if n == 0 or h == 0 or w == 0:
        raise UserError(f"{what}: shape {array.shape} holds no images")
    images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    if h != w and not image_size:
        raise UserError(f"{what}: images are {w}x{h}, not square; crop and resize them with {SIZE_HINT}")
    return resize_images(images, image_size, what)


def resize_images(images: Tensor, image_size: int, what: str) -> Tensor:
    """uint8 (N, C, H, W) -> centre square crop, antialiased bilinear resize to image_size (0: keep)."""
    h, w = images.shape[2:]
    if image_size and (h, w) != (image_size, image_size):
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = images[:, :, top:top + side, left:left + side].float()
        images = F.interpolate(square, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    check_side(images.shape[2], what)
    return images


def _load_array_file(path: Path) -> dict[str, np.ndarray]:
    """{"images": array} of an .npy, or the arrays of an .npz; damage is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"image array file {path} does not exist")
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return {"images": loaded}
            return {key: loaded[key] for key in loaded.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UserError(f"{path}: holds Python objects, not a plain uint8 array (refused)") from None
        raise UserError(f"{path}: not a readable .npy/.npz file ({' '.join(str(exc).split())})") from None
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError, ...
        raise UserError(f"{path}: cannot read ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def load_array_data(kind: str, path: Path, image_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train, test) of "npz:PATH" / "npy:PATH": an .npz's `train` and `test` arrays, else its
    `images` or single array with the held-out split."""
    arrays = _load_array_file(path)
    if kind == "npz" and "train" in arrays:
        train = array_to_images(arrays["train"], image_size, f"{path} ['train']")
        if "test" in arrays:
            test = array_to_images(arrays["test"], image_size, f"{path} ['test']")
            if test.shape[1:] != train.shape[1:]:
                raise UserError(f"{path}: 'train' images are {_shape(train)} but 'test' images {_shape(test)}")
            return train, test
        return held_out_split(train, seed, f"{path} ['train']")
    if "images" in arrays:
        key = "images"
    elif len(arrays) == 1:
        key = next(iter(arrays))
    else:
        raise UserError(f"{path}: holds the arrays {', '.join(sorted(arrays))}; name them 'train' (and 'test') "
                        f"or 'images', or save a single array")
    return held_out_split(array_to_images(arrays[key], image_size, f"{path}"), seed, str(path))


def _shape(images: Tensor) -> str:
    return "x".join(map(str, images.shape[1:]))


# --- folders: the one image-file reader ----------------------------------------------------------

@dataclass(frozen=True)
class ImageFiles:
    """Image files as every reader decodes them (`train`, `eval`, `data export`, `flexae metrics`):
    the same files, channels and size, so one folder means one set of pixels everywhere."""

    paths: tuple[Path, ...]  # sorted, found recursively
    channels: int            # 1 when every file is greyscale, else 3 (grey files repeated, alpha dropped)
    height: int
    width: int
    resized: bool            # True: each file centre-cropped to its largest square, resized to height x width

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: Sequence[int] | None = None, desc: str = "decoding", progress: bool = True) -> Tensor:
        """uint8 (n, C, H, W) of the files (all, or those at `index`), decoded in threads."""
        paths = self.paths if index is None else [self.paths[i] for i in index]
        return decode_files(paths, self, desc, progress)

    def chunks(self, size: int, index: Sequence[int] | None = None) -> Iterator[Tensor]:
        """uint8 (<= size, C, H, W) tensors of the files in order: memory bounded by `size` images."""
        index = range(len(self)) if index is None else index
        for start in range(0, len(index), size):
            yield self.read(index[start:start + size], progress=False)


def image_files(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Every image file under `folder` (recursively, sorted), without those under `exclude`."""
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if exclude is not None:
        paths = [p for p in paths if exclude not in p.parents]
    if not paths:
        raise UserError(f"image folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return paths


def _header(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) of an image file, read from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size[0], image.size[1], image.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({' '.join(str(exc).split())})") from None


def scan_files(paths: Sequence[Path], image_size: int, what: str, hint: str = f"resize with {SIZE_HINT}") -> ImageFiles:
    """The ImageFiles of `paths`, from their headers, every size problem reported before anything is
    decoded. `image_size` S > 0: each file becomes S x S; 0: all must be of one size, kept."""
    headers = [(p, *_header(p)) for p in paths]
    channels = 1 if all(mode in GREY_MODES for *_, mode in headers) else 3
    if image_size:
        return ImageFiles(tuple(paths), channels, image_size, image_size, resized=True)
    sizes = {(w, h) for _, w, h, _ in headers}
    if len(sizes) > 1:
        (a, aw, ah, _), (b, bw, bh, _) = headers[0], next(x for x in headers if (x[1], x[2]) != headers[0][1:3])
        raise UserError(f"{what}: mixed sizes ({a.name} {aw}x{ah}, {b.name} {bw}x{bh}); {hint}")
    (w, h), = sizes
    return ImageFiles(tuple(paths), channels, h, w, resized=False)


def folder_layout(path: Path, image_size: int) -> tuple[ImageFiles, ImageFiles | None]:
    """(train files, test files (None: the held-out split)) of a `folder:` data set: PATH/train/
    or PATH without PATH/test/, and PATH/test/; one channel count and one square side for both."""
    if not path.is_dir():
        raise UserError(f"image folder {path} does not exist")
    test_dir = path / "test" if (path / "test").is_dir() else None
    train = image_files(path / "train" if (path / "train").is_dir() else path, exclude=test_dir)
    test = image_files(test_dir) if test_dir is not None else []
    both = scan_files(train + test, image_size, f"image folder {path}",
                      hint=f"resize all to one side with {SIZE_HINT}")
    if image_size:
        check_side(image_size, f"train.image_size of {path}")
    elif both.height != both.width:
        raise UserError(f"image folder {path}: images are {both.width}x{both.height}, not square; "
                        f"crop and resize them with {SIZE_HINT}")
    else:
        check_side(both.width, f"image folder {path}")
    split = lambda files: dataclasses.replace(both, paths=tuple(files))  # noqa: E731
    return split(train), (split(test) if test else None)


def _decode(path: Path, files: ImageFiles) -> np.ndarray:
    """Image file -> (H, W, C) uint8: the 8-bit rule, greyscale or RGB, centre square crop, resize."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = to_8bit(image, path).convert("L" if files.channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({' '.join(str(exc).split())})") from None
    w, h = image.size
    if files.resized:
        s = min(w, h)
        image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != files.height:
            image = image.resize((files.height, files.height), Image.BILINEAR)  # antialiased when shrinking
    elif (h, w) != (files.height, files.width):  # the header lied (or the file changed since the scan)
        raise UserError(f"{path}: image is {w}x{h}, the others {files.width}x{files.height}")
    return np.asarray(image).reshape(files.height, files.width, files.channels)


def decode_files(paths: Sequence[Path], files: ImageFiles, desc: str, progress: bool = True) -> Tensor:
    """Decode in threads (PIL releases the GIL) -> uint8 (N, C, H, W), with a progress bar (on a
    terminal, for 1000 images or more)."""
    from tqdm.auto import tqdm

    out = np.empty((len(paths), files.channels, files.height, files.width), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = pool.map(lambda p: _decode(p, files), paths)
        for i, image in enumerate(tqdm(decoded, total=len(paths), desc=desc, unit="img",
                                       disable=None if progress and len(paths) >= 1000 else True)):
            out[i] = image.transpose(2, 0, 1)
    return torch.from_numpy(out)


def load_folder_data(path: Path, image_size: int, seed: int) -> tuple[Tensor, Tensor]:
    train_files, test_files = folder_layout(path, image_size)
    train = train_files.read(desc=f"decoding {path.name}")
    if test_files is None:
        return held_out_split(train, seed, f"image folder {path}")
    return train, test_files.read(desc=f"decoding {path.name}/test")


# --- entry points -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSource:
    """A data source of the user's own, parsed once where it enters (an option, a config): the
    readers below take this value, not the "kind:PATH" string."""

    kind: str        # "folder", "npz" or "npy"
    path: Path       # as given (user ~ expanded)
    image_size: int  # S > 0: every image resized to S x S; 0: the images' own size

    own: ClassVar[bool] = True       # the user's own images: runs record their path and image shape
    is_image: ClassVar[bool] = True
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    @classmethod
    def parse(cls, name: str, image_size: int = 0) -> "DataSource":
        """"folder:imgs" -> DataSource("folder", Path("imgs"), image_size); in-memory data is refused."""
        if name == MEMORY:
            raise UserError(MEMORY_ERROR)
        if not is_user_data(name):
            raise UserError(f"{name!r} is not a data source of your own: use folder:PATH, npz:PATH or npy:PATH")
        return cls(name.partition(":")[0], user_data_path(name), image_size)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.path}"

    def resolved(self) -> "DataSource":
        """The same source by its absolute path: runs record it, so they work from anywhere."""
        return dataclasses.replace(self, path=self.path.resolve())

    def default_latent_dim(self) -> int:
        return paper_latent_dim(self.image_shape())

    def data_shape(self, recorded: Any, source: str | Path = "config") -> tuple[int, int, int]:
        """The (C, S, S) a run recorded at training (`recorded`: its train.image_shape), so a run of
        these images loads without them."""
        return recorded_image_shape(self.name, recorded, source)

    def load(self, seed: int = 0) -> tuple[Tensor, Tensor]:
        """(train, test) uint8 (N, C, S, S), the split of the module docstring."""
        if self.kind == "folder":
            return load_folder_data(self.path, self.image_size, seed)
        return load_array_data(self.kind, self.path, self.image_size, seed)

    def image_shape(self) -> tuple[int, int, int]:
        """(C, S, S), found cheaply (image headers; the arrays' shapes), with the errors of `load`."""
        if self.kind == "folder":
            train, _ = folder_layout(self.path, self.image_size)
            return train.channels, train.height, train.width
        train, _ = load_array_data(self.kind, self.path, self.image_size, 0)
        return tuple(train.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class GivenArrays:
    """Images handed to `flexae.train(..., data=...)` in Python: no files to read them from again."""

    name: ClassVar[str] = MEMORY
    own: ClassVar[bool] = True
    is_image: ClassVar[bool] = True
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def resolved(self) -> "GivenArrays":
        return self

    def load(self, seed: int = 0) -> tuple[Tensor, Tensor]:
        raise UserError(MEMORY_ERROR)

    def image_shape(self) -> tuple[int, int, int]:
        raise UserError(f"dataset {MEMORY!r} names images given in Python: pass them as train(..., data=...)")

    def default_latent_dim(self) -> int:
        return paper_latent_dim(self.image_shape())

    def data_shape(self, recorded: Any, source: str | Path = "config") -> tuple[int, int, int]:
        return recorded_image_shape(self.name, recorded, source)


def paper_latent_dim(shape: tuple[int, int, int]) -> int:
    """The paper's m by channels of (C, S, S): 20 for greyscale (as MNIST), 64 for colour (CIFAR-10,
    CelebA)."""
    return 20 if shape[0] == 1 else 64


def recorded_image_shape(name: str, recorded: Any, source: str | Path) -> tuple[int, int, int]:
    """The checked train.image_shape `recorded` of a run trained on `name`."""
    if recorded is None:
        raise UserError(f"{source}: trained on {name} but records no train.image_shape")
    return check_image_shape(recorded, f"{source}: train.image_shape")


def parse_own(name: Any, image_size: int = 0) -> DataSource | GivenArrays | None:
    """The data source of the user's own that the config string `name` names ("folder:PATH",
    "npz:PATH", "npy:PATH", "array"), or None for any other name. The one place that reads the
    "kind:PATH" syntax; an empty PATH is refused here."""
    if name == MEMORY:
        return GivenArrays()
    if not is_user_data(name):
        return None
    return DataSource.parse(name, image_size)


def load_user_data(name: str, image_size: int = 0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(train, test) uint8 (N, C, S, S) of "folder:PATH", "npz:PATH" or "npy:PATH"."""
    return DataSource.parse(name, image_size).load(seed)


def user_image_shape(name: str, image_size: int = 0) -> tuple[int, int, int]:
    """(C, S, S) of a user data set, found cheaply, with the same errors as loading it: for defaults
    chosen before training (the latent size)."""
    if name == MEMORY:
        return GivenArrays().image_shape()
    return DataSource.parse(name, image_size).image_shape()


def images_from_python(data: Any, image_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train, test) from data given in Python: a uint8 numpy array N x H x W [x C], a uint8 torch
    tensor (N, C, H, W) (torch's layout), or a dict {"train": ..., "test": ...} of either."""
    if not isinstance(data, dict):
        return held_out_split(_as_images(data, image_size, "data"), seed, "data")
    if "train" not in data:
        raise UserError(f"data= as a dict needs the key 'train' (and optionally 'test'), got {sorted(data)}")
    train = _as_images(data["train"], image_size, "data['train']")
    if "test" not in data:
        return held_out_split(train, seed, "data['train']")
    test = _as_images(data["test"], image_size, "data['test']")
    if train.shape[1:] != test.shape[1:]:
        raise UserError(f"data['train'] images are {_shape(train)} but data['test'] images {_shape(test)}")
    return train, test


def _as_images(value: Any, image_size: int, what: str) -> Tensor:
    """A uint8 numpy array N x H x W [x C] or torch tensor (N, C, H, W) / (N, H, W) -> (N, C, S, S)."""
    if isinstance(value, Tensor):
        if value.dtype != torch.uint8 or value.dim() not in (3, 4):
            raise UserError(f"{what}: a {value.dtype} tensor of shape {tuple(value.shape)}; expected uint8 "
                            f"(N, C, H, W) with C 1 or 3, or (N, H, W)")
        value = value.detach().cpu()
        value = (value.unsqueeze(-1) if value.dim() == 3 else value.permute(0, 2, 3, 1)).numpy()  # N x H x W x C
    elif not isinstance(value, np.ndarray):
        raise UserError(f"{what}: expected a uint8 numpy array or torch tensor, got {type(value).__name__}")
    return array_to_images(value, image_size, what)
