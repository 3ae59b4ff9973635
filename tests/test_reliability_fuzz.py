"""Every file loader, fed truncated, bit-flipped and random bytes, raises only flexae's UserError.

Each case starts from a valid file of its format (so mutations reach deep into the parser rather
than failing on the first byte) and lets hypothesis truncate it, flip bytes, append junk or replace
it with random bytes. A raw struct.error, EOFError, zlib.error, UnpicklingError, OSError, ... would
fail the test; so would a loader that accepts garbage as data of the wrong shape or type.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import images as image_data
from flexae.errors import UserError
from flexae.registry import build_model
from flexae.app.load import load_run
from flexae.runs.checkpoint import rng_state, save_checkpoint, versions

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _idx(magic: int, dims: tuple[int, ...]) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(range(256)) * (int(np.prod(dims)) // 256) + bytes(int(np.prod(dims)) % 256)


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(30 * 20 * 3, dtype=np.uint8).reshape(30, 20, 3)).save(buffer, fmt)
    return buffer.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _checkpoint(folder: Path) -> bytes:
    """A real (untrained) flexae checkpoint: m = 2 synthetic model with its optimizer states."""
    cfg = RunConfig(ModelConfig(name="wae", latent_dim=2), train=TrainConfig(dataset="synthetic-2d"))
    model = build_model(cfg.model, (128,))
    optimizer = torch.optim.Adam(model.parameters())
    state = {"config": cfg.to_dict(), "step": 3, "model": model.state_dict(),
             "optimizers": {"ae": optimizer.state_dict()}, "rng": rng_state(), "versions": versions()}
    save_checkpoint(folder / "checkpoint.pt", state)
    return (folder / "checkpoint.pt").read_bytes()


def _safetensors(run: Path, out: Path) -> bytes:
    from flexae.app.export import export_weights

    return export_weights(run, out).read_bytes()


def _metrics_loader() -> Callable[[Path], Any] | None:
    """The .npy/.npz image reader of flexae.metrics.io, when that module is part of this tree."""
    try:
        from flexae.metrics import io as metrics_io
    except ImportError:
        return None
    return getattr(metrics_io, "load_image_file", None) or getattr(metrics_io, "load_images", None)


def _celeba_root(root: Path) -> Path:
    """CelebA layout with two small aligned-size images; the list files are then fuzzed."""
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    for name in ("000001.jpg", "000002.jpg"):
        Image.new("RGB", (178, 218), (200, 100, 50)).save(root / "img_align_celeba" / name)
    return root


PARTITION = b"000001.jpg 0\n000002.jpg 0\n"
ATTRIBUTES = b"2\nSmiling Male\n000001.jpg 1 -1\n000002.jpg -1 1\n"


def _cases(root: Path) -> dict[str, tuple[bytes, Path, Callable[[Path], Any]]]:
    """name -> (valid bytes, where the fuzzed bytes are written, how the file is loaded)."""
    celeba = _celeba_root(root / "celeba")
    (celeba / "list_eval_partition.txt").write_bytes(PARTITION)
    run = root / "run"
    run.mkdir()
    cases = {
        "idx images raw": (_idx(2051, (3, 28, 28)), root / "idx" / "images",
                           lambda p: image_data.read_idx(p, image_data.IDX_IMAGES_MAGIC)),
        "idx images gz": (gzip.compress(_idx(2051, (3, 28, 28))), root / "idx" / "images.gz",
                          lambda p: image_data.read_idx(p, image_data.IDX_IMAGES_MAGIC)),
        "idx labels gz": (gzip.compress(_idx(2049, (3,))), root / "idx" / "labels.gz",
                          lambda p: image_data.read_idx(p, image_data.IDX_LABELS_MAGIC)),
        "cifar batch": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2),
                        root / "cifar" / "data_batch_1", image_data.read_cifar_batch),
        "celeba partition": (PARTITION, celeba / "list_eval_partition.txt",
                             lambda p: image_data.load_images("celeba", "train", root)),
        "celeba attributes": (ATTRIBUTES, celeba / "list_attr_celeba.txt",
                              lambda p: image_data.load_images("celeba", "train", root)),
        "png": (_image("PNG"), root / "png" / "a.png", lambda p: image_data.load_image_folder(p.parent, 16)),
        "jpeg": (_image("JPEG"), root / "jpeg" / "a.jpg", lambda p: image_data.load_image_folder(p.parent, 16)),
        "checkpoint": (_checkpoint(run), run / "checkpoint.pt", lambda p: load_run(p.parent)),
    }
    published = root / "published"
    published.mkdir()
    cases["safetensors"] = (_safetensors(run, published / "model.safetensors"), published / "model.safetensors",
                            load_run)
    from flexae.experiments.synthetic import _read_json
    from flexae.metrics.stats import load_stats
    from flexae.report import read_run

    edited = root / "edited"
    edited.mkdir()
    cases["run config json"] = (json.dumps(RunConfig().to_dict()).encode(), edited / "config.json",
                                lambda p: read_run(p.parent))
    cases["metrics json"] = (b'{"step": 2, "fd": 1.5, "w_latent": 0.25}', root / "fig2" / "metrics.json",
                             lambda p: _read_json(p, ("fd", "w_latent")))
    cases["stats npz"] = (_npz(mu=np.zeros(4), sigma=np.eye(4), n=np.int64(10)), root / "stats" / "s.npz", load_stats)
    reader = _metrics_loader()
    if reader is not None:
        images = np.zeros((3, 8, 8), np.uint8)
        cases["npy"] = (_npy(images), root / "npy" / "images.npy", reader)
        cases["npz"] = (_npz(images=images), root / "npz" / "images.npz", reader)
    for _, path, _ in cases.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, Path, Callable[[Path], Any]]]:
    return _cases(tmp_path_factory.mktemp("fuzz"))


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, byte flips, appended junk and pure noise, starting from a valid file."""
    n = len(valid)
    truncated = st.integers(0, max(n - 1, 0)).map(lambda k: valid[:k])
    flips = st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(valid)
        for index, value in changes:
            data[index] = value
        return bytes(data)

    junk = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(lambda t: valid[:t[0]] + t[1])
    return st.one_of(truncated, flips.map(flip), junk, st.binary(max_size=512))


CASE_NAMES = ["idx images raw", "idx images gz", "idx labels gz", "cifar batch", "celeba partition",
              "celeba attributes", "png", "jpeg", "checkpoint", "safetensors", "npy", "npz",
              "run config json", "metrics json", "stats npz"]


@pytest.mark.parametrize("name", CASE_NAMES)
@FUZZ
@given(data=st.data())
def test_damaged_files_give_only_user_errors(cases, name: str, data: st.DataObject) -> None:
    if name not in cases:
        pytest.skip(f"{name}: its loader is not part of this tree")
    valid, path, load = cases[name]
    blob = data.draw(mutations(valid), label="file bytes")
    path.write_bytes(blob)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PIL's truncated-image warnings; errors are what count
        try:
            load(path)
        except UserError as exc:
            message = str(exc)
            assert message and "\n" not in message, f"not a one-line message: {message!r}"
            assert len(message) < 600
        finally:
            path.write_bytes(valid)  # the next example starts from a valid tree


@pytest.mark.parametrize("name", CASE_NAMES)
def test_valid_files_load(cases, name: str) -> None:
    """The fuzzing starts from files the loaders accept, so it exercises the parsers, not a typo."""
    if name not in cases:
        pytest.skip(f"{name}: its loader is not part of this tree")
    valid, path, load = cases[name]
    path.write_bytes(valid)
    assert load(path) is not None


def test_damaged_celeba_cache_is_rebuilt(tmp_path: Path) -> None:
    """The decoded-CelebA cache is ours: a damaged one is decoded again (with a warning), never fatal."""
    root = tmp_path
    celeba = _celeba_root(root / "celeba")
    (celeba / "list_eval_partition.txt").write_bytes(PARTITION)
    first = image_data.load_images("celeba", "train", root)
    cache = next((celeba / "flexae-cache").glob("*.npz"))
    good = cache.read_bytes()
    wrong_shape = _npz(images=np.zeros((2, 3, 8, 8), np.uint8), files=np.array(["000001.jpg", "000002.jpg"]))
    for damaged in (good[: len(good) // 2], b"PK\x03\x04" + bytes(40), wrong_shape):
        cache.write_bytes(damaged)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = image_data.load_images("celeba", "train", root)
        assert torch.equal(again.images, first.images)
        assert cache.read_bytes() == good  # rewritten from the decoded images


# Bad command-line arguments that once ended in a traceback (issue 25): each is one line, exit 2.
BAD_ARGUMENTS = [
    ["train", "--set", "train.cpu_threads=100000"],
    ["train", "--set", "model.gmm_components=100000000", "--model", "wae-gmm"],
    ["train", "--set", "train.log_every=1e18"],
    ["train", "--set", "model.bn_eps=1e-320"],
    ["train", "--set", "model.gmm_std=1e-320", "--model", "wae-gmm"],
    ["train", "--set", "model.options.vq_codebook_size=0"],
    ["train", "--resume", ""],
    ["train", "--data-dir", ""],
    ["train", "--dataset", "folder:"],
    ["train", "--dataset", "npy:"],
    ["train", "--out", ""],
    ["sample", "", "--out", "x.npz"],
    ["report", ""],
    ["export", "", "--out", "x.safetensors"],
    ["train", "--set", "train.eval_samples=1e12"],
    ["train", "--set", "optim.critic_steps=1e9"],
    ["train", "--set", "model.options.sampler_batch_size=1e9", "--model", "2s-vae"],
    ["train", "--set", "train.grid_every=-1"],
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=lambda a: " ".join(a) or "''")
def test_bad_arguments_give_one_line(tmp_path, capsys, monkeypatch, args):
    from flexae.cli import main

    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "run")] if args[0] == "train" and "--resume" not in args and "--out" not in args else []
    with pytest.raises(SystemExit) as info:
        main([*args, *out])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("flexae: error:"), err
    assert not (tmp_path / "run").exists()
