"""`flexae fit-prior` measured on synthetic-5d (Fig 2's data, m = 50): generation FD of a trained
WAE with its N(0, I) prior vs the same frozen auto-encoder with a prior learned after training,
and of an AE + ex-post GMM run with its GMM sampler vs a learned prior; FlexAE trained end to end
for reference. Same data, seed, networks (Table 6) and training budget for every run; FD between
the 10,000 test points and 10,000 generated points (128-D), exact latent W1 on 1000 points.

    python benchmarks/fit_prior_synthetic.py [--steps 3000] [--prior-steps 3000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import load_dataset
from flexae.metrics.frechet import frechet_distance_from_samples
from flexae.app.load import load_run
from flexae.app.fit_prior import fit_prior_run
from flexae.app.train import train


def generation_fd(run: Path, learned_prior: bool, test: torch.Tensor) -> float:
    model, _ = load_run(run, learned_prior=learned_prior)
    with torch.no_grad():
        generated = model.generate(test.shape[0], torch.Generator().manual_seed(1))
    return frechet_distance_from_samples(generated.double().numpy(), test.double().numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="training iterations of every run")
    p.add_argument("--prior-steps", type=int, default=3000, help="iterations of the prior fit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/fit-prior-synthetic"))
    args = p.parse_args()
    test = load_dataset("synthetic-5d").test
    rows = []
    for model in ("wae", "ae-gmm", "flexae"):
        cfg = RunConfig(ModelConfig(name=model, latent_dim=50),
                        train=TrainConfig(dataset="synthetic-5d", steps=args.steps, seed=args.seed))
        start = time.perf_counter()
        run = train(cfg, args.out / model, overwrite=True, progress=False)
        trained_s = time.perf_counter() - start
        own = "learned end to end" if model == "flexae" else "N(0, I)" if model == "wae" else "ex-post GMM"
        row = {"model": model, "train_s": round(trained_s, 1), "prior": own,
               "fd_own_prior": round(generation_fd(run, False, test), 2)}
        if model != "flexae":
            start = time.perf_counter()
            stats = fit_prior_run(run, steps=args.prior_steps, seed=args.seed, progress=False)
            row["fit_s"] = round(time.perf_counter() - start, 1)
            row["fd_learned_prior"] = round(generation_fd(run, True, test), 2)
            row["w1_codes_learned_prior"] = round(stats["w1_learned_prior"], 2)
            row["w1_codes_standard_normal"] = round(stats["w1_standard_normal"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{platform.machine()}, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; {args.steps} training iterations, "
          f"{args.prior_steps} prior-fit iterations, seed {args.seed}\n")
    print("| run | its own prior | FD, own prior | FD, prior learned by fit-prior |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['prior']} | {r['fd_own_prior']} | {r.get('fd_learned_prior', '-')} |")


if __name__ == "__main__":
    main()
