"""PRD (Sajjadi et al. 2018): the curve against a direct computation, and toy distributions."""

import numpy as np
import pytest

from flexae.errors import UserError
from flexae.metrics.prd import max_f_beta, prd_curve, prd_from_features


def test_curve_matches_direct_definition():
    rng = np.random.default_rng(0)
    p_gen, p_real = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    precision, recall = prd_curve(p_gen, p_real, num_angles=11)
    for j, angle in enumerate(np.linspace(1e-10, np.pi / 2 - 1e-10, 11)):
        t = np.tan(angle)
        alpha = sum(min(p_real[i] * t, p_gen[i]) for i in range(6))
        assert precision[j] == pytest.approx(min(alpha, 1.0), abs=1e-12)
        assert recall[j] == pytest.approx(min(alpha / t, 1.0), abs=1e-12)


def test_curve_extremes_for_partial_support():
    # Generated mass only on 2 of 3 equally likely real bins: every generated sample is realistic
    # (max precision 1) but only 2/3 of the real distribution is covered (max recall 2/3).
    precision, recall = prd_curve(np.array([0.5, 0.5, 0.0]), np.full(3, 1 / 3))
    assert precision.max() == pytest.approx(1.0, abs=1e-6)
    assert recall.max() == pytest.approx(2 / 3, abs=1e-6)
    assert max_f_beta(precision, recall, 8) < max_f_beta(precision, recall, 1 / 8)


def modes(n: int, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centres = np.eye(32)[:10] * 20.0  # ten well separated modes in 32-d
    return centres[rng.choice(which, size=n)] + rng.normal(size=(n, 32))


def test_generated_covering_half_the_modes_has_low_recall_and_swapping_swaps():
    rng = np.random.default_rng(1)
    real = modes(2000, np.arange(10), rng)
    half = modes(2000, np.arange(5), rng)
    result = prd_from_features(half, real)
    assert result.precision > 0.9
    assert result.recall < 0.7
    assert result.recall < result.precision - 0.25
    swapped = prd_from_features(real, half)
    assert swapped.precision == pytest.approx(result.recall, abs=0.05)
    assert swapped.recall == pytest.approx(result.precision, abs=0.05)


def test_identical_sets_have_precision_and_recall_one():
    real = modes(1000, np.arange(10), np.random.default_rng(2))
    result = prd_from_features(real, real.copy())
    assert result.precision > 0.99 and result.recall > 0.99
    assert result.curve_precision.shape == result.curve_recall.shape == (1001,)
    assert result.curve_precision.min() >= 0 and result.curve_recall.max() <= 1


def test_unequal_sizes_are_refused():
    x = np.random.default_rng(3).normal(size=(100, 8))
    with pytest.raises(UserError, match="equally many") as info:
        prd_from_features(x, x[:50])
    assert "\n" not in str(info.value)
