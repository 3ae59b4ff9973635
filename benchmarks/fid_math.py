"""Benchmark: the FID trace term tr sqrt(S1 S2) on 2048 x 2048 covariances, eigenvalues vs sqrtm.

    python benchmarks/fid_math.py                 # n = 5000 random features per set, 3 repeats
    python benchmarks/fid_math.py --n 10000 --repeats 5 --threads 1

Two sets of random correlated, non-negative 2048-d "features" (ReLU of a random linear map of
Gaussian noise, so the covariances are full but ill-conditioned, as Inception's are) give S1, S2.
Times `trace_sqrt_product` (flexae's default: two symmetric eigendecompositions) and
`trace_sqrt_product_sqrtm` (scipy.linalg.sqrtm, pytorch-fid's way), best of --repeats, and the
full FID both ways. Prints one JSON object with the times, their ratio and the relative
difference of the two FIDs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from flexae.metrics.frechet import (frechet_distance, frechet_distance_sqrtm, gaussian_stats,
                                    trace_sqrt_product, trace_sqrt_product_sqrtm)


def random_features(rng: np.random.Generator, n: int, dim: int, shift: float) -> np.ndarray:
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.standard_normal((n, dim)) @ mixing + shift, 0.0)


def best_time(function, *args, repeats: int) -> tuple[float, float]:
    """(best wall time in seconds, the function's value)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), value


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="features per set")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mu1, s1 = gaussian_stats(random_features(rng, args.n, args.dim, 0.0))
    mu2, s2 = gaussian_stats(random_features(rng, args.n, args.dim, 0.1))
    with threadpool_limits(limits=args.threads):
        eig_s, eig_tr = best_time(trace_sqrt_product, s1, s2, repeats=args.repeats)
        sqrtm_s, sqrtm_tr = best_time(trace_sqrt_product_sqrtm, s1, s2, repeats=args.repeats)
        fid_eig = frechet_distance(mu1, s1, mu2, s2)
        fid_sqrtm = frechet_distance_sqrtm(mu1, s1, mu2, s2)
    print(json.dumps({
        "cpu": cpu_name(), "threads": args.threads or "all", "n": args.n, "dim": args.dim,
        "eigen_s": round(eig_s, 3), "sqrtm_s": round(sqrtm_s, 3), "speedup": round(sqrtm_s / eig_s, 1),
        "trace_rel_diff": abs(eig_tr - sqrtm_tr) / abs(sqrtm_tr),
        "fid_eigen": fid_eig, "fid_sqrtm": fid_sqrtm, "fid_rel_diff": abs(fid_eig - fid_sqrtm) / abs(fid_sqrtm),
    }, indent=1))


if __name__ == "__main__":
    main()
