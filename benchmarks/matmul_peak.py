"""Matrix-product peak of this CPU: GFLOP/s of large square `torch.mm` in fp32 (and bf16 where
oneDNN has bf16 kernels), on 1 thread and on all cores.

The yardstick for docs/performance.md's "where the time goes": a training step's GFLOP
(benchmarks/flops.py) divided by its time, against what one large matrix product reaches here.
An n x n by n x n product is 2 n^3 FLOP. Each (dtype, threads) cell runs `--warmup` untimed
products, then `--repeats` timed ones; the median and the best are printed. The CPU model (lscpu,
else /proc/cpuinfo) and the 1-minute load average before and after are printed with them: on a
machine shared with other jobs the numbers are lower bounds.

    python benchmarks/matmul_peak.py [--n 2048] [--repeats 10] [--warmup 2] [--threads 1,0] [--json]

(--threads 0: all cores torch sees.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import time

import torch


def cpu_model() -> str:
    """'Model name' from lscpu, else 'model name' from /proc/cpuinfo, else platform.processor()."""
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_family_model() -> str:
    """'family F model M' from lscpu (the model name alone, e.g. 'AMD EPYC', does not say which)."""
    if not shutil.which("lscpu"):
        return ""
    fields = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ":" in line)
    family, model = fields.get("CPU family", "").strip(), fields.get("Model", "").strip()
    return f" (family {family} model {model})" if family and model else ""


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def time_mm(n: int, dtype: torch.dtype, repeats: int, warmup: int) -> list[float]:
    """GFLOP/s of each of `repeats` products (n x n) @ (n x n) in `dtype`."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2048, help="Side of the square matrices.")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="1,0", help="Comma-separated thread counts; 0: all cores.")
    p.add_argument("--json", action="store_true", help="One JSON object per cell instead of the table.")
    args = p.parse_args()

    all_cores = os.cpu_count() or 1
    dtypes = [torch.float32]
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if bf16:
        dtypes.append(torch.bfloat16)
    flags = cpu_flags()
    print(f"CPU: {cpu_model()}{cpu_family_model()}; {all_cores} logical CPUs; torch {torch.__version__}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}; "
          f"avx512f {'avx512f' in flags}, avx512_bf16 {'avx512_bf16' in flags}, amx_bf16 {'amx_bf16' in flags}; "
          f"oneDNN bf16 kernels: {bf16}")
    load_before = load_average()
    print(f"load average (1 min) before: {load_before}")
    if not args.json:
        print(f"| dtype | threads | n | GFLOP/s, median of {args.repeats} | best |")
        print("|---|---|---|---|---|")
    for dtype in dtypes:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads or all_cores)
            rates = time_mm(args.n, dtype, args.repeats, args.warmup)
            cell = {"dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(), "n": args.n,
                    "gflops_median": round(statistics.median(rates), 1), "gflops_best": round(max(rates), 1)}
            if args.json:
                print(json.dumps(cell))
            else:
                print(f"| {cell['dtype']} | {cell['threads']} | {args.n} | {cell['gflops_median']} "
                      f"| {cell['gflops_best']} |")
    print(f"load average (1 min) after: {load_average()}")


if __name__ == "__main__":
    main()
