"""Does bf16 change training? fp32 and bf16 FlexAE-SR runs of the same seed and length, compared.

Runs (each a fresh model, same seed, same number of Algorithm-1 iterations on real MNIST):
    fp32         the reference
    fp32-seed+1  fp32 with the next seed: the run-to-run noise the bf16 difference is judged against
    bf16         the library's policy: encoder/decoder passes in bf16, critics, gradient penalty,
                 prior generator and losses in fp32 (flexae.training.precision)
    bf16-whole   (optional) the naive policy, the whole step under bf16 autocast, which diverges

Every `--log-every` iterations it records the losses and, in eval mode on fixed inputs, the
statistics the reference notes flag: prior samples G(n) and encoder codes E(x_test) (mean, std,
largest |value|), the exact latent W1 between them, the test reconstruction error (per-image sum
of squared errors, as L_AE) and the mean pixel of generated images. At the end it writes an 8x8
sample grid per run and, with --fid N, generation FID on N samples vs N test images.

bf16 kernels: on CPUs without oneDNN bf16 support (AVX2-only CPUs:
`torch.ops.mkldnn._is_mkldnn_bf16_supported()` is False) bf16 convolutions and matrix products are emulated by PyTorch and 4-65x slower than
fp32, too slow to train with. There `--emulate auto` (the default) rounds to bf16 wherever bf16
autocast would (flexae.training.precision.EmulatedBF16) and computes in fp32: the numerics of
bf16 training at fp32 speed. `--emulate off` forces real bf16 kernels.

    python benchmarks/precision_check.py --steps 300 --out runs/precision
Writes OUT/<run>/result.json per run, OUT/samples-<run>.png, and OUT/precision.json and
OUT/precision.md over every run found in OUT (so runs can be split over several invocations).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import as_float, load_dataset
from flexae.grids import write_images
from flexae.metrics.wasserstein import wasserstein1_exact
from flexae.devices import resolve_device
from flexae.registry import make_trainer
from flexae.app.train import Run
from flexae.training.precision import MixedPrecision, StepOptions, resolve_channels_last

EVAL_SEED = 4321
N_EVAL = 1000


class WholeStepPrecision(MixedPrecision):
    """The naive policy: the low precision everywhere, also around critics, GP and the prior."""

    def full(self):
        return self.low()


def needs_emulation(device: torch.device) -> bool:
    """True on CPUs where oneDNN has no bf16 kernels (PyTorch then falls back to slow loops)."""
    return device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported()


def build_run(name: str, args, data, device, out: Path) -> Run:
    seed = args.seed + 1 if name == "fp32-seed+1" else args.seed
    precision = "fp32" if name.startswith("fp32") else "bf16"
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=args.latent_dim),
                    train=TrainConfig(dataset="mnist", steps=args.steps, batch_size=args.batch_size, seed=seed,
                                      precision=precision, device=str(device), cpu_threads=args.threads))
    run = Run(cfg, out, device, data)  # seeds, builds the model and the batch source as `flexae train`
    # Swap in a trainer with this run's options (building a trainer draws no random numbers, so
    # the RNG stream is the one `flexae train` would use).
    options = StepOptions(device_type=device.type, precision=precision, emulate_bf16=args.emulate_bf16,
                          channels_last=resolve_channels_last(cfg.train.channels_last, device))
    run.trainer = make_trainer(run.model, cfg.optim, run.batches, options)
    if name == "bf16-whole":
        run.trainer.amp = WholeStepPrecision(options)
    return run


@torch.no_grad()
def eval_stats(run: Run, test_x: torch.Tensor) -> dict[str, float]:
    """Eval-mode statistics on fixed inputs (fp32, outside any autocast)."""
    model = run.model
    model.eval()
    gen = torch.Generator(device=run.device).manual_seed(EVAL_SEED)
    z = model.encode(test_x)                                    # (N, m) codes
    z_hat = model.sample_latent(len(test_x), gen)               # (N, m) prior samples
    rec = ((model.decode(z) - test_x) ** 2).flatten(1).sum(1).mean()
    samples = model.decode(z_hat)                               # (N, C, H, W)
    model.train()
    stats = {"code_mean": z.mean(), "code_std": z.std(), "code_absmax": z.abs().max(),
             "prior_mean": z_hat.mean(), "prior_std": z_hat.std(), "prior_absmax": z_hat.abs().max(),
             "test_rec_error": rec, "sample_pixel_mean": samples.mean()}
    stats = {k: float(v) for k, v in stats.items()}
    finite = np.isfinite(z_hat.cpu().numpy()).all() and np.isfinite(z.cpu().numpy()).all()
    stats["w1_latent"] = float(wasserstein1_exact(z_hat.cpu().numpy(), z.cpu().numpy())) if finite else float("nan")
    return stats


def train_and_track(name: str, args, data, device, out: Path) -> dict:
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    run = build_run(name, args, data, device, run_dir)
    test_x = as_float(data.test[:N_EVAL]).to(device)
    history, started = [], time.perf_counter()
    run.model.train()
    for step in range(1, args.steps + 1):
        logs = run.trainer.step()
        if step % args.log_every == 0 or step == args.steps:
            record = {"step": step, **{k: float(v) for k, v in logs.items()}, **eval_stats(run, test_x),
                      "seconds": round(time.perf_counter() - started, 1)}
            history.append(record)
            line = json.dumps({"run": name, **{k: round(v, 4) if isinstance(v, float) else v
                                               for k, v in record.items()}})
            print(line, flush=True)
            with open(run_dir / "history.jsonl", "a") as f:  # kept if the run is interrupted
                f.write(line + "\n")
            if not np.isfinite(record["prior_std"]) or record["prior_absmax"] > 1e6:
                print(f"{name}: prior exploded at step {step}; stopping this run", flush=True)
                break
    samples = _samples(run, 64)
    write_images(out / f"samples-{name}.png", samples, 8, overwrite=True)
    result = {"history": history, "final": history[-1]}
    if args.fid:
        result["final"]["fid"] = _fid(run, data, args.fid)
    return result


@torch.no_grad()
def _samples(run: Run, n: int) -> torch.Tensor:
    run.model.eval()
    gen = torch.Generator(device=run.device).manual_seed(EVAL_SEED + 1)
    images = run.model.decode(run.model.sample_latent(n, gen)).float().cpu()
    run.model.train()
    return images


def _fid(run: Run, data, n: int) -> float:
    from flexae.metrics.fid import fid
    from flexae.metrics.inception import load_extractor
    extractor = load_extractor(device=run.device, progress=False)
    generated = torch.cat([_samples_seeded(run, min(500, n - i), i) for i in range(0, n, 500)])
    return float(fid(generated, data.test[:n], extractor))


@torch.no_grad()
def _samples_seeded(run: Run, n: int, offset: int) -> torch.Tensor:
    run.model.eval()
    gen = torch.Generator(device=run.device).manual_seed(EVAL_SEED + 100 + offset)
    images = run.model.decode(run.model.sample_latent(n, gen)).float().cpu()
    run.model.train()
    return images


def markdown(results: dict, args) -> str:
    keys = ["loss_ae", "w_critic", "loss_gen", "test_rec_error", "code_std", "prior_mean", "prior_std",
            "prior_absmax", "w1_latent", "sample_pixel_mean"] + (["fid"] if args.fid else [])
    lines = [f"FlexAE-SR, MNIST, batch {args.batch_size}, {args.steps} iterations, seed {args.seed}; "
             f"bf16 {'emulated (fp32 kernels, bf16 rounding)' if args.emulate_bf16 else 'real kernels'}.",
             "", "| run | step | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, res in results.items():
        f = res["final"]
        lines.append(f"| {name} | {f['step']} | " + " | ".join(f"{f.get(k, float('nan')):.4g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--runs", default="fp32,bf16,fp32-seed+1", help="Comma-separated; add bf16-whole to "
                   "reproduce the naive policy's divergence.")
    p.add_argument("--emulate", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--fid", type=int, default=0, help="Generation FID on this many samples (0: skip).")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    device = resolve_device(args.device)
    args.emulate_bf16 = args.emulate == "on" or (args.emulate == "auto" and needs_emulation(device))
    data = load_dataset("mnist", args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.runs.split(","):
        result = train_and_track(name, args, data, device, args.out)
        (args.out / name / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    # The summary covers every run in OUT, also those of earlier invocations (runs can be split
    # over several processes or sessions).
    results = {path.parent.name: json.loads(path.read_text())
               for path in sorted(args.out.glob("*/result.json"))}
    (args.out / "precision.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "precision.md").write_text(markdown(results, args))
    print(markdown(results, args))


if __name__ == "__main__":
    main()
