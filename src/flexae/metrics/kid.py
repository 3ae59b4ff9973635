"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the squared maximum mean discrepancy (MMD^2) between generated and real Inception features
under the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3, d the feature size. Unlike FID it
has an unbiased estimator, so values from different sample sizes are comparable:

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n).

As in the paper's code (and torch-fidelity, clean-fid), the estimate is averaged over random
subsets: ``num_subsets`` pairs of ``subset_size`` generated and real samples, each drawn without
replacement from a generator seeded with ``seed``; the mean and the standard deviation over
subsets are reported. The estimate can be slightly negative when the sets match.

A subset larger than either set is refused, as torch-fidelity does (`kid_subset_size` larger than a
feature set raises there): shrinking it silently to the set size makes every subset the whole set,
so the reported std is ~1e-16 and says nothing of the estimate's spread. Ask for a smaller
``subset_size`` explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flexae.errors import UserError
from flexae.metrics.fid import ArrayLike, check_feature_pair
from flexae.metrics.inception import InceptionExtractor


@dataclass(frozen=True)
class KIDResult:
    mean: float         # MMD^2 averaged over the subsets: the KID
    std: float          # standard deviation of the subset estimates
    subsets: int        # number of subsets averaged
    subset_size: int    # samples per subset and set (at most the smaller set's size)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x_i, y_j) = (x_i . y_j / d + 1)^3 for rows of x (m, d) and y (n, d): (m, n)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of samples x (m, d) and y (n, d) under :func:`polynomial_kernel`; m, n >= 2."""
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    # The diagonal k(x_i, x_i) compares a sample with itself: leaving it out removes the bias.
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * polynomial_kernel(x, y).mean())


def kid_from_features(generated: ArrayLike, real: ArrayLike, num_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """KID of generated features (N, d) against real features (M, d), averaged over subsets."""
    if num_subsets < 1 or subset_size < 2:
        raise UserError(f"KID needs at least 1 subset of at least 2 samples, got {num_subsets} of {subset_size}")
    gen, ref = check_feature_pair(generated, real)  # float64: the kernel cubes dot products
    if subset_size > min(len(gen), len(ref)):
        raise UserError(f"KID subset size {subset_size} exceeds the sets ({len(gen)} generated, {len(ref)} real); "
                        f"ask for a subset size of at most {min(len(gen), len(ref))} (--subset-size)")
    size = subset_size
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = gen[rng.choice(len(gen), size, replace=False)]
        y = ref[rng.choice(len(ref), size, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return KIDResult(float(values.mean()), float(values.std()), num_subsets, size)


def kid(generated_images: torch.Tensor, real_images: torch.Tensor, extractor: InceptionExtractor,
        num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """KID between images (N, C, H, W) and (M, C, H, W) in [0, 1] (or uint8); real features are cached."""
    return kid_from_features(extractor(generated_images, cache=False), extractor(real_images),
                             num_subsets, subset_size, seed)
