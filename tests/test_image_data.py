"""Image data readers: real MNIST / Fashion-MNIST files, and format fixtures for the others."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flexae.data import images as image_data
from flexae.data import as_float
from flexae.data.images import (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, ImageData, MissingDataError,
                                celeba_crop_box, load_image_folder, load_images, read_cifar_batch,
                                read_idx, subset)
from flexae.errors import UserError

SHARED = Path(os.environ.get("FLEXAE_SHARED_DATA")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared MNIST files absent")

# sha256 of the first image's 784 bytes: a change means the reader reorders or rescales pixels.
FIRST_IMAGE_SHA256 = {
    ("mnist", "train"): "23ceaef5eb61f0e70d64ac18fdf0f60df3d5971cf30bbadac7b6ebf07f782d2c",
    ("mnist", "test"): "8f6a418c9a639f9e14e96feca47a97df2a35a0a68ae2875431c5c80e05536941",
    ("fashion-mnist", "train"): "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b",
    ("fashion-mnist", "test"): "ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787",
}
# Published class counts (MNIST) and the balanced classes of Fashion-MNIST.
CLASS_COUNTS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion-mnist", "train"): [6000] * 10,
    ("fashion-mnist", "test"): [1000] * 10,
}
FIRST_LABELS = {("mnist", "train"): [5, 0, 4, 1, 9], ("mnist", "test"): [7, 2, 1, 0, 4],
                ("fashion-mnist", "train"): [9, 0, 0, 3, 0], ("fashion-mnist", "test"): [9, 2, 1, 1, 6]}


# --- MNIST / Fashion-MNIST on the real files ----------------------------------------------------

@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_idx_files(name: str, split: str) -> None:
    data = load_images(name, split, SHARED)
    n = 60_000 if split == "train" else 10_000
    assert data.images.shape == (n, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (n,) and data.labels.dtype == torch.int64
    assert torch.bincount(data.labels, minlength=10).tolist() == CLASS_COUNTS[(name, split)]
    assert data.labels[:5].tolist() == FIRST_LABELS[(name, split)]
    digest = hashlib.sha256(data.images[0].numpy().tobytes()).hexdigest()
    assert digest == FIRST_IMAGE_SHA256[(name, split)]
    assert data.images.max() == 255 and data.images.min() == 0
    assert (data.name, data.split, data.image_shape) == (name, split, (1, 28, 28))
    assert data.attributes is None and data.attribute_names is None


def _copy_idx(tmp: Path, name: str, split: str, raw: bool = False) -> list[Path]:
    """Copy the shared IDX files of one split into `tmp`, gunzipped if `raw`."""
    prefix = "train" if split == "train" else "t10k"
    tmp.mkdir(parents=True, exist_ok=True)
    out = []
    for kind in ("images-idx3", "labels-idx1"):
        source = SHARED / name / f"{prefix}-{kind}-ubyte.gz"
        if raw:
            target = tmp / f"{prefix}-{kind}-ubyte"
            target.write_bytes(gzip.decompress(source.read_bytes()))
        else:
            target = tmp / source.name
            shutil.copyfile(source, target)
        out.append(target)
    return out


@needs_shared
def test_raw_idx_equals_gz(tmp_path: Path) -> None:
    _copy_idx(tmp_path / "mnist", "mnist", "test", raw=True)
    raw = load_images("mnist", "test", tmp_path)
    gz = load_images("mnist", "test", SHARED)
    assert torch.equal(raw.images, gz.images) and torch.equal(raw.labels, gz.labels)


@needs_shared
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_layout(tmp_path: Path, name: str, folder: str) -> None:
    _copy_idx(tmp_path / folder / "raw", name, "test")
    data = load_images(name, "test", tmp_path)
    assert data.labels[:5].tolist() == FIRST_LABELS[(name, "test")]


@needs_shared
def test_env_var_and_flat_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_idx(tmp_path, "fashion-mnist", "test")  # the files straight in the data directory
    monkeypatch.setenv("FLEXAE_DATA_DIR", str(tmp_path))
    data = load_images("fashion-mnist", "test")
    assert len(data) == 10_000 and data.labels[0] == 9


@needs_shared
def test_truncated_raw_idx_names_file(tmp_path: Path) -> None:
    images, labels = _copy_idx(tmp_path / "mnist", "mnist", "test", raw=True)
    labels.write_bytes(labels.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte: truncated"):
        load_images("mnist", "test", tmp_path)


@needs_shared
def test_truncated_gz_idx_names_file(tmp_path: Path) -> None:
    images, _ = _copy_idx(tmp_path / "mnist", "mnist", "test")
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte\.gz: truncated or corrupt gzip"):
        load_images("mnist", "test", tmp_path)


def test_idx_magic_and_header_checks(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_bytes(IDX_LABELS_MAGIC.to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3]))
    assert read_idx(labels, IDX_LABELS_MAGIC).tolist() == [1, 2, 3]
    with pytest.raises(UserError, match=r"labels: not an IDX image file \(magic number 2049"):
        read_idx(labels, IDX_IMAGES_MAGIC)
    images = tmp_path / "images"
    header = b"".join(v.to_bytes(4, "big") for v in (IDX_IMAGES_MAGIC, 2, 3, 3))
    images.write_bytes(header + bytes(range(18)))
    assert read_idx(images, IDX_IMAGES_MAGIC)[1, 2, 0] == 9 + 6
    images.write_bytes(header + bytes(range(19)))  # one byte too many is corrupt too
    with pytest.raises(UserError, match="images: truncated or corrupt"):
        read_idx(images, IDX_IMAGES_MAGIC)
    images.write_bytes(header[:10])
    with pytest.raises(UserError, match="truncated IDX file"):
        read_idx(images, IDX_IMAGES_MAGIC)


def test_wrong_image_size_is_user_error(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = b"".join(v.to_bytes(4, "big") for v in (IDX_IMAGES_MAGIC, 1, 32, 32))
    (folder / "t10k-images-idx3-ubyte").write_bytes(header + bytes(32 * 32))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        IDX_LABELS_MAGIC.to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(1))
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte: images are 32x32, mnist needs 28x28"):
        load_images("mnist", "test", tmp_path)


def test_missing_files_say_where_to_put_what(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as info:
        load_images("mnist", "train", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message and str(tmp_path / "MNIST" / "raw") in message
    assert "download=True" in message and "flexae data fetch" in message


def test_partial_files_name_the_missing_one(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(MissingDataError, match=r"mnist lacks t10k-labels-idx1-ubyte\.gz"):
        load_images("mnist", "test", tmp_path)


@needs_shared
def test_download_flag_fetches_then_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(name: str, root: Path) -> None:  # stands in for torchvision (offline here)
        calls.append((name, root))
        _copy_idx(root / "MNIST" / "raw", "mnist", "test")

    monkeypatch.setattr(image_data, "_download", fake_download)
    with pytest.raises(MissingDataError):
        load_images("mnist", "test", tmp_path)  # without the flag: nothing fetched
    assert calls == []
    data = load_images("mnist", "test", tmp_path, download=True)
    assert calls == [("mnist", tmp_path)] and len(data) == 10_000
    load_images("mnist", "test", tmp_path, download=True)  # present now: no second fetch
    assert len(calls) == 1


def test_unknown_name_and_split() -> None:
    with pytest.raises(UserError, match="unknown data set 'svhn'"):
        load_images("svhn", "train")
    with pytest.raises(UserError, match="mnist has no split 'valid'"):
        load_images("mnist", "valid")
    with pytest.raises(UserError, match="celeba has no split 'val'"):
        load_images("celeba", "val")


def _write_idx(folder: Path, prefix: str, images: np.ndarray) -> None:
    """`images` (N, H, W) uint8 as the IDX pair `prefix`-images-idx3-ubyte / -labels-idx1-ubyte."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (IDX_IMAGES_MAGIC, n, h, w))
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = IDX_LABELS_MAGIC.to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(range(n))
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)


def test_a_new_data_set_is_one_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One DataSetInfo record (no other edit) and the name is accepted, shaped, defaulted, split,
    read (from the torchvision folder the record names) and checked everywhere."""
    from flexae.config import ModelConfig, RunConfig, TrainConfig
    from flexae.data import (DATASET_INFO, DataSetInfo, data_source, default_latent_dim, load_dataset,
                             run_data_shape)
    from flexae.validation import validate_config

    monkeypatch.setitem(DATASET_INFO, "tiny-idx", DataSetInfo("tiny-idx", (1, 8, 8), 7, "idx", "TinyIDX"))
    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 8, 8), dtype=np.uint8) for n in (5, 3))
    _write_idx(tmp_path / "TinyIDX" / "raw", "train", train)
    _write_idx(tmp_path / "TinyIDX" / "raw", "t10k", test)

    cfg = RunConfig(ModelConfig(latent_dim=default_latent_dim("tiny-idx")), train=TrainConfig(dataset="tiny-idx"))
    validate_config(cfg, check_device=False)
    assert cfg.model.latent_dim == 7 and run_data_shape(cfg.train) == (1, 8, 8)
    assert not data_source("tiny-idx").own and data_source("tiny-idx").is_image
    data = load_dataset("tiny-idx", tmp_path)
    assert torch.equal(data.train, torch.from_numpy(train)[:, None]) and torch.equal(data.test[:, 0], torch.from_numpy(test))
    with pytest.raises(UserError, match="tiny-idx has no split 'valid'; choose one of train, test"):
        load_images("tiny-idx", "valid", tmp_path)
    with pytest.raises(UserError, match="train.image_size resizes images of your own"):
        validate_config(RunConfig(train=TrainConfig(dataset="tiny-idx", image_size=8)), check_device=False)


# --- CIFAR-10 on fixtures in the official format ------------------------------------------------

class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (BINSTRING), as the official batches hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        size = len(data)
        opcode = (pickle.SHORT_BINSTRING + bytes([size]) if size < 256
                  else pickle.BINSTRING + struct.pack("<i", size))
        self.write(opcode + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj: object) -> bytes:
    """A protocol-2 pickle like the official CIFAR-10 files (Python 2, numpy.core names)."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.", b"numpy.core.")


def _cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"training batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)]}


def _write_cifar(folder: Path, n: int = 3) -> dict[str, dict[bytes, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": _cifar_batch(n, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(n + 1, 0)
    for file, batch in batches.items():
        (folder / file).write_bytes(_py2_pickle(batch))
    return batches


def test_py2_fixture_is_faithful(tmp_path: Path) -> None:
    blob = _py2_pickle(_cifar_batch(1, 0))
    ops = {op.name for op, _, _ in pickletools.genops(blob)}
    assert "SHORT_BINSTRING" in ops and "BINSTRING" in ops and "BINUNICODE" not in ops
    globals_ = {arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "cifar10"])
def test_cifar10_fixture(tmp_path: Path, layout: str) -> None:
    batches = _write_cifar(tmp_path / layout)
    train = load_images("cifar10", "train", tmp_path)
    test = load_images("cifar10", "test", tmp_path)
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    expected_labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert train.labels.tolist() == expected_labels
    first = batches["data_batch_1"][b"data"][0]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane.
    assert train.images[0, 1, 2, 5] == first[1024 + 2 * 32 + 5]
    assert train.images[0, 2, 31, 0] == first[2048 + 31 * 32]
    assert train.images[3, 0, 0, 0] == batches["data_batch_2"][b"data"][0][0]


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_batch_resaved_by_python3(tmp_path: Path, protocol: int) -> None:
    """str keys, numpy._core names, bytes via _codecs.encode (protocol 2) or out-of-band (5)."""
    batch = {"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072), "labels": [1, 9]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_batch(tmp_path / "test_batch")
    assert np.array_equal(images.reshape(2, 3072), batch["data"]) and labels.tolist() == [1, 9]


def test_cifar10_missing_batch_named(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(MissingDataError, match="cifar-10-batches-py lacks data_batch_4"):
        load_images("cifar10", "train", tmp_path)
    load_images("cifar10", "test", tmp_path)  # the test split is complete


def test_cifar10_truncated_batch_named(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar10")
    path = tmp_path / "cifar10" / "test_batch"
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(UserError, match=r"test_batch: truncated or corrupt CIFAR-10 batch"):
        load_images("cifar10", "test", tmp_path)


def test_cifar10_wrong_content_named(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(UserError, match=r"test_batch: not a CIFAR-10 batch \('data'"):
        read_cifar_batch(path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(UserError, match=r"test_batch: not a CIFAR-10 batch \('labels'"):
        read_cifar_batch(path)


class _ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # a builtin: a blanket "allow builtins" unpickler would run it
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("payload", [_ExecPayload, _SystemPayload])
def test_cifar10_hostile_pickle_refused_without_running(tmp_path: Path, payload: type) -> None:
    # The payload works: a plain pickle.loads creates its marker file.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(payload(control), protocol=2))
    assert control.exists()

    marker = tmp_path / "marker"
    batch = _cifar_batch(2, 1)
    batch[b"labels"] = payload(marker)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(_py2_pickle(batch))
    with pytest.raises(UserError, match=r"test_batch: refused to unpickle (builtins\.exec|posix\.system)"):
        load_images("cifar10", "test", tmp_path)
    assert not marker.exists()


# --- CelebA on fixtures in the official layout --------------------------------------------------

CELEBA_PARTITION = [0, 0, 0, 1, 2, 2]
CELEBA_ATTRS = ["Black_Hair", "Male", "Smiling"]
CELEBA_VALUES = [[1, -1, 1], [-1, -1, -1], [1, 1, 1], [-1, 1, -1], [1, 1, -1], [-1, -1, 1]]
CROP_COLOURS = [(200, 100, 50), (30, 180, 90), (120, 40, 220), (250, 250, 10), (5, 60, 130),
                (90, 90, 90)]


def _write_celeba(root: Path, attributes: bool = True) -> list[Path]:
    """Six 178x218 JPEGs: one colour inside the 140x140 crop box, black outside."""
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    left, top, right, bottom = 19, 39, 159, 179  # the documented box, independent of the code
    paths = []
    for i, colour in enumerate(CROP_COLOURS):
        pixels = np.zeros((218, 178, 3), np.uint8)
        pixels[top:bottom, left:right] = colour
        path = images / f"{i + 1:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=95, subsampling=0)
        paths.append(path)
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(CELEBA_PARTITION)))
    if attributes:
        rows = "".join(f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in values) + "\n"
                       for i, values in enumerate(CELEBA_VALUES))
        (root / "list_attr_celeba.txt").write_text(
            f"{len(CELEBA_VALUES)}\n{' '.join(CELEBA_ATTRS)} \n{rows}")
    return paths


def test_celeba_crop_box_documented_values() -> None:
    assert celeba_crop_box(178, 218) == (19, 39, 159, 179)


@pytest.mark.parametrize("split,index", [("train", [0, 1, 2]), ("valid", [3]), ("test", [4, 5])])
def test_celeba_fixture(tmp_path: Path, split: str, index: list[int]) -> None:
    _write_celeba(tmp_path / "celeba")
    data = load_images("celeba", split, tmp_path)
    assert data.images.shape == (len(index), 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.labels is None and data.attribute_names == CELEBA_ATTRS
    expected = torch.tensor([CELEBA_VALUES[i] for i in index]) > 0
    assert torch.equal(data.attributes, expected)
    for row, i in enumerate(index):
        # Only the crop box survives: every pixel has its colour (JPEG error aside); a box off by
        # one pixel would pull black into the border rows (error > 100).
        error = (data.images[row].int() - torch.tensor(CROP_COLOURS[i]).view(3, 1, 1)).abs()
        assert error.max() <= 8


def test_celeba_cache_is_used_and_checked(tmp_path: Path) -> None:
    paths = _write_celeba(tmp_path)  # flat layout: the files directly in the data directory
    first = load_images("celeba", "test", tmp_path)
    assert list((tmp_path / "flexae-cache").glob("celeba-test-*.npz"))
    paths[4].unlink()  # the cache still serves the same split
    assert torch.equal(load_images("celeba", "test", tmp_path).images, first.images)
    # A changed partition no longer matches the cache: the images are decoded again.
    (tmp_path / "list_eval_partition.txt").write_text("000005.jpg 2\n000006.jpg 2\n000001.jpg 2\n")
    with pytest.raises(UserError, match=r"000005\.jpg is listed in .*list_eval_partition\.txt"):
        load_images("celeba", "test", tmp_path)


def test_celeba_without_attribute_file(tmp_path: Path) -> None:
    _write_celeba(tmp_path / "celeba", attributes=False)
    data = load_images("celeba", "valid", tmp_path)
    assert data.attributes is None and data.attribute_names is None and len(data) == 1


def test_celeba_truncated_jpeg_named(tmp_path: Path) -> None:
    paths = _write_celeba(tmp_path / "celeba")
    paths[3].write_bytes(paths[3].read_bytes()[:300])
    with pytest.raises(UserError, match=r"000004\.jpg: cannot read image"):
        load_images("celeba", "valid", tmp_path)


def test_celeba_bad_partition_and_attribute_lines(tmp_path: Path) -> None:
    _write_celeba(tmp_path / "celeba")
    attrs = tmp_path / "celeba" / "list_attr_celeba.txt"
    attrs.write_text(attrs.read_text().replace("000004.jpg -1  1 -1", "000004.jpg -1  1"))
    with pytest.raises(UserError, match=r"list_attr_celeba\.txt, line 6: expected a file name and 3"):
        load_images("celeba", "valid", tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 3\n")
    with pytest.raises(UserError, match=r"list_eval_partition\.txt, line 1"):
        load_images("celeba", "train", tmp_path)


def test_celeba_missing_files_message(tmp_path: Path) -> None:
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(MissingDataError, match=r"celeba lacks list_eval_partition\.txt"):
        load_images("celeba", "train", tmp_path)


# --- image folders ------------------------------------------------------------------------------

def _write_folder(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    wide = np.zeros((60, 100, 3), np.uint8)   # 100 wide: red | green (centre 60x60) | blue
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:80] = (0, 255, 0)
    wide[:, 80:] = (0, 0, 255)
    Image.fromarray(wide).save(folder / "a.png")
    Image.fromarray(np.full((50, 50), 77, np.uint8), mode="L").save(folder / "sub" / "b.PNG")
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(folder / "sub" / "c.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")


def test_image_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path / "faces")
    data = load_image_folder(tmp_path / "faces", 16)  # every image, recursively
    assert data.images.shape == (3, 3, 16, 16) and data.labels is None
    assert data.images[0].tolist() == torch.tensor([0, 255, 0]).view(3, 1, 1).expand(3, 16, 16).tolist()
    assert (data.images[1] == 77).all()                     # grayscale -> 3 equal channels
    assert (data.images[2].int() - 200).abs().max() <= 3   # JPEG
    assert data.name == f"folder:{tmp_path / 'faces'}"
    train = load_images(f"folder:{tmp_path / 'faces'}", "train", image_size=16)  # the split `train` uses
    test = load_images(f"folder:{tmp_path / 'faces'}", "test", image_size=16)    # one held out
    assert (len(train), len(test)) == (2, 1)
    assert sorted(x.sum().item() for x in torch.cat([train.images, test.images])) == \
        sorted(x.sum().item() for x in data.images)


def test_image_folder_splits_and_errors(tmp_path: Path) -> None:
    _write_folder(tmp_path / "set" / "test")
    with pytest.raises(UserError, match="holds no"):  # no training images beside test/: as `train` sees it
        load_image_folder(tmp_path / "set", 8, "train")
    _write_folder(tmp_path / "set" / "train")
    (tmp_path / "set" / "train" / "sub" / "b.PNG").unlink()
    assert len(load_image_folder(tmp_path / "set", 8, "test")) == 3
    assert len(load_image_folder(tmp_path / "set", 8, "train")) == 2
    with pytest.raises(UserError, match="has the splits train and test"):
        load_image_folder(tmp_path / "set", 8, "valid")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


# --- helpers ------------------------------------------------------------------------------------

def _tiny(n: int = 20) -> ImageData:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    return ImageData(images=images, labels=torch.arange(n), name="tiny", split="test",
                     attributes=torch.arange(n).view(n, 1) % 2 == 0, attribute_names=["even"])


def test_subset() -> None:
    data = _tiny()
    a, b, c = subset(data, 8, seed=1), subset(data, 8, seed=1), subset(data, 8, seed=2)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert len(a) == 8 and len(set(a.labels.tolist())) == 8
    assert a.labels.tolist() == sorted(a.labels.tolist())          # data-set order kept
    assert torch.equal(a.images[:, 0, 0, 0].long(), a.labels)     # rows stay aligned
    assert torch.equal(a.attributes[:, 0], a.labels % 2 == 0)
    assert torch.equal(subset(data, 20, seed=3).images, data.images)
    with pytest.raises(UserError, match="cannot take 21 images"):
        subset(data, 21, seed=0)


def test_as_float() -> None:
    batch = torch.tensor([0, 51, 255], dtype=torch.uint8)
    out = as_float(batch)
    assert out.dtype == torch.float32 and out.tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert batch.tolist() == [0, 51, 255]  # input untouched
    assert as_float(out) is out  # float data pass through
    assert as_float(batch, torch.float64).dtype == torch.float64


def test_image_data_validates_itself() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageData(images=torch.zeros(2, 1, 2, 2), labels=None, name="x", split="train")
    with pytest.raises(ValueError, match="labels has 3 rows for 2 images"):
        ImageData(images=torch.zeros(2, 1, 2, 2, dtype=torch.uint8), labels=torch.zeros(3),
                  name="x", split="train")
