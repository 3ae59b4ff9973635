"""Training-step speed table: model x precision -> ms per Algorithm-1 iteration and samples/s,
for the MNIST and CIFAR-10 networks, by `flexae bench train-step` (the real training step).

Every measurement runs in a fresh process. With --naive PATH (a naive single-file transcription
of one FlexAE-SR iteration on the MNIST networks that prints {"ms_per_iter": ...}) the yardstick
is timed in the same run, interleaved with ours round by round, and the table gives the ratio:
on a machine shared with other jobs the absolute numbers drift, the ratio much less. The 1-minute
load average is recorded with every measurement.

samples/s = batch size x iterations per second (each iteration draws 1 + 5 x 3 + 3 real batches
with the default feed, and updates six networks 13 times).

    python benchmarks/train_step.py [--models flexae-sr,flexae] [--datasets mnist,cifar10]
        [--precisions fp32,bf16] [--steps 5] [--warmup 1] [--rounds 1] [--naive PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch


def bench(model: str, dataset: str, precision: str, args) -> dict:
    cmd = [sys.executable, "-m", "flexae", "bench", "train-step", "--model", model, "--dataset", dataset,
           "--precision", precision, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def naive(path: str, precision: str, args) -> dict:
    cmd = [sys.executable, path, "--steps", str(args.steps), "--batch", str(args.batch_size)]
    cmd += ["--bf16"] if precision == "bf16" else []
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return result


def bf16_is_slow(device: str) -> bool:
    """AVX2-only CPUs have no oneDNN bf16 kernels; PyTorch's fallback is many times slower than fp32."""
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return on_cpu and not torch.ops.mkldnn._is_mkldnn_bf16_supported()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="flexae-sr,flexae")
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="Repeat every measurement; medians are reported.")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--naive", default=None, help="Naive FlexAE-SR script (MNIST networks) to time alongside.")
    p.add_argument("--force-bf16", action="store_true", help="Time bf16 also where its kernels are emulated.")
    args = p.parse_args()

    skip_bf16 = bf16_is_slow(args.device) and not args.force_bf16
    cells = [(d, m, pr) for d in args.datasets.split(",") for m in args.models.split(",")
             for pr in args.precisions.split(",")]
    ours: dict[tuple, list[dict]] = {c: [] for c in cells}
    yard: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for cell in cells:
            dataset, model, precision = cell
            if precision == "bf16" and skip_bf16:
                continue
            if args.naive and dataset == "mnist" and model == "flexae-sr":
                yard.setdefault(precision, []).append(naive(args.naive, precision, args))
                print(json.dumps({"naive": precision, **yard[precision][-1]}), flush=True)
            ours[cell].append(bench(model, dataset, precision, args))
            print(json.dumps(ours[cell][-1]), flush=True)

    print()
    print(f"batch {args.batch_size}, {args.steps} timed iterations after {args.warmup} warm-up, "
          f"median of {args.rounds} round(s); torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    print()
    print("| networks | model | precision | ms/iter | samples/s | naive ms/iter | ours / naive | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in cells:
        dataset, model, precision = cell
        if not ours[cell]:
            print(f"| {dataset} | {model} | {precision} | skipped: no bf16 kernels on this CPU | | | | |")
            continue
        ms = statistics.median(r["ms_per_iter"] for r in ours[cell])
        load = statistics.median(r["load_avg_1min"] for r in ours[cell])
        row = f"| {dataset} | {model} | {precision} | {ms:.0f} | {args.batch_size * 1000 / ms:.0f} |"
        ref = yard.get(precision) if dataset == "mnist" and model == "flexae-sr" else None
        if ref:
            naive_ms = statistics.median(r["ms_per_iter"] for r in ref)
            row += f" {naive_ms:.0f} | {ms / naive_ms:.2f} |"
        else:
            row += " | |"
        print(row + f" {load:.1f} |")


if __name__ == "__main__":
    main()
