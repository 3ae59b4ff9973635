"""Fréchet distance between two Gaussians fitted to feature sets.

Used on raw 128-D vectors for the synthetic experiments (paper Fig 2/3, "FD") and on Inception
pool3 features for FID:

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

The trace term is computed from eigenvalues (:func:`trace_sqrt_product`): with S1 = F F^T
(Cholesky), S1 S2 has the eigenvalues of the symmetric positive semi-definite F^T S2 F, which are
real and >= 0, and tr sqrt(S1 S2) is the sum of their square roots. A Cholesky factorisation and a
symmetric eigenvalue solve are much faster than scipy's general matrix square root (``sqrtm``, a
Schur decomposition; timings in docs/metrics.md) and need none of its safeguards.
:func:`frechet_distance_sqrtm` keeps pytorch-fid's ``sqrtm`` computation as the reference: if the
square root is not finite, 1e-6 I is added to both covariances; a negligible imaginary part is
dropped and a large one raises.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of features (N, d), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, d), got {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to estimate a covariance, got {features.shape[0]}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return features.mean(axis=0), np.cov(features, rowvar=False)


class RunningGaussian:
    """Mean and unbiased covariance of features added chunk by chunk, in float64: memory holds
    (d, d) sums, not the N x d features (FID of 50k images keeps 32 MB, not 0.8 GB of float64).

    Sums are taken around the first chunk's mean (a shift that leaves the covariance unchanged and
    keeps the one-pass formula free of cancellation); equal to `gaussian_stats` of all the rows up
    to round-off (tests/test_one_reader.py)."""

    def __init__(self) -> None:
        self.n, self.shift, self.total, self.products = 0, None, None, None

    def add(self, features: np.ndarray) -> None:
        """Rows (n, d) of features."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise ValueError(f"features must have shape (N, d), got {features.shape}")
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN or infinite values")
        if len(features) == 0:
            return
        if self.shift is None:
            self.shift = features.mean(axis=0)
            self.total = np.zeros_like(self.shift)
            self.products = np.zeros((len(self.shift), len(self.shift)))
        centred = features - self.shift   # (n, d)
        self.total += centred.sum(axis=0)
        self.products += centred.T @ centred  # (d, d)
        self.n += len(features)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (d,), unbiased covariance (d, d)) of every row added."""
        if self.n < 2:
            raise ValueError(f"need at least 2 samples to estimate a covariance, got {self.n}")
        offset = self.total / self.n  # mean - shift
        sigma = (self.products - self.n * np.outer(offset, offset)) / (self.n - 1)
        return self.shift + offset, sigma


def _factor(sigma: np.ndarray) -> np.ndarray:
    """F with F F^T = sigma (symmetric PSD): Cholesky, or from eigenvalues when sigma is singular."""
    try:
        return np.linalg.cholesky(sigma)  # fast, and exists whenever sigma is positive definite
    except np.linalg.LinAlgError:  # singular, e.g. fewer samples than dimensions
        w, v = np.linalg.eigh(sigma)
        return v * np.sqrt(np.clip(w, 0.0, None))  # round-off can make zero eigenvalues negative


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(S1 S2)) of symmetric positive semi-definite S1, S2, from eigenvalues.

    With S1 = F F^T, S1 S2 = F (F^T S2) is similar to F^T S2 F on its nonzero eigenvalues, and
    F^T S2 F is symmetric PSD: its eigenvalues are real and >= 0, and tr sqrt(S1 S2) is the sum of
    their square roots. Eigenvalues that round-off pushes below 0 are taken as 0.
    """
    factor = _factor(sigma1)
    inner = factor.T @ sigma2 @ factor
    inner = (inner + inner.T) / 2  # symmetric up to round-off; eigvalsh reads only one triangle
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum())


def trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """tr(sqrt(S1 S2)) through scipy's ``sqrtm``, with pytorch-fid's safeguards (the reference)."""
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in the matrix square root")
        covmean = covmean.real
    return float(np.trace(covmean))


def _checked(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, ...]:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}")
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)); symmetric in its two arguments."""
    mu1, sigma1, mu2, sigma2 = _checked(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_sqrtm(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                           eps: float = 1e-6) -> float:
    """As :func:`frechet_distance`, with the trace term from ``scipy.linalg.sqrtm`` (pytorch-fid's way)."""
    mu1, sigma1, mu2, sigma2 = _checked(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * trace_sqrt_product_sqrtm(sigma1, sigma2, eps))


def frechet_distance_from_samples(generated: np.ndarray, real: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sample sets (N, d) and (M, d)."""
    return frechet_distance(*gaussian_stats(generated), *gaussian_stats(real))
