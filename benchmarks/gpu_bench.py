"""GPU speed of the training step, eager vs CUDA-graphed, per precision, with the yardstick and
the real loop timed in the same process; and a mixed-precision quality check. Prints Markdown
tables and writes everything to OUT/gpu_bench.json. Run by benchmarks/gpu.sh (one command).

    python benchmarks/gpu_bench.py --out DIR [--naive PATH] [--data-dir DIR] [--quick]
        [--quality-steps N] [--loop-steps N]

1. Step: `flexae.bench.bench_train_step` (the real training step, random data already on the
   GPU) for FlexAE-SR and WAE on the MNIST (28x28, m = 20) and CelebA (64x64, m = 64) networks,
   batch 128, fp32 / tf32 / bf16 (+ fp16 on MNIST), CUDA graphs off and on.
2. Yardstick: the naive single-file transcription of one FlexAE-SR MNIST iteration (`--naive`,
   fp32 and bf16), so the speed-up is a ratio measured on the same machine at the same time.
3. Where the time goes: a torch.profiler trace of eager FlexAE-SR MNIST fp32 iterations, the
   sum of GPU kernel time per iteration (what a graph replay cannot go below) and the top kernels.
4. Loop: `flexae train` (the real loop, real MNIST from --data-dir) for --loop-steps iterations
   graphed; ms per iteration from the log's cumulative time between the first and last log line.
5. Quality (skipped with --quick): FlexAE-SR MNIST trained --quality-steps iterations in fp32, in
   bf16, and in fp32 with train.batchnorm_stats=authors, same seed; final losses side by side and
   5000 eval-mode samples of each written as OUT/samples_{fp32,bf16,bn-authors}.npz for
   `flexae metrics fid OUT/samples_fp32.npz mnist:test --n 2048` on a machine with the Inception
   weights (fp32 vs bf16: mixed precision; fp32 vs bn-authors: issue 19's BatchNorm measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from flexae.bench import bench_train_step
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import DEFAULT_LATENT_DIM
from flexae.files import read_jsonl


# --smoke: the whole script on the CPU at toy sizes, to check the script itself (no measurement).
SMOKE = {"on": False}


def device() -> str:
    return "cpu" if SMOKE["on"] else "cuda"


def step_config(model: str, dataset: str, precision: str, graphs: str, tf32: bool = False) -> RunConfig:
    cfg = RunConfig(ModelConfig(name=model, latent_dim=DEFAULT_LATENT_DIM[dataset]),
                    train=TrainConfig(dataset=dataset, batch_size=8 if SMOKE["on"] else 128, device=device(),
                                      precision=precision, cuda_graphs="off" if SMOKE["on"] else graphs, tf32=tf32))
    if SMOKE["on"]:
        cfg.optim.critic_steps = 1
    return cfg


def step_table(quick: bool) -> list[dict]:
    rows = []
    datasets = ("mnist",) if quick or SMOKE["on"] else ("mnist", "celeba")
    for dataset in datasets:
        for model in ("flexae-sr", "wae"):
            for precision, tf32 in (("fp32", False), ("fp32", True), ("bf16", False), ("fp16", False)):
                if precision == "fp16" and (dataset != "mnist" or SMOKE["on"]):
                    continue
                row = {"model": model, "dataset": dataset, "precision": "tf32" if tf32 else precision}
                for graphs in ("off", "on"):
                    steps = 1 if SMOKE["on"] else 15 if graphs == "off" else 50
                    try:
                        result = bench_train_step(step_config(model, dataset, precision, graphs, tf32),
                                                  steps=steps, warmup=0 if SMOKE["on"] else 3)
                        row[f"graphs_{graphs}_ms"] = result["ms_per_iter"]
                        row[f"graphs_{graphs}_captured"] = result["cuda_graphs"]
                    except Exception as exc:  # noqa: BLE001 - a failing cell is reported, the table goes on
                        row[f"graphs_{graphs}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    torch.cuda.empty_cache()
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def _sync() -> None:
    if device() == "cuda":
        torch.cuda.synchronize()


def naive_times(path: str | None) -> dict:
    if not path or not Path(path).is_file():
        return {"error": f"naive transcription not found at {path!r}"}
    out = {}
    for flag, name in (([], "fp32"), (["--bf16"], "bf16")):
        cmd = [sys.executable, path, "--device", device(), "--steps", "1" if SMOKE["on"] else "30", *flag]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            out[name] = {"error": done.stderr.strip().splitlines()[-1:]}
            continue
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])["ms_per_iter"]
    return out


def kernel_profile() -> dict:
    """Sum of GPU kernel time per eager FlexAE-SR MNIST fp32 iteration, and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    from flexae.bench import random_dataset
    from flexae.app.train import Run

    cfg = step_config("flexae-sr", "mnist", "fp32", "off")
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(cfg, Path(tmp), torch.device(device()), random_dataset("mnist", 1024))
        run.model.train()
        iters = 1 if SMOKE["on"] else 5
        for _ in range(iters):
            run.trainer.step()
        _sync()
        activity = ProfilerActivity.CPU if SMOKE["on"] else ProfilerActivity.CUDA
        with profile(activities=[activity]) as prof:
            for _ in range(iters):
                run.trainer.step()
            _sync()
    time_of = (lambda e: e.cpu_time_total) if SMOKE["on"] else (lambda e: e.device_time_total)
    events = [e for e in prof.key_averages() if time_of(e) > 0 and (SMOKE["on"] or e.device_type.name == "CUDA")]
    total_us = sum(time_of(e) for e in events)
    top = sorted(events, key=time_of, reverse=True)[:12]
    launches = sum(e.count for e in events)
    return {"gpu_kernel_ms_per_iter": round(total_us / 1000 / iters, 2),
            "kernel_launches_per_iter": launches // iters,
            "top": [{"kernel": e.key[:90], "ms_per_iter": round(time_of(e) / 1000 / iters, 3),
                     "calls_per_iter": e.count // iters} for e in top]}


def run_loop(out: Path, steps: int, data_dir: str | None, precision: str = "fp32",
             model: str = "flexae-sr", settings: tuple[str, ...] = ()) -> dict:
    """`flexae train` as a user runs it (a subprocess, progress bar off); ms/iter from the log.
    `settings`: extra KEY=VALUE config overrides (--set)."""
    cmd = [sys.executable, "-m", "flexae", "train", "--model", model, "--dataset", "mnist",
           "--steps", str(steps), "--device", device(), "--precision", precision, "--out", str(out),
           "--overwrite", "--quiet", "--set", f"train.log_every={max(1, min(50, steps // 4))}"]
    for setting in settings:
        cmd += ["--set", setting]
    if SMOKE["on"]:
        cmd += ["--batch-size", "8", "--set", "optim.critic_steps=1"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1], "cmd": " ".join(cmd)}
    losses = [r for r in read_jsonl(out / "log.jsonl") if r.get("kind") == "losses"]
    first, last = losses[0], losses[-1]
    ms = 1000 * (last["time"] - first["time"]) / (last["step"] - first["step"])
    return {"ms_per_iter": round(ms, 2), "steps": steps, "wall_s": round(wall, 1), "final": last}


def quality(out: Path, steps: int, data_dir: str | None) -> dict:
    from flexae.grids import save_npz, to_uint8
    from flexae.inference import sample
    from flexae.app.load import load_run

    result = {}
    for name, (precision, settings, _) in QUALITY_RUNS.items():
        run_dir = out / f"quality_{name}"
        result[name] = run_loop(run_dir, steps, data_dir, precision, settings=settings)
        if "error" in result[name]:
            continue
        model, _ = load_run(run_dir, device=device())  # eval mode: the running BatchNorm statistics
        save_npz(out / f"samples_{name}.npz", to_uint8(sample(model, 16 if SMOKE["on"] else 5000, seed=0)))  # as `flexae sample` writes
    return result


# The quality runs: name -> (precision, --set overrides, graphed). fp32 vs bf16 is the mixed-precision
# check; fp32 vs bn-authors is issue 19's train.batchnorm_stats measurement (own vs the authors'
# graph's BatchNorm refreshes, equal iterations, same seed), scored on a CPU from the samples it
# writes. batchnorm_stats=authors trains eagerly (its draws are seeded on the host: graph_unsafe).
QUALITY_RUNS = {"fp32": ("fp32", (), True), "bf16": ("bf16", (), True),
                "bn-authors": ("fp32", ("train.batchnorm_stats=authors",), False)}


def quality_steps(report: dict, wanted: int, seconds_left: float) -> int:
    """As many of `wanted` iterations as the quality runs can do in `seconds_left` (30 s of start-up
    and sampling each), at the measured FlexAE-SR MNIST speeds: graphed (the slower of fp32 and
    bf16) for the graphed runs, eager fp32 for the run that trains eagerly (bn-authors)."""
    rows = {r["precision"]: r for r in report["steps"] if r["model"] == "flexae-sr" and r["dataset"] == "mnist"}
    graphed = [rows.get(p, {}).get("graphs_on_ms") for p in ("fp32", "bf16")]
    eager = rows.get("fp32", {}).get("graphs_off_ms")
    if not all(graphed) or not eager:
        return 0
    ms_per_step = sum(max(graphed) if graphs else eager for _, _, graphs in QUALITY_RUNS.values())
    return max(0, int(min(wanted, (seconds_left - 30 * len(QUALITY_RUNS)) * 1000 / ms_per_step)))


def print_tables(report: dict) -> None:
    naive = report["naive"]
    print(f"\n## Step time on {report['gpu']} (torch {report['torch']}), ms/iter, batch 128")
    print(f"naive transcription (FlexAE-SR MNIST): fp32 {naive.get('fp32')}, bf16 {naive.get('bf16')}\n")
    print("| model | data | precision | eager | graphed | graphed speed-up | vs naive fp32 |")
    print("|---|---|---|---|---|---|---|")
    base = naive.get("fp32") if isinstance(naive.get("fp32"), (int, float)) else None
    for r in report["steps"]:
        eager, graphed = r.get("graphs_off_ms"), r.get("graphs_on_ms")
        speedup = f"{eager / graphed:.1f}x" if eager and graphed else "-"
        ratio = f"{base / graphed:.1f}x" if base and graphed and r["model"] == "flexae-sr" and r["dataset"] == "mnist" else "-"
        note = "" if r.get("graphs_on_captured", True) else " (not captured)"
        print(f"| {r['model']} | {r['dataset']} | {r['precision']} | {eager or r.get('graphs_off_error')} | "
              f"{graphed or r.get('graphs_on_error')}{note} | {speedup} | {ratio} |")
    prof = report.get("profile", {})
    if prof:
        print(f"\nEager FlexAE-SR MNIST fp32: {prof['gpu_kernel_ms_per_iter']} ms of GPU kernels per iteration, "
              f"{prof['kernel_launches_per_iter']} launches; top kernels:")
        for k in prof["top"]:
            print(f"  {k['ms_per_iter']:8.3f} ms  x{k['calls_per_iter']:<4d} {k['kernel']}")
    loop = report.get("loop", {})
    bench = next((r.get("graphs_on_ms") for r in report["steps"] if (r["model"], r["dataset"], r["precision"])
                  == ("flexae-sr", "mnist", "fp32")), None)
    ratio = f", {loop['ms_per_iter'] / bench:.2f}x the bench's {bench} ms" if bench and "ms_per_iter" in loop else ""
    print(f"\nLoop (flexae train, FlexAE-SR, graphed, fp32, real MNIST): {loop.get('ms_per_iter')} ms/iter{ratio}; {loop}")
    if report.get("quality"):
        for precision, q in report["quality"].items():
            print(f"quality {precision}: {q}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--naive", default=None, help="the naive transcription script (FlexAE-SR, MNIST)")
    p.add_argument("--data-dir", default=os.environ.get("FLEXAE_DATA_DIR"), help="folder with mnist/")
    p.add_argument("--quick", action="store_true", help="MNIST only, no quality runs")
    p.add_argument("--loop-steps", type=int, default=1200,
                   help="with the defaults (checkpoint and grids every 1000) one of each falls inside the timed window")
    p.add_argument("--quality-steps", type=int, default=3000, help="at most; fewer if --budget-s would be passed")
    p.add_argument("--budget-s", type=float, default=400, help="wall time the whole script may take")
    p.add_argument("--smoke", action="store_true", help="check this script on the CPU at toy sizes")
    args = p.parse_args()
    SMOKE["on"] = args.smoke
    if args.smoke:
        args.loop_steps = 4
    elif not torch.cuda.is_available():
        sys.exit("gpu_bench.py needs a CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"gpu": "CPU (smoke test)" if args.smoke else torch.cuda.get_device_name(),
                    "torch": torch.__version__}
    t0 = time.perf_counter()
    report["naive"] = naive_times(args.naive)
    print("naive:", report["naive"], flush=True)
    report["steps"] = step_table(args.quick)
    report["profile"] = kernel_profile()
    report["loop"] = run_loop(args.out / "loop", args.loop_steps, args.data_dir)
    print("loop:", report["loop"], flush=True)
    if not args.quick:
        left = args.budget_s - (time.perf_counter() - t0)
        steps = 4 if args.smoke else quality_steps(report, args.quality_steps, left)
        enough = args.smoke or steps >= 200
        report["quality"] = quality(args.out, steps, args.data_dir) if enough else {"skipped": "no time left"}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)


if __name__ == "__main__":
    main()
