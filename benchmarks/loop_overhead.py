"""What the training loop adds to the step: `flexae train`'s ms per iteration against `flexae
bench train-step`'s for the same config, in the same process, interleaved (bench, loop, bench),
so the ratio holds on a noisy machine.

The loop's time per iteration comes from its own log: the cumulative training time of the last
`losses` record minus the first, over the iterations between them (start-up, the first
evaluation and the final sampler fit or evaluation are outside that window; the evaluations,
checkpoints, previews, logging, divergence checks and the progress bar inside it are counted).

    python benchmarks/loop_overhead.py [--models flexae,wae] [--dataset synthetic-5d]
        [--steps 600] [--bench-steps 60] [--data-dir DIR] [--device cpu] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from flexae.bench import bench_train_step
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import DEFAULT_LATENT_DIM
from flexae.files import read_jsonl
from flexae.app.train import train
from flexae.validation import apply_override


def config(model: str, args) -> RunConfig:
    cfg = RunConfig(ModelConfig(name=model, latent_dim=DEFAULT_LATENT_DIM[args.dataset]),
                    train=TrainConfig(dataset=args.dataset, steps=args.steps, device=args.device,
                                      data_dir=args.data_dir))
    for item in args.set:
        apply_override(cfg, item)
    return cfg


def loop_ms(cfg: RunConfig) -> float:
    with tempfile.TemporaryDirectory(prefix="flexae-loop-") as tmp:
        out = train(cfg, Path(tmp) / "run", progress=True)
        records = [r for r in read_jsonl(out / "log.jsonl") if r.get("kind") == "losses"]
    first, last = records[0], records[-1]
    return 1000 * (last["time"] - first["time"]) / (last["step"] - first["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="flexae,wae")
    p.add_argument("--dataset", default="synthetic-5d")
    p.add_argument("--steps", type=int, default=600, help="iterations of the real loop")
    p.add_argument("--bench-steps", type=int, default=60)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    print("| model | bench ms/iter (before, after) | loop ms/iter | loop / bench |")
    print("|---|---|---|---|")
    for model in args.models.split(","):
        cfg = config(model, args)
        before = bench_train_step(config(model, args), steps=args.bench_steps, warmup=3)["ms_per_iter"]
        loop = loop_ms(cfg)
        after = bench_train_step(config(model, args), steps=args.bench_steps, warmup=3)["ms_per_iter"]
        bench = (before + after) / 2
        print(f"| {model} | {bench:.1f} ({before}, {after}) | {loop:.1f} | {loop / bench:.3f} |", flush=True)


if __name__ == "__main__":
    main()
