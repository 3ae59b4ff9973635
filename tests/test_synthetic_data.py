import numpy as np
import pytest

from flexae.data.synthetic import COMPONENTS, NUM_TEST, NUM_TRAIN, make_synthetic


@pytest.fixture(scope="module")
def data5():
    return make_synthetic("synthetic-5d", seed=0)


def test_sizes_and_range(data5):
    assert data5.train.x.shape == (NUM_TRAIN, 128) == (15_000, 128)
    assert data5.test.x.shape == (NUM_TEST, 128) == (10_000, 128)
    assert data5.train.latents.shape == (15_000, 5)
    assert np.abs(data5.train.x).max() <= 1.0  # outer tanh
    assert data5.train.x.dtype == np.float32


def test_component_means_recoverable_from_latents(data5):
    for k, (mean, var) in enumerate(COMPONENTS):
        z = data5.train.latents[data5.train.labels == k]
        assert len(z) > 2000  # ~2500 expected with equal weights
        np.testing.assert_allclose(z.mean(0), mean, atol=0.1)
        np.testing.assert_allclose(z.var(0).mean(), var, rtol=0.1)


def test_2d_uses_first_two_coordinates():
    d = make_synthetic("synthetic-2d", seed=0)
    assert d.train.latents.shape == (15_000, 2)
    for k, (mean, _) in enumerate(COMPONENTS):
        np.testing.assert_allclose(d.train.latents[d.train.labels == k].mean(0), mean[:2], atol=0.1)


def test_deterministic_from_seed(data5):
    again = make_synthetic("synthetic-5d", seed=0)
    np.testing.assert_array_equal(again.train.x, data5.train.x)
    np.testing.assert_array_equal(again.test.labels, data5.test.labels)
    other = make_synthetic("synthetic-5d", seed=1)
    assert not np.allclose(other.train.x, data5.train.x)


def test_data_is_a_function_of_the_latents(data5):
    # Train and test share one map f: nearby latents give nearby data, across splits.
    i = np.argmin(np.linalg.norm(data5.test.latents - data5.train.latents[0], axis=1))
    far = np.argmax(np.linalg.norm(data5.test.latents - data5.train.latents[0], axis=1))
    near_gap = np.linalg.norm(data5.test.x[i] - data5.train.x[0])
    far_gap = np.linalg.norm(data5.test.x[far] - data5.train.x[0])
    assert near_gap < far_gap / 3
