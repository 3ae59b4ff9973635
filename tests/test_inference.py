"""Using a trained model: sample, reconstruct, interpolate, traverse (library and CLI), and the
one-line errors for bad runs, data and outputs.

The run folders are made without training (weights at initialisation, saved by the training
loop's own `Run.save`): shapes, value ranges, layouts and errors do not depend on training.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from flexae import inference
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import load_dataset
from flexae.data.images import load_images
from flexae.data import as_float
from flexae.cli import main
from flexae.app.load import load_run
from flexae.app.train import Run
from test_image_data import CELEBA_ATTRS, CELEBA_PARTITION, CELEBA_VALUES, _write_celeba

TILE = 28 + 2  # MNIST tile plus its grid line


def _make_run(out: Path, cfg: RunConfig, data_dir: Path) -> Path:
    run = Run(cfg, out, torch.device("cpu"), load_dataset(cfg.train.dataset, data_dir))
    run.save()
    return out


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("shared MNIST files absent")
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=20),
                    train=TrainConfig(dataset="mnist", device="cpu", data_dir=str(SHARED_DATA)))
    return _make_run(tmp_path_factory.mktemp("mnist-run"), cfg, SHARED_DATA)


@pytest.fixture(scope="module")
def mnist_test() -> torch.Tensor:
    return load_images("mnist", "test", SHARED_DATA).images


def flexae(*args) -> SimpleNamespace:
    """Run the `flexae` command line in this process (its `main`, exit code and all): the
    subprocess start-up would cost more than the commands themselves."""
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return SimpleNamespace(returncode=code or 0, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def _one_line_error(proc, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


# --- sampling -----------------------------------------------------------------------------------

def test_sample_uses_per_sample_seeds(mnist_run):
    model, _ = load_run(mnist_run)
    images = inference.sample(model, 5, seed=3, batch_size=2)
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    # Image i depends on seed + i only: not on n, the batch size or its neighbours.
    same = inference.sample(model, 8, seed=0, batch_size=8)[3:]
    assert torch.allclose(images, same, atol=1e-5)
    assert not torch.allclose(images[0], images[1])


def test_sample_cli_npz_png_and_no_overwrite(mnist_run, tmp_path):
    npz = tmp_path / "samples.npz"
    proc = flexae("sample", mnist_run, "-n", "12", "--out", npz, "--batch-size", "5", "--device", "auto")
    assert proc.returncode == 0, proc.stderr
    with np.load(npz) as saved:
        assert saved["images"].shape == (12, 28, 28, 1) and saved["images"].dtype == np.uint8
        assert saved["seeds"].tolist() == list(range(12))
        assert saved["images"].max() > saved["images"].min()
    png = tmp_path / "samples.png"
    assert flexae("sample", mnist_run, "--out", png).returncode == 0  # 225 images: 15 x 15
    with Image.open(png) as image:
        assert image.mode == "L" and image.size == (15 * TILE + 2, 15 * TILE + 2)
    before = png.read_bytes()
    _one_line_error(flexae("sample", mnist_run, "-n", "4", "--out", png), "exists; pass --overwrite")
    assert png.read_bytes() == before
    assert flexae("sample", mnist_run, "-n", "4", "--out", png, "--overwrite").returncode == 0
    assert png.read_bytes() != before
    _one_line_error(flexae("sample", mnist_run, "--out", tmp_path / "x.jpg"), "unknown file type '.jpg'")
    _one_line_error(flexae("sample", mnist_run, "--out", npz, "--overwrite", "--device", "gpu9"),
                    "unknown device 'gpu9'")


# --- reconstruction and interpolation -----------------------------------------------------------

def test_reconstructions(mnist_run, mnist_test, tmp_path):
    model, cfg = load_run(mnist_run)
    real, recon, index = inference.reconstructions_for_run(model, cfg, n=6, seed=1)  # data dir from the run
    assert real.shape == recon.shape == (6, 1, 28, 28) and len(set(index.tolist())) == 6
    assert torch.equal(real, as_float(mnist_test[index]))
    with torch.no_grad():
        expected = model.decode(model.encode(as_float(mnist_test[index])))
    assert torch.allclose(recon, expected, atol=1e-5) and 0 <= recon.min() and recon.max() <= 1
    rows = inference.paired_rows(real, recon, 4)  # Fig 4a: real row, reconstruction row, ...
    assert torch.equal(rows[:4], real[:4]) and torch.equal(rows[4:8], recon[:4])
    assert torch.equal(rows[8:10], real[4:]) and torch.equal(rows[10:], recon[4:])

    png = tmp_path / "recon.png"
    assert flexae("reconstruct", mnist_run, "--split", "test", "--out", png).returncode == 0
    with Image.open(png) as image:
        assert image.size == (10 * TILE + 2, 2 * TILE + 2)
    npz = tmp_path / "recon.npz"
    assert flexae("reconstruct", mnist_run, "-n", "3", "--out", npz).returncode == 0
    with np.load(npz) as saved:
        assert saved["images"].shape == saved["real"].shape == (3, 28, 28, 1)
        assert np.array_equal(saved["real"], mnist_test[saved["index"]].permute(0, 2, 3, 1).numpy())


def test_interpolation_rows(mnist_run, mnist_test, tmp_path):
    model, cfg = load_run(mnist_run)
    images, pairs = inference.interpolations_for_run(model, cfg, rows=3, columns=5, seed=2)
    assert images.shape == (15, 1, 28, 28) and pairs.shape == (3, 2) and len(set(pairs.flatten().tolist())) == 6
    grid = images.reshape(3, 5, 1, 28, 28)
    a, b = mnist_test[pairs[:, 0]], mnist_test[pairs[:, 1]]
    assert torch.allclose(grid[:, 0], inference.reconstruct(model, a), atol=1e-5)   # first: D(E(x_a))
    assert torch.allclose(grid[:, -1], inference.reconstruct(model, b), atol=1e-5)  # last: D(E(x_b))
    mean_code = (inference.encode(model, a) + inference.encode(model, b)) / 2
    assert torch.allclose(grid[:, 2], inference.decode(model, mean_code), atol=1e-5)  # middle: mean code
    assert 0 <= images.min() and images.max() <= 1
    assert inference.interpolation_weights(5).tolist() == [0, 0.25, 0.5, 0.75, 1]

    png = tmp_path / "interp.png"
    assert flexae("interpolate", mnist_run, "--rows", "3", "--columns", "5", "--out", png).returncode == 0
    with Image.open(png) as image:
        assert image.size == (5 * TILE + 2, 3 * TILE + 2)
    _one_line_error(flexae("interpolate", mnist_run, "--columns", "6", "--out", tmp_path / "i.png"),
                    "odd number of columns")


# --- bad input ----------------------------------------------------------------------------------

def _write_idx(folder: Path, side: int, n: int = 3) -> None:
    folder.mkdir(parents=True)
    images = struct.pack(">IIII", 2051, n, side, side) + bytes(n * side * side)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, n) + bytes(n)))


def test_bad_input_one_line_errors(mnist_run, tmp_path):
    out = tmp_path / "out.png"
    _one_line_error(flexae("sample", tmp_path, "--out", out), f"no checkpoint at {tmp_path / 'checkpoint.pt'}")
    _one_line_error(flexae("sample", tmp_path / "nope", "--out", out), "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(flexae("reconstruct", mnist_run, "--data-dir", empty, "--out", out),
                    "mnist test IDX files not found")
    truncated = tmp_path / "truncated"
    (truncated / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(SHARED_DATA / "mnist" / name, truncated / "mnist" / name)
    images = truncated / "mnist" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:5000])
    _one_line_error(flexae("interpolate", mnist_run, "--data-dir", truncated, "--out", out),
                    f"{images}: truncated or corrupt")
    wrong = tmp_path / "wrong"
    _write_idx(wrong / "mnist", side=32)
    _one_line_error(flexae("reconstruct", mnist_run, "--data-dir", wrong, "--out", out), "images are 32x32")
    _one_line_error(flexae("traverse", mnist_run, "--attribute", "Smiling", "--out", out),
                    "traverse needs CelebA attributes; this run was trained on mnist")
    assert not out.exists()


# --- CelebA attribute traversal on a format fixture ---------------------------------------------

@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory) -> tuple[Path, Path]:
    data_dir = tmp_path_factory.mktemp("celeba-data")
    _write_celeba(data_dir / "celeba")
    cfg = RunConfig(ModelConfig(name="vae", latent_dim=8), train=TrainConfig(dataset="celeba", device="cpu"))
    return _make_run(tmp_path_factory.mktemp("celeba-run"), cfg, data_dir), data_dir


def test_attribute_direction_and_traversal(celeba_run):
    run_dir, data_dir = celeba_run
    model, cfg = load_run(run_dir)
    result = inference.attribute_traversal_for_run(model, cfg, "Smiling", data_dir=data_dir, examples=2, side=3,
                                               strength=2.0)
    assert result.images.shape == (2 * 9, 3, 64, 64) and 0 <= result.images.min() and result.images.max() <= 1
    # The direction is mean code(train with Smiling) - mean code(train without), computed here directly.
    train = load_images("celeba", "train", data_dir)
    smiling = torch.tensor([CELEBA_VALUES[i][CELEBA_ATTRS.index("Smiling")] > 0
                            for i, p in enumerate(CELEBA_PARTITION) if p == 0])
    with torch.no_grad():
        codes = model.encode(as_float(train.images))
    assert torch.allclose(result.direction, codes[smiling].mean(0) - codes[~smiling].mean(0), atol=1e-5)
    # Test split: images 5 (no smile) and 6 (smile); negatives first, as the paper's (a), (b) | (c), (d).
    assert result.has_attribute.tolist() == [False, True]
    test = load_images("celeba", "test", data_dir)
    grids = result.images.reshape(2, 9, 3, 64, 64)
    centre = inference.reconstruct(model, test.images[result.examples])
    assert torch.allclose(grids[:, 4], centre, atol=1e-5)  # the centre tile is the reconstruction
    assert result.strengths.tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    z = inference.encode(model, test.images[result.examples[:1]]) + 2.0 * result.direction
    assert torch.allclose(grids[0, -1], inference.decode(model, z)[0], atol=1e-5)  # last tile: z + S d


def test_traverse_cli(celeba_run, tmp_path):
    run_dir, data_dir = celeba_run
    png = tmp_path / "smiling.png"
    proc = flexae("traverse", run_dir, "--attribute", "Smiling", "--examples", "2", "--side", "3",
                  "--data-dir", data_dir, "--out", png)
    assert proc.returncode == 0, proc.stderr
    side = 3 * (64 + 2) + 2
    with Image.open(png) as image:
        assert image.mode == "RGB" and image.size == (2 * side + 8, side)  # two grids, an 8 px gap
    _one_line_error(flexae("traverse", run_dir, "--attribute", "Smilling", "--data-dir", data_dir,
                           "--out", tmp_path / "t.png"),
                    "unknown attribute 'Smilling'; choose from Black_Hair, Male, Smiling")
    _one_line_error(flexae("traverse", run_dir, "--attribute", "Smiling", "--examples", "4",
                           "--data-dir", data_dir, "--out", tmp_path / "t.png"),
                    "asked for 2 test images without Smiling but only 1 are available")
    _one_line_error(flexae("traverse", run_dir, "--attribute", "Smiling", "--side", "4",
                           "--data-dir", data_dir, "--out", tmp_path / "t.png"), "odd side")
