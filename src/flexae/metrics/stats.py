"""Inception feature statistics (mean and covariance) saved to disk, so FID against a fixed
reference set (e.g. the 10k MNIST test images) needs no feature extraction for that set.

A statistics file is an `.npz` written with ``np.savez`` (no pickle) holding ``mu`` (d,) and
``sigma`` (d, d) in float64, ``n`` (number of images), ``weights`` (the Inception weights id,
file name and content hash), ``resize`` (the preprocessing mode) and ``precision`` (fp32 or bf16
features), plus ``format``. Files with only ``mu`` and ``sigma`` (pytorch-fid's ``--save-stats``
output) are read too; their ``n``, ``weights``, ``resize`` and ``precision`` are unknown, as is
the precision of flexae files written before it was recorded.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from flexae.errors import UserError
from flexae.finite import require_finite
from flexae.files import atomic_write, first_line
from flexae.metrics.frechet import RunningGaussian, gaussian_stats

STATS_FORMAT = "flexae-inception-stats-v1"
UNKNOWN = "unknown"  # weights or resize mode of a file that does not record them


@dataclass(frozen=True)
class FeatureStats:
    """Gaussian statistics of one feature set and where the features came from."""

    mu: np.ndarray         # (d,) float64 mean
    sigma: np.ndarray      # (d, d) float64 unbiased covariance
    n: int | None          # number of images; None when a foreign file does not say
    weights: str           # Inception weights id ("default_1.pt:<sha256 prefix>"), or "unknown"
    resize: str            # preprocessing mode ("pytorch-fid" or "tf"), or "unknown"
    precision: str = UNKNOWN  # of the features: "fp32" or "bf16", or "unknown"

    @classmethod
    def from_features(cls, features: np.ndarray, weights: str, resize: str,
                      precision: str = UNKNOWN) -> FeatureStats:
        """Statistics of features (N, d); float64 throughout, as FID from features computes them."""
        features = np.asarray(features, dtype=np.float64)
        mu, sigma = gaussian_stats(features)
        return cls(mu, sigma, len(features), weights, resize, precision)

    @classmethod
    def from_feature_chunks(cls, chunks: Iterable[np.ndarray], weights: str, resize: str,
                            precision: str = UNKNOWN) -> FeatureStats:
        """As :meth:`from_features` of the chunks' rows stacked, holding one chunk at a time."""
        running = RunningGaussian()
        for chunk in chunks:
            running.add(chunk)
        mu, sigma = running.stats()
        return cls(mu, sigma, running.n, weights, resize, precision)


def save_stats(path: str | os.PathLike[str], stats: FeatureStats) -> None:
    """Write ``stats`` to ``path`` (.npz) atomically."""
    path = Path(path)
    if path.suffix.lower() != ".npz":  # np.savez would append .npz, and the input loader dispatches on it
        raise UserError(f"{path}: statistics files must end in .npz")
    if stats.n is None:
        raise ValueError("statistics to save must record their number of images")
    fields = dict(mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n), weights=np.str_(stats.weights),
                  resize=np.str_(stats.resize), precision=np.str_(stats.precision),
                  format=np.str_(STATS_FORMAT))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: np.savez(handle, **fields))


def is_stats_file(path: str | os.PathLike[str]) -> bool:
    """True for an .npz holding ``mu`` and ``sigma`` (an image .npz holds ``images`` or one array)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {"mu", "sigma"} <= set(archive.files)
    except Exception:  # not a zip, damaged, ...: let the image loader report it
        return False


def _check_covariance(mu: np.ndarray, sigma: np.ndarray, path: Path) -> None:
    """sigma (d, d), d >= 1, is a covariance: symmetric with a non-negative diagonal (an empty or
    negated one gives FID 0.0 or a complex square root, not an error)."""
    if len(mu) == 0:
        raise UserError(f"{path}: mu and sigma are empty (0 features); compute the statistics again")
    scale = max(float(np.abs(sigma).max()), 1e-300)
    if (np.diag(sigma) < 0).any() or float(np.abs(sigma - sigma.T).max()) > 1e-6 * scale:
        raise UserError(f"{path}: sigma is not a covariance matrix (not symmetric, or a negative variance); "
                        f"compute the statistics again")


def load_stats(path: str | os.PathLike[str]) -> FeatureStats:
    """Read a statistics file; a damaged or inconsistent one is a one-line UserError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle user files
            fields = {key: archive[key] for key in archive.files}
    except Exception as exc:  # BadZipFile, zlib.error, ValueError (object arrays), ...
        raise UserError(f"{path}: not a readable statistics file ({first_line(exc)})") from None
    if "mu" not in fields or "sigma" not in fields:
        raise UserError(f"{path}: not a statistics file (it lacks mu or sigma)")
    mu, sigma = fields["mu"], fields["sigma"]
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{path}: mu {mu.shape} and sigma {sigma.shape} should be (d,) and (d, d)")
    if not (np.issubdtype(mu.dtype, np.floating) and np.issubdtype(sigma.dtype, np.floating)):
        raise UserError(f"{path}: mu and sigma must be float arrays, got {mu.dtype} and {sigma.dtype}")
    require_finite({"mu": mu, "sigma": sigma}, path, "these statistics cannot be used (compute them again)")
    _check_covariance(mu, sigma, path)
    n = int(fields["n"]) if "n" in fields else None
    if n is not None and n < 2:
        raise UserError(f"{path}: statistics of {n} image(s); a covariance needs at least 2 (compute them again)")
    return FeatureStats(mu.astype(np.float64), sigma.astype(np.float64), n,
                        str(fields.get("weights", UNKNOWN)), str(fields.get("resize", UNKNOWN)),
                        str(fields.get("precision", UNKNOWN)))


def common_provenance(a: FeatureStats, b: FeatureStats, warn: bool = True) -> tuple[str, str]:
    """(weights, resize) shared by two statistics; UserError when they differ.

    FID between features of different networks or preprocessing is meaningless, and the mix-up is
    easy to make with a saved reference file. An "unknown" side (a foreign file) is accepted with
    a warning, taking the other side's value. Features of other precisions (fp32 vs bf16) are
    accepted with a warning: their FIDs differ by little (docs/metrics.md), but not by nothing.
    """
    if warn and UNKNOWN not in (a.precision, b.precision) and a.precision != b.precision:
        warnings.warn(f"A and B features were computed in different precisions ({a.precision} vs "
                      f"{b.precision}); FID moves slightly (docs/metrics.md)", stacklevel=3)
    out = []
    for field in ("weights", "resize"):
        left, right = getattr(a, field), getattr(b, field)
        if UNKNOWN in (left, right):
            if left != right and warn:
                known = left if right == UNKNOWN else right
                warnings.warn(f"one statistics file does not record its {field}; assuming {known}", stacklevel=3)
            out.append(right if left == UNKNOWN else left)
        elif left != right:
            option = "--mode" if field == "resize" else "--weights"
            raise UserError(f"A and B were computed with different Inception {field} ({left} vs {right}); "
                            f"recompute the statistics with the same settings ({option})")
        else:
            out.append(left)
    return out[0], out[1]
