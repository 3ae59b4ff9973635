"""Benchmark: FID with the compact (float16) Inception weights against the exact ones.

    python benchmarks/compact_weights.py --n 2048 [--precision fp32] [--samples FILE.npz]
        [--compact FILE.safetensors] [--weights SRC] [--mode pytorch-fid] [--data-dir DATA]

FID(first --n MNIST training images, first --n MNIST test images), and with --samples
FID(first --n samples, first --n test images), each with the exact weights (--weights, default:
the installed offline file) and with their compact copy (--compact, default: written from them
into a temporary folder by `flexae metrics compact-weights`). The same images go through both
networks, so the difference is the weights' alone. Features go through the feature cache
($FLEXAE_CACHE_DIR, default ~/.cache/flexae), where the two weights have separate entries.
One JSON object on stdout: both FIDs per pair, their differences, the seconds each weights took,
the CPU's name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from flexae.data import as_float
from flexae.metrics.inception import write_compact_weights
from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import load_extractor
from flexae.metrics.io import open_images_input

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inception_validation import cpu_description  # noqa: E402  (a sibling script)


def first(spec: str, n: int, data_dir: str | None) -> torch.Tensor:
    """The first n images of an input (a split NAME:SPLIT or an .npz), float (n, C, H, W) in [0, 1]."""
    images = open_images_input(spec, data_dir, "FID")
    if len(images) < n:
        sys.exit(f"{spec} holds {len(images)} images, fewer than --n {n}")
    return as_float(images.read_at(range(n)))


def fids(sets: dict[str, torch.Tensor], weights: str | Path | None, args: argparse.Namespace) -> dict:
    """FID of each set against "test" with one weights file, and the seconds its features took."""
    extractor = load_extractor(weights, device=args.device, precision=args.precision, mode=args.mode,
                               progress=not args.quiet)
    begin = time.perf_counter()
    features = {name: extractor(images) for name, images in sets.items()}
    seconds = time.perf_counter() - begin
    values = {name: fid_from_features(features[name], features["test"]) for name in sets if name != "test"}
    return {"weights": extractor.weights_id, "fid": values, "seconds": round(seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2048, help="images of each set")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--mode", choices=("pytorch-fid", "tf"), default="pytorch-fid")
    p.add_argument("--samples", default=None, help="an .npz of generated images, scored against the test set too")
    p.add_argument("--weights", default=None, help="the exact weights (default: the installed offline file)")
    p.add_argument("--compact", default=None, help="compact weights (default: written from --weights)")
    p.add_argument("--data-dir", default=os.environ.get("FLEXAE_DATA_DIR"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    sets = {"test": first("mnist:test", args.n, args.data_dir), "train": first("mnist:train", args.n, args.data_dir)}
    if args.samples:
        sets["samples"] = first(args.samples, args.n, args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        compact = args.compact or write_compact_weights(Path(tmp) / "inception-fp16.safetensors", args.weights)["out"]
        exact, small = fids(sets, args.weights, args), fids(sets, compact, args)
    differences = {name: small["fid"][name] - exact["fid"][name] for name in exact["fid"]}
    print(json.dumps({"n": args.n, "precision": args.precision, "mode": args.mode, "samples": args.samples,
                      "exact": exact, "compact": small, "difference": differences,
                      "relative_difference": {k: v / exact["fid"][k] for k, v in differences.items()},
                      "cpu": cpu_description(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
