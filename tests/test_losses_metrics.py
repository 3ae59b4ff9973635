import numpy as np
import pytest
import torch

from flexae import losses
from flexae.metrics.frechet import frechet_distance, frechet_distance_from_samples, gaussian_stats
from flexae.metrics.wasserstein import wasserstein1_exact


def test_gradient_penalty_zero_for_unit_gradient_linear_critic():
    w = torch.tensor([[0.6], [0.8]])  # ||w|| = 1: the gradient of x -> x w has norm 1 everywhere
    critic = lambda x: x @ w
    gp = losses.gradient_penalty(critic, torch.randn(64, 2), torch.randn(64, 2))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_known_value_for_scaled_critic():
    w = torch.tensor([[3.0], [4.0]])  # gradient norm 5 -> penalty (5 - 1)^2 = 16
    gp = losses.gradient_penalty(lambda x: x @ w, torch.randn(32, 2), torch.randn(32, 2))
    assert gp.item() == pytest.approx(16.0, rel=1e-6)


def test_gradient_penalty_quadratic_critic_matches_closed_form():
    # C(x) = 0.5 ||x||^2 has gradient x; with real == fake == a, the penalty is mean((||a|| - 1)^2).
    a = torch.randn(16, 3)
    gp = losses.gradient_penalty(lambda x: 0.5 * x.pow(2).sum(1, keepdim=True), a, a.clone())
    expected = (a.norm(dim=1) - 1).pow(2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_is_differentiable_wrt_critic_parameters():
    critic = torch.nn.Linear(2, 1)
    gp = losses.gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2))
    gp.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_reconstruction_loss_is_per_sample_sum():
    x = torch.zeros(4, 1, 2, 2)
    assert losses.reconstruction_loss(torch.ones_like(x), x).item() == pytest.approx(4.0)


def test_kl_of_standard_normal_is_zero_and_positive_otherwise():
    mu, logvar = torch.zeros(5, 3), torch.zeros(5, 3)
    assert losses.kl_standard_normal(mu, logvar).item() == pytest.approx(0.0)
    assert losses.kl_standard_normal(mu + 1, logvar).item() == pytest.approx(1.5)  # 0.5 * 3 * 1


def test_frechet_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(2000, 8))
    assert frechet_distance_from_samples(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_of_shifted_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.zeros(4), np.array([1.0, 2.0, 0.0, -1.0])
    s1, s2 = np.diag([1.0, 2.0, 3.0, 4.0]), np.diag([4.0, 2.0, 1.0, 1.0])
    # Diagonal covariances: FD = ||mu1-mu2||^2 + sum (sqrt(a) - sqrt(b))^2.
    expected = 6.0 + sum((np.sqrt(a) - np.sqrt(b)) ** 2 for a, b in [(1, 4), (2, 2), (3, 1), (4, 1)])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # ... and estimated from samples of the two Gaussians.
    a = rng.multivariate_normal(mu1, s1, size=200_000)
    b = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance_from_samples(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        gaussian_stats(np.full((5, 3), np.nan))


def test_wasserstein_exact_on_known_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 3))
    assert wasserstein1_exact(a, a[rng.permutation(300)]) == pytest.approx(0.0, abs=1e-12)
    shift = np.array([3.0, 4.0, 0.0])  # translating every point: W1 = |shift| = 5
    assert wasserstein1_exact(a, a + shift) == pytest.approx(5.0, rel=1e-9)
    # 1-D: W1 is the mean gap between sorted samples.
    x, y = rng.normal(size=(500, 1)), rng.normal(2.0, 1.0, size=(500, 1))
    assert wasserstein1_exact(x, y) == pytest.approx(np.abs(np.sort(x[:, 0]) - np.sort(y[:, 0])).mean())
