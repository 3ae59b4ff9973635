"""vae-iop's sampler on a trained run: how much weight the density-ratio estimator T puts on N(0, I)
proposals, and sample grids with and without importance resampling (docs/baselines.md, vae-iop).

Prints the relative effective sample size of exp(T) over 4096 N(0, I) draws, the mean T on those
draws and on codes z ~ q(z|x) of 1000 test images, and writes OUT/samples-K1.png (plain N(0, I)
codes: T ignored), OUT/samples-K100.png (the default sampler), both side by side in
OUT/samples-K1-vs-K100.png, and OUT/reconstructions.png.

    flexae train --model vae-iop --dataset mnist --steps 300 --out RUN [--set ...]
    python benchmarks/iop_sir.py RUN [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from flexae.baselines import losses as bl
from flexae.data import as_float, load_for_config
from flexae.grids import hstack_grids, make_grid, save_png, to_uint8, write_images
from flexae.app.load import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="grid folder (default: the run folder)")
    args = parser.parse_args()
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    model, cfg = load_run(args.run)
    model.eval()
    test = load_for_config(cfg.train).test
    with torch.no_grad():
        t_prior = model.prior.log_ratio(torch.randn(4096, cfg.model.latent_dim,
                                                    generator=torch.Generator().manual_seed(0)))
        mu, logvar = model.posterior(as_float(test[:1000]))
        z = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(1)) * (0.5 * logvar).exp()
        t_codes = model.prior.log_ratio(z)
        print(f"relative ESS of exp(T) over 4096 N(0, I) draws: {float(bl.relative_ess(t_prior)):.3f}")
        print(f"mean T: {float(t_prior.mean()):.2f} on N(0, I) draws, {float(t_codes.mean()):.2f} on 1000 test codes")
        grids = []
        for k in (1, 100):
            model.prior.candidates = k
            samples = model.generate(64, torch.Generator().manual_seed(2))
            write_images(out / f"samples-K{k}.png", samples, 8)
            grids.append(make_grid(to_uint8(samples), 8))
        save_png(out / "samples-K1-vs-K100.png", hstack_grids(grids))
        write_images(out / "reconstructions.png", model.reconstruct(as_float(test[:32])), 8)
    print(f"grids in {out}")


if __name__ == "__main__":
    main()
