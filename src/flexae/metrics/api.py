"""The image metrics as Python functions, taking what `flexae metrics` takes: `from flexae import
fid, kid, prd`.

Each input is an image folder, a `.npy` / `.npz` image array, a statistics `.npz` (FID only), a
data set split "NAME:SPLIT" (flexae.metrics.io.load_input), a numpy array (N, H, W[, C]) uint8 or
float in [0, 1], or a torch tensor (N, C, H, W) in [0, 1] (or uint8). The result is the dict
`flexae metrics` prints, with the Inception preprocessing named `mode` (as the `--mode` option);
FID below 2048 samples warns, naming KID; `fid(..., ci=B)` adds a bootstrap 95% interval.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import numpy as np
import torch

from flexae.errors import UserError
from flexae.metrics.stats import FeatureStats

FID_DIM = 2048  # Inception pool3 features: FID's covariance is rank deficient below this many samples


def _images(x: Any, data_dir: str | os.PathLike[str] | None, stats_ok: bool) -> torch.Tensor | FeatureStats:
    from flexae.data import as_float
    from flexae.metrics.io import images_to_tensor, load_input
    if isinstance(x, FeatureStats):
        loaded: Any = x
    elif isinstance(x, (str, os.PathLike)):
        loaded = load_input(str(x), data_dir)
    elif isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] in (1, 3):  # (N, C, H, W)
        loaded = as_float(x) if x.dtype == torch.uint8 else x.detach().float().cpu()
        if loaded.shape[0] < 2 or not bool(((loaded >= 0) & (loaded <= 1)).all()):
            raise UserError(f"images (N, C, H, W) must be at least 2, in [0, 1], got shape {tuple(x.shape)}")
    elif isinstance(x, (np.ndarray, torch.Tensor)):
        loaded = images_to_tensor(np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x), "array")
    else:
        raise UserError(f"a metric input is a path, a data set NAME:SPLIT, an array or a tensor, got {type(x).__name__}")
    if isinstance(loaded, FeatureStats) and not stats_ok:
        raise UserError("a statistics file holds only a mean and covariance; this metric needs the images")
    return loaded


def _extractor(weights: str | None, mode: str, device: str, batch_size: int, precision: str, progress: bool):
    from flexae.metrics.inception import load_extractor
    return load_extractor(weights, device=device, batch_size=batch_size, precision=precision,  # type: ignore[arg-type]
                          progress=progress, mode=mode)  # type: ignore[arg-type]


def _provenance(n_a: int | None, n_b: int | None, weights: str, mode: str, precision: str) -> dict[str, Any]:
    return {"n_a": n_a, "n_b": n_b, "weights": weights, "mode": mode, "inception_precision": precision}


def fid(a: Any, b: Any, *, ci: int = 0, seed: int = 0, data_dir: str | None = None, weights: str | None = None,
        mode: str = "pytorch-fid", device: str = "auto", batch_size: int = 50, precision: str = "auto",
        progress: bool = False, make_extractor: Callable[[], Any] | None = None) -> dict[str, Any]:
    """FID of `a` (generated) against `b` (real); either may be a statistics file. `ci` > 0: a 95%
    bootstrap interval ("ci95") from that many resamplings (with replacement) of both feature sets.
    `make_extractor` (the CLI's) replaces the network settings."""
    from flexae.metrics.fid import fid_bias_warning, fid_from_features, fid_from_stats
    from flexae.metrics.stats import common_provenance
    if ci < 0:
        raise UserError(f"ci must be >= 0 (bootstrap resamplings), got {ci}")
    inputs = [_images(x, data_dir, stats_ok=not ci) for x in (a, b)]
    features: list[np.ndarray | None] = [None, None]
    stats = list(inputs)
    if not all(isinstance(x, FeatureStats) for x in inputs):
        extractor = (make_extractor or (lambda: _extractor(weights, mode, device, batch_size, precision, progress)))()
        for i, x in enumerate(inputs):
            if not isinstance(x, FeatureStats):
                features[i] = extractor(x).numpy().astype(np.float64)
                stats[i] = FeatureStats.from_features(features[i], extractor.weights_id, extractor.resize,
                                                      extractor.precision)
    smallest = min(s.n for s in stats if s.n is not None) if any(s.n is not None for s in stats) else None
    if smallest is not None and smallest < FID_DIM:
        warnings.warn(fid_bias_warning(smallest) + "; KID (flexae.kid) is unbiased at any n", stacklevel=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="FID from")  # warned above, naming KID
        value = fid_from_stats(stats[0], stats[1])
    used_weights, used_mode = common_provenance(stats[0], stats[1], warn=False)
    result = {"fid": value, **_provenance(stats[0].n, stats[1].n, used_weights, used_mode, stats[0].precision)}
    if ci:
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bias warning, once per resampling
            draws = [fid_from_features(fa[rng.integers(0, len(fa), len(fa))], fb[rng.integers(0, len(fb), len(fb))])
                     for fa, fb in [features] * ci]  # type: ignore[misc]
        result.update({"ci95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))],
                       "bootstrap": ci, "bootstrap_seed": seed})
    return result


def kid(a: Any, b: Any, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0, data_dir: str | None = None,
        weights: str | None = None, mode: str = "pytorch-fid", device: str = "auto", batch_size: int = 50,
        precision: str = "auto", progress: bool = False) -> dict[str, Any]:
    """KID (unbiased MMD^2, cubic kernel) of `a` (generated) against `b` (real), averaged over subsets
    of `subset_size` (at most the smaller set)."""
    from flexae.metrics.kid import kid_from_features
    images_a, images_b = (_images(x, data_dir, stats_ok=False) for x in (a, b))
    if subset_size > min(len(images_a), len(images_b)):
        raise UserError(f"KID subset size {subset_size} exceeds the sets ({len(images_a)} and {len(images_b)}); "
                        f"ask for subset_size={min(len(images_a), len(images_b))} or less")
    extractor = _extractor(weights, mode, device, batch_size, precision, progress)
    result = kid_from_features(extractor(images_a), extractor(images_b), subsets, subset_size, seed)
    return {"kid": result.mean, "kid_std": result.std, "subsets": result.subsets, "subset_size": result.subset_size,
            **_provenance(len(images_a), len(images_b), extractor.weights_id, extractor.resize, extractor.precision)}


def prd(a: Any, b: Any, *, runs: int = 10, seed: int = 0, data_dir: str | None = None, weights: str | None = None,
        mode: str = "pytorch-fid", device: str = "auto", batch_size: int = 50, precision: str = "auto",
        progress: bool = False) -> dict[str, Any]:
    """Precision / recall (Sajjadi et al. 2018: max F_1/8, max F_8) of `a` against `b`, equal sizes."""
    from flexae.metrics.prd import prd_from_features
    images_a, images_b = (_images(x, data_dir, stats_ok=False) for x in (a, b))
    if len(images_a) != len(images_b):
        raise UserError(f"precision/recall needs sets of equal size, got {len(images_a)} and {len(images_b)}")
    extractor = _extractor(weights, mode, device, batch_size, precision, progress)
    result = prd_from_features(extractor(images_a), extractor(images_b), num_runs=runs, seed=seed)
    return {"precision": result.precision, "recall": result.recall,
            **_provenance(len(images_a), len(images_b), extractor.weights_id, extractor.resize, extractor.precision)}


__all__ = ["fid", "kid", "prd"]
