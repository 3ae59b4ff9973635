"""Synthetic data sets of the paper's supplement 7.1 (Fig 2: `synthetic-5d`, Fig 3: `synthetic-2d`).

Recipe, as written in the supplement:
1. True latents from a 6-component Gaussian mixture in R^5 (or R^2: the first two coordinates of
   each mean). Components have isotropic covariances s^2 I with the s^2 listed in `COMPONENTS`;
   the supplement gives no weights, so components are equally likely (labels drawn uniformly).
2. A 3-layer MLP of width 128 maps them to R^128 with non-linearities tanh, exp, tanh. The weights
   and biases of layers 1, 2, 3 are drawn from N(0, 0.05), N(0, 0.2), N(0, 0.1); we read the second
   argument as a *standard deviation* (the supplement does not say which).
3. 15,000 training and 10,000 test points.

Everything is drawn from one NumPy generator seeded by `seed`, so a seed fixes the map f and the
points. The true latents and component labels are kept for plotting (Fig 3 panel a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (mean in R^5, isotropic variance) per component, supplement 7.1.
COMPONENTS: tuple[tuple[tuple[float, ...], float], ...] = (
    ((0.0, 0.0, 0.0, 0.0, 0.0), 1.0),
    ((5.0, 5.0, 5.0, 5.0, 5.0), 1.0),
    ((-5.0, 5.0, 3.0, 4.5, -6.0), 0.5),
    ((5.0, -1.5, -6.5, 3.0, 1.0), 0.95),
    ((-2.0, -7.0, 9.0, -1.5, -4.5), 0.5),
    ((-4.0, -3.0, -5.5, 2.0, 4.0), 0.75),
)
DATA_DIM = 128
LAYER_STDS = (0.05, 0.2, 0.1)  # std of weights and biases of layers 1, 2, 3
NUM_TRAIN, NUM_TEST = 15_000, 10_000
SYNTHETIC_LATENT_DIMS = {"synthetic-5d": 5, "synthetic-2d": 2}


@dataclass(frozen=True)
class SyntheticSplit:
    """One split: data x (N, 128) float32 in [-1, 1], true latents (N, n), component labels (N,)."""

    x: np.ndarray
    latents: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class SyntheticDataset:
    name: str
    train: SyntheticSplit
    test: SyntheticSplit
    means: np.ndarray       # (6, n) component means of the true latent mixture
    variances: np.ndarray   # (6,) isotropic variances


def _random_map(rng: np.random.Generator, in_dim: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weights (in, out) and biases (out,) of the three layers of f: R^n -> R^128."""
    dims = (in_dim, DATA_DIM, DATA_DIM, DATA_DIM)
    return [(rng.normal(0.0, std, size=(dims[i], dims[i + 1])), rng.normal(0.0, std, size=dims[i + 1]))
            for i, std in enumerate(LAYER_STDS)]


def apply_map(layers: list[tuple[np.ndarray, np.ndarray]], z: np.ndarray) -> np.ndarray:
    """f(z) = tanh(W3 exp(W2 tanh(W1 z + b1) + b2) + b3), row-wise; (N, n) -> (N, 128)."""
    h = z
    for (w, b), act in zip(layers, (np.tanh, np.exp, np.tanh)):
        h = act(h @ w + b)
    return h


def _sample_latents(rng: np.random.Generator, n: int, means: np.ndarray, variances: np.ndarray):
    labels = rng.integers(0, len(means), size=n)
    noise = rng.standard_normal((n, means.shape[1]))
    return means[labels] + noise * np.sqrt(variances[labels])[:, None], labels


def make_synthetic(name: str = "synthetic-5d", seed: int = 0,
                   num_train: int = NUM_TRAIN, num_test: int = NUM_TEST) -> SyntheticDataset:
    """Build `synthetic-5d` or `synthetic-2d` deterministically from `seed`."""
    if name not in SYNTHETIC_LATENT_DIMS:
        raise ValueError(f"unknown synthetic data set {name!r}; choose from {sorted(SYNTHETIC_LATENT_DIMS)}")
    true_dim = SYNTHETIC_LATENT_DIMS[name]
    means = np.array([m[:true_dim] for m, _ in COMPONENTS])
    variances = np.array([v for _, v in COMPONENTS])
    rng = np.random.default_rng(seed)
    layers = _random_map(rng, true_dim)
    splits = []
    for n in (num_train, num_test):
        z, labels = _sample_latents(rng, n, means, variances)
        x = apply_map(layers, z)
        splits.append(SyntheticSplit(x.astype(np.float32), z.astype(np.float32), labels))
    return SyntheticDataset(name, splits[0], splits[1], means, variances)
