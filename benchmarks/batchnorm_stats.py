"""`train.batchnorm_stats` measured: FlexAE-SR on MNIST trained twice for the same iterations, with
the same seed, data and networks, once with PyTorch's own BatchNorm refreshes ("own") and once with
those of the authors' TF graph ("authors", flexae.training.batchnorm). Both are evaluated in eval
mode (the running statistics are what differs): generation and reconstruction FID of n images vs
n test images (the paper's protocol, `flexae eval`; pytorch-fid preprocessing), and an 8 x 8 grid
of eval-mode samples per setting in OUT/samples-{own,authors}.png to look at.

    python benchmarks/batchnorm_stats.py [--steps 300] [--n 2048] [--out DIR] [--device auto]

The first iteration of both runs is the same bit for bit (tests/test_batchnorm_stats.py); only the
running statistics differ, and through them eval mode and everything trained after step 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from flexae import inference
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.app.evaluate import evaluate_run
from flexae.grids import write_images
from flexae.app.load import load_run
from flexae.app.train import train


def run_one(mode: str, args: argparse.Namespace) -> dict:
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=args.latent_dim),
                    train=TrainConfig(dataset="mnist", steps=args.steps, seed=args.seed, device=args.device,
                                      batchnorm_stats=mode, grid_every=0, eval_every=0,
                                      checkpoint_every=max(args.steps, 1)))
    out = args.out / mode
    start = time.perf_counter()
    train(cfg, out, overwrite=True, progress=False, data_dir=args.data_dir)
    train_s = time.perf_counter() - start
    model, _ = load_run(out, device=args.device if args.device != "auto" else "cpu")
    with torch.no_grad():
        write_images(args.out / f"samples-{mode}.png", inference.sample(model, 64, seed=args.seed), 8,
                     overwrite=True)
    results = evaluate_run(out, n=args.n, metrics=("fid",), device=args.device, data_dir=args.data_dir,
                           progress=False)
    return {"batchnorm_stats": mode, "steps": args.steps, "train_s": round(train_s, 1), "n": args.n,
            "fid_generation": results["fid"]["gen"], "fid_reconstruction": results["fid"]["rec"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300, help="training iterations of each run")
    p.add_argument("--n", type=int, default=2048, help="generated and test images per FID")
    p.add_argument("--latent-dim", type=int, default=20, help="m (the paper's 20 for MNIST)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None, help="MNIST files (default: $FLEXAE_DATA_DIR, else ./data)")
    p.add_argument("--out", type=Path, default=Path("runs/batchnorm-stats"))
    args = p.parse_args()
    rows = []
    for mode in ("own", "authors"):
        rows.append(run_one(mode, args))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{platform.machine()}, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, device {args.device}; FlexAE-SR, MNIST, "
          f"{args.steps} iterations, seed {args.seed}, FID at n = {args.n} vs test, eval mode\n")
    print("| train.batchnorm_stats | FID generation | FID reconstruction | training s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['batchnorm_stats']} | {r['fid_generation']:.2f} | {r['fid_reconstruction']:.2f} "
              f"| {r['train_s']} |")
    print(f"\nsample grids: {args.out}/samples-own.png, {args.out}/samples-authors.png")


if __name__ == "__main__":
    main()
