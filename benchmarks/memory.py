"""Peak resident memory (RSS) of FlexAE-SR training at batch 128, MNIST and CelebA networks.

Each configuration runs in a fresh process (peaks do not mix): it builds the run exactly as
`flexae train` does (flexae.app.train.Run) on random data with the real training set's size
and dtype (uint8; MNIST 60,000 x 1 x 28 x 28 = 47 MB, CelebA 162,770 x 3 x 64 x 64 = 2.0 GB), runs
`--steps` full Algorithm-1 iterations and reports, in MiB:
    after_import   the Python process with torch and flexae imported
    after_setup    + the data set, the networks and the trainer
    peak           the process's peak RSS (ru_maxrss) after training
and the sizes that explain them: parameters, Adam moments (two per parameter per optimizer; E and D
are in three optimizers), data set.

    python benchmarks/memory.py [--datasets mnist,celeba] [--precision fp32] [--steps 2]
Prints a Markdown table (and --json for one JSON line per configuration).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

MIB = 2 ** 20
N_TRAIN = {"mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000, "celeba": 162770}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / MIB


def measure(dataset: str, precision: str, batch_size: int, steps: int, threads: int) -> dict:
    """Run in this process; call it in a fresh process for a clean peak."""
    import tempfile
    from pathlib import Path

    import torch

    from flexae.bench import random_dataset
    from flexae.config import ModelConfig, RunConfig, TrainConfig
    from flexae.data import DEFAULT_LATENT_DIM
    from flexae.devices import resolve_device
    from flexae.app.train import Run

    after_import = _rss_mib()
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=DEFAULT_LATENT_DIM[dataset]),
                    train=TrainConfig(dataset=dataset, batch_size=batch_size, precision=precision,
                                      device="cpu", cpu_threads=threads))
    data = random_dataset(dataset, N_TRAIN[dataset])
    device = resolve_device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(cfg, Path(tmp), device, data)
        after_setup = _rss_mib()
        for _ in range(steps):
            run.trainer.step()
        params = sum(p.numel() for p in run.model.parameters())
        moments = sum(2 * p.numel() for opt in run.trainer.optimizers.values()
                      for group in opt.param_groups for p in group["params"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"dataset": dataset, "precision": precision, "batch_size": batch_size, "steps": steps,
            "after_import_mib": round(after_import), "after_setup_mib": round(after_setup), "peak_mib": round(peak),
            "params_mib": round(4 * params / MIB), "adam_moments_mib": round(4 * moments / MIB),
            "data_mib": round(data.train.numel() * data.train.element_size() / MIB),
            "torch": str(torch.__version__)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="mnist,celeba")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one measurement, in this process
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.precision, args.batch_size, args.steps, args.threads)))
        return
    rows = []
    for dataset in args.datasets.split(","):
        cmd = [sys.executable, __file__, "--child", dataset, "--precision", args.precision,
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    print("| networks | precision | batch | peak RSS (MiB) | after setup | after import | params | Adam moments | data (uint8) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['precision']} | {r['batch_size']} | {r['peak_mib']} | {r['after_setup_mib']} | "
              f"{r['after_import_mib']} | {r['params_mib']} | {r['adam_moments_mib']} | {r['data_mib']} |")


if __name__ == "__main__":
    main()
