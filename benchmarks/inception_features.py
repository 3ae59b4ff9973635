"""Benchmark: Inception pool3 features for MNIST test images on this machine, and reference FIDs.

    python benchmarks/inception_features.py                  # 10k images, fp32, plus variants
    python benchmarks/inception_features.py --fid            # also FID test/train, MNIST/Fashion
    python benchmarks/inception_features.py --time-n 1000 --bf16-n 500 --fid

Prints one JSON object on stdout (progress bars and partial results go to stderr). The main
timing is the default extractor (fp32, BatchNorm folded, channels_last) on the first --time-n MNIST
test images, preprocessing included. Variants (the TorchScript network as shipped, the unfolded
graph in NCHW, bf16 autocast) are timed on --variants-n images and projected to 10k. The bf16 run
also reports how far its features, and the FID between the two halves of its images, move from
fp32 on the same images (meaningful from a few thousand images on); benchmarks/inception_validation.py
measures bf16 against fp32 (and the tf preprocessing) on MNIST test vs train.

--fid computes FID(10k MNIST test, first 10k MNIST train) and FID(MNIST test, Fashion-MNIST test)
with --n images per set, and on the first --fid-at images on the way. The MNIST and Fashion-MNIST
files are found as everywhere in flexae: --data-dir, else $FLEXAE_DATA_DIR, else ./data. These features go through the feature cache ($FLEXAE_CACHE_DIR, default
~/.cache/flexae) in chunks, so an interrupted run resumes where it stopped; the timings never
read the cache (the main timing's features are stored into it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import InceptionExtractor, load_extractor, preprocess, torchscript_weights_path
from flexae.data.images import load_images
from flexae.data import as_float

CHUNK = 1000  # matches the extractor's default cache chunk, so chunks are shared with other runs


def mnist(dataset: str, split: str, n: int, data_dir: str | None) -> torch.Tensor:
    """First n images of a split as float (n, 1, 28, 28) in [0, 1]."""
    return as_float(load_images(dataset, split, data_dir=data_dir).images[:n])


def throughput(run, images: torch.Tensor) -> dict[str, float]:
    run(images[:2])  # warm-up: oneDNN picks its kernels on the first call
    start = time.perf_counter()
    run(images)
    seconds = time.perf_counter() - start
    return {"n": len(images), "seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 2),
            "projected_10k_s": round(10000 * seconds / len(images), 1)}


def raw_torchscript(batch_size: int):
    """The shipped TorchScript network run as is (BatchNorm unfolded, NCHW), for comparison."""
    script = torch.jit.load(str(torchscript_weights_path()), map_location="cpu").eval()

    @torch.inference_mode()
    def run(images: torch.Tensor) -> None:
        for start in range(0, len(images), batch_size):
            script(preprocess(images[start:start + batch_size]))
    return run


def variants(extractor: InceptionExtractor, images: torch.Tensor, bf16_images: torch.Tensor) -> dict[str, dict]:
    plain = InceptionExtractor(extractor.network, extractor.weights_id, extractor.device,
                               extractor.batch_size, channels_last=False, fold_bn=False, progress=False)
    out = {"torchscript_as_shipped": throughput(raw_torchscript(extractor.batch_size), images),
           "unfolded_nchw": throughput(plain.compute, images)}
    if len(bf16_images) >= 4:
        bf16 = InceptionExtractor(extractor.network, extractor.weights_id, extractor.device,
                                  extractor.batch_size, precision="bf16", progress=False)
        out["bf16"] = throughput(bf16.compute, bf16_images)
        out["bf16"].update(bf16_vs_fp32(extractor, bf16, bf16_images))
    return out


def bf16_vs_fp32(fp32: InceptionExtractor, bf16: InceptionExtractor, images: torch.Tensor) -> dict:
    """Feature error of bf16, and FID(first half, second half) in both precisions."""
    f32, f16 = fp32.compute(images), bf16.compute(images)
    half = len(images) // 2
    fid32, fid16 = fid_from_features(f32[:half], f32[half:]), fid_from_features(f16[:half], f16[half:])
    return {"feature_rel_error": round(float((f16 - f32).norm() / f32.norm()), 6),
            "fid_halves_fp32": round(fid32, 4), "fid_halves_bf16": round(fid16, 4),
            "fid_rel_change": round(abs(fid16 - fid32) / fid32, 6)}


def reference_fids(extractor: InceptionExtractor, sets: dict[str, torch.Tensor], at: list[int]) -> list[dict]:
    """FID(test, train) and FID(test, fashion) on the first m images of each set, for m in ``at``.

    Features are extracted 1000 images at a time, round-robin over the sets (through the chunked
    cache), so each FID is available as soon as its images are, and a rerun resumes.
    """
    features: dict[str, list[torch.Tensor]] = {name: [] for name in sets}
    rows = []
    n = max(at)
    for start in range(0, n, CHUNK):
        for name, images in sets.items():
            features[name].append(extractor(images[start:start + CHUNK]))
        m = min(start + CHUNK, n)
        if m in at:
            f = {name: torch.cat(parts) for name, parts in features.items()}
            begin = time.perf_counter()
            rows.append({"n": m,
                         "mnist_test_vs_mnist_train": round(fid_from_features(f["test"], f["train"]), 3),
                         "mnist_test_vs_fashion_test": round(fid_from_features(f["test"], f["fashion"]), 3),
                         "seconds_for_two_fids": round(time.perf_counter() - begin, 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-n", type=int, default=10000, help="MNIST test images for the main timing (0: skip)")
    parser.add_argument("--n", type=int, default=10000, help="images per set for --fid")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--variants-n", type=int, default=100, help="images per variant timing (0: skip)")
    parser.add_argument("--bf16-n", type=int, default=16, help="images for the bf16 timing (< 4: skip)")
    parser.add_argument("--fid", action="store_true", help="FID test vs train and MNIST vs Fashion-MNIST")
    parser.add_argument("--fid-at", default="3000,5000", help="also report FIDs on the first m images (comma list)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="image data folder (else $FLEXAE_DATA_DIR, else ./data)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    extractor = load_extractor(device=args.device, batch_size=args.batch_size, precision="fp32")
    test = mnist("mnist", "test", max(args.n, args.time_n), args.data_dir)
    result: dict = {"device": str(extractor.device), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "batch_size": args.batch_size,
                    "load_average_at_start": os.getloadavg()}

    if args.time_n > 0:
        timed = test[:args.time_n]
        start = time.perf_counter()
        features = extractor.compute(timed)
        seconds = time.perf_counter() - start
        result["fp32_default"] = {"n": len(timed), "seconds": round(seconds, 1),
                                  "images_per_s": round(len(timed) / seconds, 2),
                                  "projected_10k_s": round(10000 * seconds / len(timed), 1),
                                  "load_average_after": os.getloadavg()}
        if extractor.cache_dir is not None:
            extractor.store(timed, features)  # the FID step below reuses them
        print(json.dumps(result), file=sys.stderr, flush=True)

    if args.variants_n > 0:
        result["variants"] = variants(extractor, test[:args.variants_n], test[:args.bf16_n])
        print(json.dumps(result), file=sys.stderr, flush=True)

    if args.fid:
        sets = {"test": test[:args.n], "train": mnist("mnist", "train", args.n, args.data_dir),
                "fashion": mnist("fashion-mnist", "test", args.n, args.data_dir)}
        at = sorted({int(m) for m in args.fid_at.split(",") if m} | {args.n})
        result["fid"] = reference_fids(extractor, sets, [m for m in at if m <= args.n])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
