"""Image data sets read from local files in their official formats.

Data sets (paper Table 5) and where their files are looked for, under the data directory `<dir>`
(explicit `data_dir`, else the environment variable FLEXAE_DATA_DIR, else `./data`):

- `mnist`, `fashion-mnist`: the four IDX files (`train-images-idx3-ubyte`,
  `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, gzipped or raw)
  in `<dir>/<name>/`, torchvision's `<dir>/MNIST/raw/` / `<dir>/FashionMNIST/raw/`, or `<dir>`.
  Splits: train (60,000), test (10,000).
- `cifar10`: the python batches `data_batch_1..5` and `test_batch` in `<dir>/cifar10/`,
  `<dir>/cifar-10-batches-py/` (torchvision), `<dir>/cifar10/cifar-10-batches-py/` or `<dir>`.
  Splits: train (50,000), test (10,000). The batches are pickles; they are read with a restricted
  unpickler (see `read_cifar_batch`) that cannot run code from the file.
- `celeba`: `img_align_celeba/*.jpg`, `list_eval_partition.txt` and (optional)
  `list_attr_celeba.txt` in `<dir>/celeba/` (torchvision's layout) or `<dir>`. Splits: train
  (162,770), valid (19,867), test (19,962) of the official partition. Images are reduced to 64x64
  by the crop in `celeba_crop_box` and an antialiased bilinear resize; the decoded split is cached
  as an .npz next to the files.
- `folder:PATH`: every PNG/JPEG/TIFF under PATH (recursively), read by the one image-file reader of
  flexae.data.user as `train` reads it. See `load_image_folder`.

Images are kept as uint8 (N, C, H, W) to save memory (CelebA train is 2 GB even so); convert each
batch with `flexae.data.as_float` to floats in [0, 1]. With `download=True`, missing files are fetched with
torchvision into the data directory and then read by the readers here.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from flexae.data import DATASET_INFO, IMAGES, find_source
from flexae.data.pixels import to_8bit
from flexae.errors import UserError
from flexae.files import atomic_write

if TYPE_CHECKING:
    from flexae.data.user import DataSource, GivenArrays

IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {name: DATASET_INFO[name].shape for name in IMAGES}  # type: ignore[misc]
DATASETS = tuple(IMAGE_SHAPES)
SPLITS = {name: DATASET_INFO[name].splits for name in IMAGES}
DATA_DIR_ENV = "FLEXAE_DATA_DIR"
CELEBA_CROP = 140  # side of the centre crop taken from the 178x218 aligned CelebA images
_DOWNLOAD_HINT = ("or fetch them when online with `flexae data fetch NAME --data-dir DIR` (in Python: "
                  "load_images(..., download=True))")


@dataclass
class ImageData:
    """One split of an image data set, as uint8 tensors on the CPU."""

    images: torch.Tensor                        # (N, C, H, W) uint8
    labels: torch.Tensor | None                 # (N,) int64 class labels, or None
    name: str                                   # "mnist", ..., "folder:PATH"
    split: str                                  # "train", "valid", "test"
    attributes: torch.Tensor | None = None      # (N, A) bool, True = attribute present (CelebA)
    attribute_names: list[str] | None = None    # A names, e.g. "Smiling" (CelebA)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        for field in ("labels", "attributes"):
            value = getattr(self, field)
            if value is not None and len(value) != len(self.images):
                raise ValueError(f"{field} has {len(value)} rows for {len(self.images)} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def subset(data: ImageData, n: int, seed: int) -> ImageData:
    """`n` images drawn without replacement (kept in data-set order); the same for the same seed.

    The paper computes its metrics on 10k random test images; `subset(test, 10_000, seed)` returns
    all of MNIST's test split, and a fixed random 10k of CelebA's 19,962.
    """
    if not 0 < n <= len(data):
        raise UserError(f"cannot take {n} images from {data.name} {data.split}: it has {len(data)}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(data), generator=generator)[:n].sort().values
    pick = lambda t: None if t is None else t[index]  # noqa: E731
    return replace(data, images=data.images[index], labels=pick(data.labels),
                   attributes=pick(data.attributes))


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The explicit directory, else $FLEXAE_DATA_DIR, else ./data."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
    if not str(data_dir).strip():  # Path("") is the working directory
        raise UserError("the data folder is empty (''); give a folder, or leave --data-dir out")
    return Path(data_dir).expanduser()


def load_images(name: str, split: str, data_dir: str | Path | None = None,
                download: bool = False, image_size: int = 0) -> ImageData:
    """Load one split of `name` ("mnist", "fashion-mnist", "cifar10", "celeba" or "folder:PATH").

    `image_size` is used only by "folder:PATH" (PATH is taken as given, not under data_dir; 0 keeps
    the images' own size, as `train` does).
    Missing files raise a one-line UserError saying which files to put where; with
    `download=True` they are fetched with torchvision into the data directory first.
    """
    info = find_source(name, image_size)  # parsed once: a data set's record, or a source of the user's own
    if info is not None and info.own:
        return _own_split(info, split)
    if info is None or not info.is_image:
        raise UserError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} or folder:PATH")
    if split not in info.splits:
        raise UserError(f"{name} has no split {split!r}; choose one of {', '.join(info.splits)}")
    root = resolve_data_dir(data_dir)
    reader = _READERS[info.reader]
    try:
        return reader(name, split, root)
    except MissingDataError:
        if not download:
            raise
    _download(name, root)
    return reader(name, split, root)


# --- locating files -----------------------------------------------------------------------------

class MissingDataError(UserError):
    """Data files are absent (the only data error that `download=True` can fix)."""


def _find_files(label: str, dirs: Sequence[Path], required: Sequence[Sequence[str]],
                note: str = "") -> list[Path]:
    """The first directory holding one of the names of every entry of `required`, as paths.

    `required[i]` lists acceptable names for file i, the first one shown in messages.
    """
    partial: tuple[Path, list[str]] | None = None
    for folder in dirs:
        found = [next((folder / n for n in names if (folder / n).exists()), None) for names in required]
        if all(found):
            return found  # type: ignore[return-value]
        if any(found) and partial is None:
            partial = (folder, [names[0] for names, path in zip(required, found) if path is None])
    searched = ", ".join(str(d) for d in dirs)
    if partial is not None:
        message = f"{label}: {partial[0]} lacks {', '.join(partial[1])}"
    else:
        wanted = ", ".join(names[0] for names in required)
        message = f"{label} not found: put {wanted}{note} in {dirs[0]}"
    raise MissingDataError(f"{message} (searched {searched}; the data directory is data_dir / "
                           f"--data-dir, else ${DATA_DIR_ENV}, else ./data); {_DOWNLOAD_HINT}")


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it ends in .gz; a damaged file is a UserError naming it."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip file ({exc}); replace it") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


# --- MNIST and Fashion-MNIST (IDX) --------------------------------------------------------------

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (N,)
_IDX_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gz or raw): magic 2051 -> (N, H, W), 2049 -> (N,).

    Checks the magic number and that the size matches the header's dimensions exactly, so a
    truncated download is reported instead of being read as fewer images.
    """
    path = Path(path)
    raw = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big")
    if len(raw) >= 4 and found != magic:
        raise UserError(f"{path}: not an IDX {'image' if ndim == 3 else 'label'} file "
                        f"(magic number {found}, expected {magic})")
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX file ({len(raw)} bytes, header alone is {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)  # exact: np.prod would wrap around for a garbled header
    if len(raw) != expected:
        raise UserError(f"{path}: truncated or corrupt IDX file: {len(raw)} bytes, "
                        f"its header {dims} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_names(base: str) -> tuple[str, ...]:
    """Accepted spellings: gzipped, raw, and the dotted raw form some mirrors use."""
    dotted = base.replace("-idx", ".idx")
    return (base + ".gz", base, dotted, dotted + ".gz")


def _load_idx_dataset(name: str, split: str, root: Path) -> ImageData:
    prefix = _IDX_PREFIX[split]
    dirs = [root / name, root / str(DATASET_INFO[name].torchvision) / "raw", root]  # torchvision's: MNIST/raw/
    image_path, label_path = _find_files(
        f"{name} {split} IDX files", dirs,
        [_idx_names(f"{prefix}-images-idx3-ubyte"), _idx_names(f"{prefix}-labels-idx1-ubyte")],
        note=" (gzipped or raw)")
    images = read_idx(image_path, IDX_IMAGES_MAGIC)
    if len(images) == 0:  # a valid header with count 0: every later step would fail obscurely
        raise UserError(f"{image_path}: holds 0 images; replace it with the full {name} {split} file")
    labels = read_idx(label_path, IDX_LABELS_MAGIC)
    _, h, w = DATASET_INFO[name].shape
    if images.shape[1:] != (h, w):
        raise UserError(f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, "
                        f"{name} needs {h}x{w}")
    if len(labels) != len(images):
        raise UserError(f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}")
    if len(labels) and labels.max() > 9:
        raise UserError(f"{label_path}: label {labels.max()} outside 0..9")
    return ImageData(images=torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, H, W)
                     labels=torch.from_numpy(labels.astype(np.int64)), name=name, split=split)


# --- CIFAR-10 (python pickles) ------------------------------------------------------------------

def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles (protocol <= 2) call to rebuild bytes; only that use is allowed."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


def _safe_globals() -> dict[tuple[str, str], object]:
    """The only callables/classes a CIFAR-10 batch may name: numpy array reconstruction.

    Taken from numpy's own reduce output, so they are right for numpy 1.x (`numpy.core`) and 2.x
    (`numpy._core`) alike; both module spellings are accepted because the official files were
    written by Python 2 with an old numpy.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]      # protocol-5 pickles of arrays
    scalar = np.uint8(0).__reduce__()[0]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild plain containers and numpy arrays, and nothing else.

    A pickle reaches code only through globals (`find_class`): every call it makes (REDUCE,
    NEWOBJ, BUILD) is on an object it got from there. Refusing all globals except numpy's array
    reconstruction and a few builtin containers means a hostile file raises instead of running.
    """

    _allowed = _safe_globals()

    def find_class(self, module: str, name: str) -> object:
        module = {"__builtin__": "builtins"}.get(module, module)  # Python 2 spelling
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        raise _RefusedGlobal(f"{module}.{name}")


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images (N, 3, 32, 32) uint8 and labels (N,) int64.

    The file is a pickled dict {b"data": uint8 (N, 3072) rows of 1024 R, 1024 G, 1024 B values in
    row-major 32x32 order, b"labels": N ints in 0..9, ...}. It is read with `_ArrayUnpickler`, which
    refuses any global but numpy's array reconstruction, so a tampered file cannot run code.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise UserError(f"{path}: refused to unpickle {exc}: CIFAR-10 batches hold only numpy arrays "
                        f"and lists, so this is not an official batch (nothing in it was run)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # a damaged pickle can raise almost anything: EOF, Overflow, Index, Key...
        raise UserError(f"{path}: truncated or corrupt CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):
        raise UserError(f"{path}: not a CIFAR-10 batch ('data' must be a uint8 array (N, 3072))")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        labels = np.empty(0)
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise UserError(f"{path}: not a CIFAR-10 batch ('labels' must be {len(data)} ints in 0..9)")
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar10(name: str, split: str, root: Path) -> ImageData:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    dirs = [root / "cifar10", root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py",
            root]
    paths = _find_files(f"cifar10 {split} batches", dirs, [(f,) for f in files])
    parts = [read_cifar_batch(p) for p in paths]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageData(images=torch.from_numpy(images), labels=torch.from_numpy(labels),
                     name=name, split=split)


# --- CelebA (JPEG via PIL; image folders: flexae.data.user.ImageFiles) -----------------------

_CELEBA_PARTITION = {"train": 0, "valid": 1, "test": 2}


def celeba_crop_box(width: int, height: int, crop: int = CELEBA_CROP) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centre crop; (19, 39, 159, 179) for 178x218 images.

    The crop keeps the face and drops most background, the usual preparation of aligned CelebA
    for 64x64 generative models; it is then resized 140 -> 64 (antialiased bilinear).
    """
    left, top = (width - crop) // 2, (height - crop) // 2
    return left, top, left + crop, top + crop


def _load_square(path: Path, size: int, crop: int | None) -> np.ndarray:
    """Image file -> (size, size, 3) uint8: centre crop (`crop`, or the largest square), resize."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = to_8bit(image, path).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({exc}); the file is truncated or corrupt") from None
    width, height = image.size
    side = crop or min(width, height)
    if width < side or height < side:
        raise UserError(f"{path}: image is {width}x{height}, smaller than the {side}x{side} crop")
    image = image.crop(celeba_crop_box(width, height, side))
    if side != size:
        # PIL's BILINEAR widens its kernel by the scale factor when shrinking: antialiased.
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def _decode_all(paths: Sequence[Path], size: int, crop: int | None, desc: str) -> np.ndarray:
    """Decode images in threads (PIL releases the GIL while decoding) -> (N, 3, size, size) uint8."""
    from tqdm import tqdm

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = pool.map(lambda p: _load_square(p, size, crop), paths)
        bar = tqdm(decoded, total=len(paths), desc=desc, unit="img",
                   disable=None if len(paths) >= 1000 else True)  # None: only on a terminal
        for i, image in enumerate(bar):
            out[i] = image.transpose(2, 0, 1)
    return out


def _read_partition(path: Path, split: str) -> list[str]:
    """File names of `split` from list_eval_partition.txt ("000001.jpg 0" per line), in order."""
    wanted = str(_CELEBA_PARTITION[split])
    names = []
    for number, line in enumerate(_read_bytes(path).decode("utf-8", "replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"{path}, line {number}: expected '<image file> <0|1|2>', got {line!r}")
        if fields[1] == wanted:
            names.append(fields[0])
    if not names:
        raise UserError(f"{path}: no images in the {split} partition ({wanted})")
    return names


def _read_attributes(path: Path, files: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Rows of list_attr_celeba.txt for `files` -> (N, A) bool and the A attribute names.

    Format: line 1 the image count, line 2 the names, then "<file> v_1 ... v_A" with v in {-1, 1}.
    """
    lines = _read_bytes(path).decode("utf-8", "replace").splitlines()
    if len(lines) < 2:
        raise UserError(f"{path}: truncated attribute file (no header)")
    names = lines[1].split()
    rows: dict[str, list[str]] = {}
    for number, line in enumerate(lines[2:], 3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1 or not set(fields[1:]) <= {"-1", "1"}:
            raise UserError(f"{path}, line {number}: expected a file name and {len(names)} values "
                            f"of -1 or 1")
        rows[fields[0]] = fields[1:]
    missing = [f for f in files if f not in rows]
    if missing:
        raise UserError(f"{path}: no attributes for {missing[0]} ({len(missing)} images lack them)")
    values = np.array([rows[f] for f in files], dtype=np.int8).reshape(len(files), len(names))
    return values > 0, names


def _celeba_cache(folder: Path, split: str, files: Sequence[str], decode) -> np.ndarray:
    """Decoded images from `<folder>/flexae-cache/` if they match `files`, else decode and save."""
    cache = folder / "flexae-cache" / f"celeba-{split}-64px-crop{CELEBA_CROP}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as saved:
                if saved["files"].tolist() == list(files):
                    images = saved["images"]
                    if images.dtype == np.uint8 and images.shape == (len(files), 3, 64, 64):
                        return images  # else written by something else: decode again
        except Exception as exc:  # any damage (BadZipFile, EOFError, zlib.error, ...): decode again
            warnings.warn(f"{cache}: unreadable cache ({exc}); decoding the images again")
    images = decode()
    try:
        cache.parent.mkdir(exist_ok=True)
        # write aside, then rename: never a half-written cache
        atomic_write(cache, lambda f: np.savez(f, images=images, files=np.array(files)))
    except (OSError, UserError) as exc:
        warnings.warn(f"could not write the CelebA cache {cache} ({exc}); continuing without it")
    return images


def _load_celeba(name: str, split: str, root: Path, cache: bool = True) -> ImageData:
    """Aligned CelebA -> (N, 3, 64, 64): crop `celeba_crop_box` (140x140), antialiased resize to 64."""
    image_dir, partition = _find_files(
        "celeba files", [root / "celeba", root],
        [("img_align_celeba",), ("list_eval_partition.txt",)],
        note=" (and list_attr_celeba.txt for attributes)")
    files = _read_partition(partition, split)

    def decode() -> np.ndarray:  # only when the cache does not hold this split
        paths = [image_dir / f for f in files]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise UserError(f"{missing[0]} is listed in {partition} but missing "
                            f"({len(missing)} of {len(paths)} {split} images missing)")
        return _decode_all(paths, 64, CELEBA_CROP, f"decoding CelebA {split}")

    images = _celeba_cache(image_dir.parent, split, files, decode) if cache else decode()
    attributes, attribute_names = None, None
    attr_path = image_dir.parent / "list_attr_celeba.txt"
    if attr_path.exists():
        values, attribute_names = _read_attributes(attr_path, files)
        attributes = torch.from_numpy(values)
    return ImageData(images=torch.from_numpy(images), labels=None, name=name, split=split,
                     attributes=attributes, attribute_names=attribute_names)


def _own_split(source: "DataSource | GivenArrays", split: str) -> ImageData:
    """One split of images of the user's own (a folder, .npz or .npy), as `train` splits them
    (arrays given in Python have no files to read them from again: GivenArrays.load says so)."""
    if getattr(source, "kind", None) == "folder":
        return load_image_folder(source.path, source.image_size, split)
    if split not in ("train", "test"):
        raise UserError(f"{source.name} has the splits train and test (as `train` reads them), not {split!r}")
    train, test = source.load(seed=0)
    return ImageData(images=train if split == "train" else test, labels=None, name=source.name, split=split)


def load_image_folder(path: str | Path, size: int = 0, split: str | None = None) -> ImageData:
    """The images of a folder through the one image-file reader (flexae.data.user.ImageFiles), as
    `train --dataset folder:PATH` reads them: every PNG/JPEG/TIFF under `path` (recursively,
    sorted), greyscale (C = 1) when all are, else RGB, centre-cropped and resized to `size` (0: their
    own size, one for all). `split` None: all of them; "train" / "test": the split `train` uses
    (PATH/train/ and PATH/test/, else the held-out 10% of train.data_seed 0)."""
    from flexae.data.user import DataSource, image_files, scan_files

    folder = Path(path).expanduser()
    if size < 0:
        raise UserError(f"image size must be positive (or 0: the images' own size), got {size}")
    if split is None:
        files = scan_files(image_files(folder), size, f"image folder {folder}",
                           hint="give an image size to resize them to one")
        images = files.read(desc=f"decoding {folder.name}")
    elif split in ("train", "test"):
        train, test = DataSource("folder", folder, size).load(seed=0)
        images = train if split == "train" else test
    else:
        raise UserError(f"image folder {folder} has the splits train and test (as `train` reads them), "
                        f"not {split!r}")
    return ImageData(images=images, labels=None, name=f"folder:{path}", split=split or "all")


# --- download (online only) ---------------------------------------------------------------------

def _download(name: str, root: Path) -> None:
    """Fetch `name` with torchvision into `root`, in the layouts the readers above look for."""
    try:
        from torchvision import datasets
    except ImportError:
        raise UserError("download=True needs torchvision: pip install 'flexae[download]'") from None
    root.mkdir(parents=True, exist_ok=True)
    info = DATASET_INFO[name]
    try:
        # each call fetches every split: MNIST/raw/, FashionMNIST/raw/, cifar-10-batches-py/, celeba/
        getattr(datasets, str(info.torchvision))(root, download=True, **_DOWNLOAD_ARGS[info.reader])
    except Exception as exc:  # network, quota, checksum errors: all end the same way for a user
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"downloading {name} into {root} failed ({detail}); "
                        f"put the files there by hand (see docs/data.md)") from exc


# the readers by file format (DataSetInfo.reader), and the torchvision arguments that fetch each format
_READERS = {"idx": _load_idx_dataset, "cifar10": _load_cifar10, "celeba": _load_celeba}
_DOWNLOAD_ARGS: dict[str, dict[str, object]] = {"idx": {"train": True}, "cifar10": {"train": True},
                                                "celeba": {"split": "all", "target_type": "attr"}}


__all__ = [
    "ImageData", "MissingDataError", "IMAGE_SHAPES", "DATASETS", "SPLITS", "DATA_DIR_ENV", "CELEBA_CROP",
    "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "load_images", "load_image_folder", "subset",
    "resolve_data_dir", "read_idx", "read_cifar_batch", "celeba_crop_box",
]
