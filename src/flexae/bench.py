"""`flexae bench train-step`: wall time of full Algorithm-1 iterations of the real training step.

The run is built by `flexae.app.train.Run`, the object `flexae train` trains (same seeding,
threads, model, batch source, trainer, precision and memory format), on random data of the data
set's shape already on the device, so no disk I/O is timed. Each timed call is
`Run.trainer.step()`, exactly as the training loop calls it, i.e. one complete iteration: the AE
update, `critic_steps` x (critic [+ smoothing-critic]) updates, then AE_Reg, Gen and Enc.

Timing: `warmup` untimed iterations (allocator, oneDNN kernel selection, CUDA lazy init), then
`steps` timed ones. `ms_per_iter` is their mean; on the CPU each iteration is also timed alone
and the median reported (robust when other processes share the cores). With `profile=True` each
update method is timed separately (a device sync around each on accelerators, so the total is
then slightly higher than without profiling).

CUDA graphs (`train.cuda_graphs`, on by default for CUDA): the graphed trainer's own warm-up and
capture iterations run before the `warmup` ones, so only replays are timed. Profiling needs the
update methods to run one by one, so `profile=True` times the eager step (`cuda_graphs: false` in
the result says which was timed).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from flexae.config import RunConfig
from flexae.data import Dataset, data_shape

# Update methods of AdversarialTrainer, as named in the per-update breakdown.
UPDATES = ("ae", "critic", "reg", "ae_reg", "gen", "enc")


def random_dataset(dataset: str, n_train: int, seed: int = 0) -> Dataset:
    """Random stand-in for `dataset`: uint8 images (N, C, H, W) or float points (N, 128) in [-1, 1],
    stored like the real data so the batch source does the same work (index, convert to float)."""
    shape = data_shape(dataset)
    gen = torch.Generator().manual_seed(seed)
    if len(shape) == 1:
        train = torch.rand((n_train, *shape), generator=gen) * 2 - 1
        test = torch.rand((256, *shape), generator=gen) * 2 - 1
    else:
        train = torch.randint(0, 256, (n_train, *shape), generator=gen, dtype=torch.uint8)
        test = torch.randint(0, 256, (64, *shape), generator=gen, dtype=torch.uint8)
    return Dataset(dataset, train, test, {})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time_updates(trainer: Any, device: torch.device, totals: dict[str, float]) -> None:
    """Replace the trainer's update methods (instance attributes shadow the class's) by timed
    wrappers that add their wall time to `totals[name]`."""
    for name in UPDATES:
        method = getattr(trainer, f"update_{name}", None)
        if method is None:
            continue

        def timed(*args, _method=method, _name=name, **kwargs):
            _synchronize(device)
            start = time.perf_counter()
            result = _method(*args, **kwargs)
            _synchronize(device)
            totals[_name] += time.perf_counter() - start
            return result

        setattr(trainer, f"update_{name}", timed)


def bench_train_step(cfg: RunConfig, steps: int = 10, warmup: int = 2, profile: bool = False,
                     n_train: int | None = None) -> dict[str, Any]:
    """Time `steps` iterations of the training step of `cfg` after `warmup` ones; returns a
    JSON-ready dict (see the module docstring)."""
    from flexae.devices import resolve_device
    from flexae.training.graphs import GraphedTrainer
    from flexae.app.train import Run
    from flexae.training.precision import resolve_channels_last
    from flexae.validation import validate_config

    validate_config(cfg)
    if profile:
        cfg.train.cuda_graphs = "off"  # the per-update timers need the eager step
    device = resolve_device(cfg.train.device)
    data = random_dataset(cfg.train.dataset, n_train or max(1024, 4 * cfg.train.batch_size))
    with tempfile.TemporaryDirectory(prefix="flexae-bench-") as tmp:
        run = Run(cfg, Path(tmp), device, data)  # writes nothing until asked to
        run.model.train()
        step = run.trainer.step
        graphed = isinstance(run.trainer, GraphedTrainer)
        for _ in range(warmup + (run.trainer.warmup + 1 if graphed else 0)):  # + its warm-up and capture
            step()
        graphed = graphed and run.trainer.captured  # False if the capture failed (and warned)
        totals: dict[str, float] = defaultdict(float)
        if profile:
            _time_updates(run.trainer, device, totals)
        per_iter = []
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            if device.type == "cpu":  # free on the CPU; on accelerators it would add a sync per step
                per_iter.append(time.perf_counter() - t0)
        _synchronize(device)
        elapsed = time.perf_counter() - start

    ms = 1000 * elapsed / steps
    result: dict[str, Any] = {
        "ms_per_iter": round(ms, 1),
        "ms_median": round(1000 * statistics.median(per_iter), 1) if per_iter else None,
        "samples_per_s": round(cfg.train.batch_size * 1000 / ms, 1),
        "model": cfg.model.name, "dataset": cfg.train.dataset, "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision, "device": str(device), "threads": torch.get_num_threads(),
        "channels_last": resolve_channels_last(cfg.train.channels_last, device),
        "cuda_graphs": graphed, "tf32": bool(cfg.train.tf32 and device.type == "cuda"),
        "steps": steps, "warmup": warmup, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": str(torch.__version__),
    }
    if profile:
        breakdown = {name: round(1000 * totals[name] / steps, 1) for name in UPDATES if name in totals}
        breakdown["other"] = round(ms - sum(breakdown.values()), 1)
        result["profile_ms"] = breakdown
    return result


