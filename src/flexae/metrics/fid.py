"""Fréchet Inception Distance (Heusel et al. 2017).

FID = ||mu_g - mu_r||^2 + tr(S_g) + tr(S_r) - 2 tr(sqrt(S_g S_r)) between Gaussians fitted to the
Inception pool3 features of generated and real images, computed by
:mod:`flexae.metrics.frechet` (the trace term from eigenvalues; pytorch-fid's ``sqrtm`` route is
kept there as the reference). Either side can be a saved :class:`~flexae.metrics.stats.FeatureStats`
(:func:`fid_from_stats`). Argument order is (generated, real) everywhere, although FID itself is
symmetric.

Paper protocol (Table 1): generation FID = 10k generated images vs 10k test images;
reconstruction FID = reconstructions of 10k test images vs the same 10k test images.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from flexae.errors import UserError
from flexae.metrics.frechet import frechet_distance, gaussian_stats
from flexae.metrics.inception import InceptionExtractor
from flexae.metrics.stats import FeatureStats, common_provenance

ArrayLike = np.ndarray | torch.Tensor


def check_feature_pair(generated: ArrayLike, real: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 arrays (N, d), (M, d) with equal d, N, M >= 2 and finite values; else UserError."""
    gen, ref = (np.asarray(torch.as_tensor(x).double().cpu()) for x in (generated, real))
    for name, x in (("generated", gen), ("real", ref)):
        if x.ndim != 2:
            raise UserError(f"{name} features must have shape (N, d), got {x.shape}")
        if x.shape[0] < 2:
            raise UserError(f"{name} set has {x.shape[0]} sample(s); need at least 2")
        if not np.isfinite(x).all():
            raise UserError(f"{name} features contain NaN or infinite values")
    if gen.shape[1] != ref.shape[1]:
        raise UserError(f"feature sizes differ: generated {gen.shape[1]}, real {ref.shape[1]}")
    return gen, ref


def fid_from_features(generated: ArrayLike, real: ArrayLike) -> float:
    """FID between features (N, d) of generated images and (M, d) of real images.

    With fewer samples than dimensions the covariances are singular and FID is biased upward
    (a warning says so); the paper protocol uses 10k >= 2048. The result is clamped at 0: FID is a
    squared distance, and round-off can leave e.g. -1e-14 for identical sets.
    """
    gen, ref = check_feature_pair(generated, real)
    return _fid(*gaussian_stats(gen), *gaussian_stats(ref), smallest=min(len(gen), len(ref)))


def fid_from_stats(generated: FeatureStats, real: FeatureStats) -> float:
    """FID between two saved or computed :class:`FeatureStats`; the same number as
    :func:`fid_from_features` on the features they came from. UserError if their Inception weights
    or preprocessing differ."""
    common_provenance(generated, real)
    if generated.mu.shape != real.mu.shape:
        raise UserError(f"feature sizes differ: generated {len(generated.mu)}, real {len(real.mu)}")
    known = [n for n in (generated.n, real.n) if n is not None]
    return _fid(generated.mu, generated.sigma, real.mu, real.sigma, smallest=min(known, default=None))


def fid_bias_warning(n: int, dim: int = 2048) -> str:
    """The one-line warning for an FID from n < dim samples (printed by the CLI, shown in reports)."""
    return (f"FID from {n} samples of {dim}-d features: covariance is rank deficient "
            f"and the value biased; use at least as many samples as dimensions ({dim})")


def _fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
         smallest: int | None) -> float:
    """Clamped FID of checked statistics; warns when ``smallest`` (sample count) < dimensions."""
    dim = len(mu1)
    if smallest is not None and smallest < dim:
        warnings.warn(fid_bias_warning(smallest, dim), stacklevel=3)
    return max(frechet_distance(mu1, sigma1, mu2, sigma2), 0.0)  # negatives are round-off only


def fid(generated_images: torch.Tensor, real_images: torch.Tensor, extractor: InceptionExtractor,
        cache_generated: bool = False) -> float:
    """FID between images (N, C, H, W) and (M, C, H, W) in [0, 1] (or uint8).

    Real-image features go through the extractor's disk cache; generated ones only when
    ``cache_generated`` (fresh samples are rarely seen twice).
    """
    return fid_from_features(extractor(generated_images, cache=cache_generated), extractor(real_images))
