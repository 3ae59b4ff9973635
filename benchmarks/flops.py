"""FLOPs of one Algorithm-1 iteration, per update, counted on the library's own training step.

The run is built as `flexae bench train-step` builds it (`flexae.app.train.Run` on random data
of the data set's shape, the trainer `flexae train` uses), and one `Run.trainer.step()` runs under
`torch.utils.flop_counter.FlopCounterMode`. Each update method of `AdversarialTrainer` (ae, critic,
reg, ae_reg, gen, enc) runs under a counter of its own as well, so the table gives every update's
share; "other" is what the step counts outside them. The counter knows the FLOPs of matrix
products and convolutions (forward, input and weight gradients, and the gradient penalty's double
backward, which autograd runs as ordinary ops); element-wise ops, BatchNorm and Adam are not
counted. A multiply-add is 2 FLOPs. GFLOP = 1e9 FLOP.

The counts depend only on shapes (networks, batch size, feed), not on the CPU or on the data.

    python benchmarks/flops.py [--models flexae-sr,flexae,wae] [--datasets mnist]
        [--batch-size 128] [--dead-branches] [--naive PATH] [--inception] [--json]
    python benchmarks/flops.py --models '' --inception     # the FID network only

--dead-branches counts the same step with the gradient penalty's critic pass using plain ReLU
(`flexae.losses._ConstantMaskReLU` switched off), i.e. the step before that change
(docs/performance.md, "Gradient penalty"). --naive PATH counts a single-file FlexAE-SR script
that takes `--steps N --batch B` (the yardstick of benchmarks/train_step.py; not part of this
repository): it runs in this process with --steps 1 and --steps 2 and the difference is one
iteration, whatever warm-up the script does. --inception counts one forward pass of the FID
network (`flexae.metrics.inception.FIDInceptionV3`, pool3 features of one 299 x 299 image; the
weights do not change the count, so none are loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import runpy
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from flexae.bench import UPDATES, random_dataset
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import DEFAULT_LATENT_DIM


def make_config(model: str, dataset: str, batch_size: int, threads: int = 0) -> RunConfig:
    """The config `flexae bench train-step --model M --dataset D --batch-size B --device cpu` makes."""
    return RunConfig(ModelConfig(name=model, latent_dim=DEFAULT_LATENT_DIM[dataset]),
                     train=TrainConfig(dataset=dataset, steps=1, batch_size=batch_size, device="cpu",
                                       cpu_threads=threads))


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker: every FLOP goes to "Global" only. The tracker's
    backward hooks on module inputs fail inside `torch.autograd.grad` (the gradient penalty):
    "A leaf node was passed to _will_engine_execute_node ..."; totals do not need it."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter (its formulas and op table) without per-module attribution."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    return counter


def _count_updates(trainer, totals: dict[str, int], calls: dict[str, int]) -> None:
    """Shadow each update method by one that runs it under its own FlopCounterMode (nested inside
    the step's counter; both count every op) and adds its FLOPs to `totals[name]`."""
    for name in UPDATES:
        method = getattr(trainer, f"update_{name}", None)
        if method is None:
            continue

        def counted(*args, _method=method, _name=name, **kwargs):
            with flop_counter() as counter:
                result = _method(*args, **kwargs)
            totals[_name] = totals.get(_name, 0) + counter.get_total_flops()
            calls[_name] = calls.get(_name, 0) + 1
            return result

        setattr(trainer, f"update_{name}", counted)


@contextlib.contextmanager
def _plain_relu_in_penalty():
    """Run the penalty's critic pass with ordinary ReLU (the dead double-backward branches kept)."""
    import flexae.losses as losses

    saved = losses._ConstantMaskReLU
    losses._ConstantMaskReLU = contextlib.nullcontext
    try:
        yield
    finally:
        losses._ConstantMaskReLU = saved


def count_step(model: str, dataset: str, batch_size: int, dead_branches: bool = False, threads: int = 0) -> dict:
    """FLOPs of one `Run.trainer.step()`: total and per update (sum over its calls)."""
    from flexae.devices import resolve_device
    from flexae.app.train import Run

    cfg = make_config(model, dataset, batch_size, threads)
    data = random_dataset(dataset, max(1024, 4 * batch_size))
    totals: dict[str, int] = {}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="flexae-flops-") as tmp:
        run = Run(cfg, Path(tmp), resolve_device("cpu"), data)
        run.model.train()
        _count_updates(run.trainer, totals, calls)
        penalty = _plain_relu_in_penalty() if dead_branches else contextlib.nullcontext()
        with penalty, flop_counter() as step_counter:
            run.trainer.step()
    total = step_counter.get_total_flops()
    return {"model": model, "dataset": dataset, "batch_size": batch_size, "dead_branches": dead_branches,
            "gflop": total / 1e9, "updates": {name: {"calls": calls[name], "gflop": totals[name] / 1e9}
                                             for name in UPDATES if name in totals},
            "other_gflop": (total - sum(totals.values())) / 1e9}


def count_script(path: str, batch_size: int) -> float:
    """GFLOP of one iteration of a script run as `PATH --steps N --batch B` (N = 2 minus N = 1)."""
    def run(steps: int) -> int:
        argv = sys.argv
        sys.argv = [path, "--steps", str(steps), "--batch", str(batch_size)]
        try:
            with flop_counter() as counter, contextlib.redirect_stdout(None):
                runpy.run_path(path, run_name="__main__")
        finally:
            sys.argv = argv
            torch.set_default_device(None)  # the yardstick sets a default device
        return counter.get_total_flops()

    return (run(2) - run(1)) / 1e9


def count_inception() -> float:
    """GFLOP of the FID Inception network's forward pass on one (1, 3, 299, 299) image."""
    from flexae.metrics.inception import FIDInceptionV3

    net = FIDInceptionV3().eval()
    with torch.no_grad(), flop_counter() as counter:
        net(torch.zeros(1, 3, 299, 299))
    return counter.get_total_flops() / 1e9


def print_table(rows: list[dict]) -> None:
    print("| networks | model | batch | update | calls | GFLOP (all calls) | share |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        label = row["model"] + (" (dead branches)" if row["dead_branches"] else "")
        for name, u in row["updates"].items():
            share = 100 * u["gflop"] / row["gflop"]
            print(f"| {row['dataset']} | {label} | {row['batch_size']} | {name} | {u['calls']} "
                  f"| {u['gflop']:.1f} | {share:.0f}% |")
        print(f"| {row['dataset']} | {label} | {row['batch_size']} | other | | {row['other_gflop']:.1f} | |")
        print(f"| {row['dataset']} | {label} | {row['batch_size']} | **iteration** | | **{row['gflop']:.1f}** | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="flexae-sr,flexae,wae")
    p.add_argument("--datasets", default="mnist")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--dead-branches", action="store_true",
                   help="Also count FlexAE-SR with plain ReLU in the penalty's critic pass (the step before that change).")
    p.add_argument("--naive", default=None, help="Also count one iteration of this single-file script.")
    p.add_argument("--inception", action="store_true", help="Also count the FID Inception network per image.")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: as flexae train).")
    p.add_argument("--json", action="store_true", help="Print one JSON object per row instead of the table.")
    args = p.parse_args()

    models = [m for m in args.models.split(",") if m]  # --models '' counts no training step
    rows = [count_step(m, d, args.batch_size, threads=args.threads) for d in args.datasets.split(",") for m in models]
    if args.dead_branches:
        rows += [count_step("flexae-sr", d, args.batch_size, dead_branches=True, threads=args.threads) for d in args.datasets.split(",")]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    elif rows:
        print_table(rows)
    if args.naive:
        print(f"\nnaive script {Path(args.naive).name}: {count_script(args.naive, args.batch_size):.1f} GFLOP per iteration")
    if args.inception:
        print(f"\nFID Inception (pool3), one 299 x 299 image: {count_inception():.2f} GFLOP")
    print(f"\ntorch {torch.__version__}; FLOPs counted by torch.utils.flop_counter.FlopCounterMode")


if __name__ == "__main__":
    main()
