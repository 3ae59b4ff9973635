"""Benchmark: bf16 Inception features against fp32, and the `tf` preprocessing against `pytorch-fid`,
on the same MNIST images; plus the bf16 / fp32 speed on this machine.

    python benchmarks/inception_validation.py --data-dir DATA --n 2200
    python benchmarks/inception_validation.py --data-dir DATA --n 10000      # the paper's n

For each (precision, mode) of fp32/bf16 x pytorch-fid/tf it extracts the features of the first --n
MNIST test and the first --n MNIST training images and computes FID(test, train), then reports

- bf16 vs fp32, per mode: the FID difference and the feature error (max / mean absolute difference,
  relative Frobenius norm) on the same images;
- tf vs pytorch-fid, per precision: the FID difference (same images, same n);
- the speed of fp32 and bf16 on --speed-n further test images (no cache, after a warm-up), with the
  CPU's model name and whether it has bf16 units (avx512_bf16, amx_bf16 flags).

The combinations run in the order fp32/pytorch-fid, bf16/pytorch-fid, fp32/tf, bf16/tf, each
printed to stderr with the comparisons so far when done; features go through the feature cache
($FLEXAE_CACHE_DIR, default ~/.cache/flexae) in chunks of 1000, so an interrupted run resumes. One
JSON object on stdout at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from flexae.data import as_float
from flexae.data.images import load_images
from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import load_extractor

COMBINATIONS = [("fp32", "pytorch-fid"), ("bf16", "pytorch-fid"), ("fp32", "tf"), ("bf16", "tf")]


def cpu_description() -> dict:
    """Model name and bf16-related flags from /proc/cpuinfo (Linux), else the platform string."""
    info = {"model_name": platform.processor() or platform.machine(), "avx512_bf16": None, "amx_bf16": None}
    try:
        with open("/proc/cpuinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return info
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model_name"] = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            info["avx512_bf16"], info["amx_bf16"] = "avx512_bf16" in flags, "amx_bf16" in flags
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


def mnist(split: str, n: int, data_dir: str | None) -> torch.Tensor:
    """First n images of an MNIST split as float (n, 1, 28, 28) in [0, 1]."""
    return as_float(load_images("mnist", split, data_dir=data_dir).images[:n])


def features(sets: dict[str, torch.Tensor], args: argparse.Namespace) -> dict[tuple[str, str], dict]:
    """Features of every set for every (precision, mode), with the seconds each combination took.

    The comparisons so far are printed to stderr after each combination, so a run stopped before
    the slow last one still leaves its numbers.
    """
    out = {}
    for precision, mode in COMBINATIONS:
        if precision not in args.precisions or mode not in args.modes:
            continue
        extractor = load_extractor(device=args.device, batch_size=args.batch_size, precision=precision,
                                   mode=mode, progress=not args.quiet)
        begin = time.perf_counter()
        feats = {name: extractor(images) for name, images in sets.items()}
        out[precision, mode] = {"features": feats, "seconds": time.perf_counter() - begin}
        print(json.dumps({"done": f"{precision}/{mode}",
                          "seconds_incl_cache_reads": round(out[precision, mode]["seconds"], 1),
                          **compare(out)}), file=sys.stderr, flush=True)
    return out


def feature_error(low: torch.Tensor, ref: torch.Tensor) -> dict:
    """How far features (N, 2048) of one setting are from the reference setting's, same images."""
    diff = (low - ref).abs()
    return {"max_abs": round(float(diff.max()), 6), "mean_abs": round(float(diff.mean()), 6),
            "mean_abs_reference_value": round(float(ref.abs().mean()), 6),
            "rel_frobenius": round(float((low - ref).norm() / ref.norm()), 6)}


def compare(results: dict[tuple[str, str], dict]) -> dict:
    """FIDs per combination, and the bf16-vs-fp32 and tf-vs-pytorch-fid differences."""
    fids = {key: fid_from_features(r["features"]["test"], r["features"]["train"]) for key, r in results.items()}
    out: dict = {"fid_test_vs_train": {f"{p}/{m}": round(v, 4) for (p, m), v in fids.items()}}
    for mode in ("pytorch-fid", "tf"):
        if ("fp32", mode) in fids and ("bf16", mode) in fids:
            ref, low = results["fp32", mode]["features"], results["bf16", mode]["features"]
            out[f"bf16_vs_fp32/{mode}"] = {
                "fid_fp32": round(fids["fp32", mode], 4), "fid_bf16": round(fids["bf16", mode], 4),
                "fid_difference": round(fids["bf16", mode] - fids["fp32", mode], 4),
                "features": feature_error(torch.cat([low["test"], low["train"]]),
                                          torch.cat([ref["test"], ref["train"]]))}
    for precision in ("fp32", "bf16"):
        if (precision, "pytorch-fid") in fids and (precision, "tf") in fids:
            out[f"tf_vs_pytorch_fid/{precision}"] = {
                "fid_pytorch_fid": round(fids[precision, "pytorch-fid"], 4), "fid_tf": round(fids[precision, "tf"], 4),
                "fid_difference": round(fids[precision, "tf"] - fids[precision, "pytorch-fid"], 4)}
    return out


def speed(images: torch.Tensor, args: argparse.Namespace) -> dict:
    """Images per second of fp32 and bf16 (pytorch-fid mode) on the same images, cache off."""
    out = {"n": len(images), "load_average_before": os.getloadavg()}
    for precision in ("fp32", "bf16"):
        extractor = load_extractor(device=args.device, batch_size=args.batch_size, precision=precision,
                                   use_cache=False, progress=False)
        extractor.compute(images[:2])  # warm-up: oneDNN picks its kernels on the first call
        begin = time.perf_counter()
        extractor.compute(images)
        out[f"{precision}_images_per_s"] = round(len(images) / (time.perf_counter() - begin), 2)
    out["bf16_speedup"] = round(out["bf16_images_per_s"] / out["fp32_images_per_s"], 2)
    out["load_average_after"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2200, help="images per set (MNIST test, MNIST train)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--modes", default="pytorch-fid,tf", help="comma list of pytorch-fid, tf")
    parser.add_argument("--speed-n", type=int, default=100, help="images for the speed test (0: skip)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="image data folder (else $FLEXAE_DATA_DIR, else ./data)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    args.precisions, args.modes = args.precisions.split(","), args.modes.split(",")

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    result: dict = {"cpu": cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "n": args.n, "batch_size": args.batch_size}
    test = mnist("test", args.n + args.speed_n, args.data_dir)
    if args.speed_n > 0:  # images the comparison does not use, so no cached features help
        result["speed"] = speed(test[args.n:], args)
        print(json.dumps(result), file=sys.stderr, flush=True)
    begin = time.perf_counter()
    sets = {"test": test[:args.n], "train": mnist("train", args.n, args.data_dir)}
    result.update(compare(features(sets, args)))
    result["seconds_total"] = round(time.perf_counter() - begin, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
