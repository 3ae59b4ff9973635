"""GPU speed of the training step, eager vs CUDA-graphed, per precision, with the yardstick and
the real loop timed in the same process; and a mixed-precision quality check. Prints Markdown
tables and writes everything to OUT/gpu_bench.json. Run by benchmarks/gpu.sh (one command).

    python benchmarks/gpu_bench.py --out DIR [--naive PATH] [--data-dir DIR] [--quick]
        [--quality-steps N] [--loop-steps N] [--budget-s S] [--long-run DIR] [--keep-long-run]
        [--weights FILE.safetensors] [--smoke]

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
6. Long run: `flexae train --model flexae-sr --dataset mnist` (the default config: graphed, fp32)
   for as many iterations as the rest of --budget-s allows at phase 4's measured speed, leaving
   time for start-up, sampling and FID; skipped with "no time left" under 60 s. Into --long-run
   DIR (default OUT/long, removed at the end unless --keep-long-run): a DIR with a checkpoint is
   resumed (`flexae train --resume DIR --steps N`), so a second call continues it. Then 10k
   eval-mode samples (seed 0), OUT/long_samples.png (the first 64, 8x8) and OUT/long_losses.png
   (flexae.report's loss curves).
7. FID on the GPU with --weights (default .gpu/inception-fp16.safetensors, the compact weights
   `gpu.sh prepare` writes), fp32: the long run's 10k samples against the 10k MNIST test images in
   both modes (pytorch-fid, tf), and each quality run's 5000 samples against 5000 test images
   (pytorch-fid; as `flexae metrics fid OUT/samples_fp32.npz mnist:test --n 5000` draws them).
   The numbers are in gpu_bench.json ("long", "fid") and printed.

--smoke runs all of it on the CPU at toy sizes (3 iterations of the long run, FID at n = 64 and 16
with compact weights written from the installed offline file into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


# --- 6. The long run, and FID on the GPU -------------------------------------------------------

LONG_STARTUP_S = 45   # process start, data, graph capture, the last checkpoint (~480 MB)
SCORING_S = 90        # sampling 10k, Inception of samples and test in both modes, the quality samples
LONG_MIN_S = 60       # under this, the long run is skipped
LONG_SAMPLES = 10000  # the paper's FID n, scored against the whole MNIST test set
QUALITY_FID_N = 5000  # the quality runs' samples


def long_steps(report: dict, seconds_left: float) -> int:
    """New iterations of the long run that fit in `seconds_left`, at the real loop's graphed fp32
    speed (phase 4: the same command on the same data), after start-up and the scoring that follows."""
    ms = report.get("loop", {}).get("ms_per_iter")
    if not ms:
        ms = next((r.get("graphs_on_ms") for r in report["steps"] if (r["model"], r["dataset"], r["precision"])
                   == ("flexae-sr", "mnist", "fp32")), None)
    if not ms:
        return 0
    return max(0, int((seconds_left - LONG_STARTUP_S - SCORING_S) * 1000 / ms))


def steps_done(run_dir: Path) -> int:
    """The last logged iteration of a run folder, 0 for none. The run's last step always saves a
    checkpoint, so for a run that finished (every call of this phase) it is the checkpoint's step."""
    log = run_dir / "log.jsonl"
    steps = [r["step"] for r in read_jsonl(log) if r.get("kind") == "losses"] if log.is_file() else []
    return max(steps, default=0)


def train_long(run_dir: Path, new_steps: int, data_dir: str | None) -> dict:
    """`flexae train --model flexae-sr --dataset mnist` (the default config: graphed, fp32) for
    `new_steps` iterations into `run_dir`, or, where it holds a checkpoint, `flexae train --resume`
    of it for `new_steps` more."""
    done = steps_done(run_dir) if (run_dir / "checkpoint.pt").is_file() else 0
    if done:
        cmd = ["--resume", str(run_dir)]
    else:
        cmd = ["--model", "flexae-sr", "--dataset", "mnist", "--out", str(run_dir), "--overwrite"]
        if SMOKE["on"]:
            cmd += ["--batch-size", "8", "--set", "optim.critic_steps=1", "--set", "train.log_every=1"]
    cmd = [sys.executable, "-m", "flexae", "train", *cmd, "--steps", str(done + new_steps),
           "--device", device(), "--quiet"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    start = time.perf_counter()
    finished = subprocess.run(cmd, capture_output=True, text=True)
    result = {"resumed_from": done, "steps": done + new_steps, "wall_s": round(time.perf_counter() - start, 1)}
    if finished.returncode != 0:
        return {**result, "error": (finished.stderr.strip().splitlines() or ["?"])[-1], "cmd": " ".join(cmd)}
    losses = [r for r in read_jsonl(run_dir / "log.jsonl") if r.get("kind") == "losses"]
    return {**result, "final": losses[-1] if losses else None}


def long_pictures(run_dir: Path, out: Path, samples_path: Path) -> dict:
    """10k eval-mode samples (seed 0) as an .npz (for FID, not kept), their first 64 as an 8x8 grid,
    and the loss curves of the run (flexae.report's, as `flexae report` draws them)."""
    from flexae.app.load import load_run
    from flexae.grids import save_npz, to_uint8, write_images
    from flexae.inference import sample
    from flexae.report import curves_png, read_run

    model, _ = load_run(run_dir, device=device())
    images = sample(model, 64 if SMOKE["on"] else LONG_SAMPLES, seed=0)
    save_npz(samples_path, to_uint8(images))
    grid = write_images(out / "long_samples.png", images[:64], columns=8, overwrite=True)
    curves = curves_png([read_run(run_dir)], "losses", out / "long_losses.png")
    return {"grid": grid.name, "curves": curves.name if curves else None}


def score(weights: Path, entries: dict[str, tuple[Path, int, tuple[str, ...]]], data_dir: str | None) -> dict:
    """FID of each entry (name -> (samples .npz, n, modes)) against MNIST test with the weights
    file, on the GPU, fp32: n of the samples against n of the test set, drawn as
    `flexae metrics fid SAMPLES mnist:test --n N` draws them (seed 0). One extractor per mode, its
    feature cache in a temporary folder: the test set's features are computed once per mode and n."""
    import warnings

    from flexae.metrics.api import fid
    from flexae.metrics.inception import load_extractor
    from flexae.metrics.io import open_images_input

    def first_n(spec: str, n: int) -> torch.Tensor:
        images = open_images_input(spec, data_dir, "FID")
        return images.subset(min(n, len(images)), 0).load()

    results: dict = {name: {} for name in entries}
    with tempfile.TemporaryDirectory() as cache:
        for mode in ("pytorch-fid", "tf"):
            names = [name for name, (_, _, modes) in entries.items() if mode in modes]
            if not names:
                continue
            extractor = load_extractor(weights, device=device(), precision="fp32", mode=mode,  # type: ignore[arg-type]
                                       cache_dir=cache, progress=False)
            for name in names:
                path, n, _ = entries[name]
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # FID below n = 2048 warns: only the smoke test's toy n
                    value = fid(first_n(str(path), n), first_n("mnist:test", n), make_extractor=lambda: extractor)
                results[name][mode] = {**value, "seconds": round(time.perf_counter() - start, 1)}
                print(f"fid {name} {mode}: {value['fid']:.3f} (n {value['n_a']} vs {value['n_b']})", flush=True)
    return results


def long_phase(args: argparse.Namespace, report: dict, seconds_left: float) -> dict:
    """The longest FlexAE-SR MNIST run that fits the budget, its samples, grid and loss curves."""
    if seconds_left < LONG_MIN_S and not SMOKE["on"]:
        return {"skipped": f"no time left ({seconds_left:.0f} s of the budget, {LONG_MIN_S} s needed)"}
    new_steps = 3 if SMOKE["on"] else long_steps(report, seconds_left)
    if new_steps < 1:
        return {"skipped": f"no time left ({seconds_left:.0f} s: not one iteration after start-up and scoring)"}
    run_dir = args.long_run or args.out / "long"
    result = {"run_dir": str(run_dir), **train_long(run_dir, new_steps, args.data_dir)}
    print("long:", result, flush=True)
    if "error" not in result:
        try:
            result.update(long_pictures(run_dir, args.out, args.out / "long_samples.npz"))
        except Exception as exc:  # noqa: BLE001 - reported; the numbers so far still reach gpu_bench.json
            result["error"] = f"samples: {type(exc).__name__}: {str(exc)[:200]}"
    return result


def fid_phase(args: argparse.Namespace, report: dict) -> dict:
    """FID with the compact weights of the long run's samples (n = 10k, both modes) and of the
    quality runs' (n = 5000, pytorch-fid), so that nothing needs scoring elsewhere afterwards."""
    if args.weights is None or not args.weights.is_file():  # the long run's samples stay, to score elsewhere
        return {"skipped": f"no Inception weights at {args.weights} (write them with `gpu.sh prepare`)"}
    entries = {}
    long_samples = args.out / "long_samples.npz"
    if long_samples.is_file():
        entries["long"] = (long_samples, 64 if SMOKE["on"] else LONG_SAMPLES, ("pytorch-fid", "tf"))
    for name in QUALITY_RUNS:
        path = args.out / f"samples_{name}.npz"
        if path.is_file():
            entries[name] = (path, 16 if SMOKE["on"] else QUALITY_FID_N, ("pytorch-fid",))
    try:
        return score(args.weights, entries, args.data_dir)
    except Exception as exc:  # noqa: BLE001 - reported; the numbers so far still reach gpu_bench.json
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        long_samples.unlink(missing_ok=True)  # scored; the way back takes 8 files, the grid shows them


def smoke_compact_weights(folder: Path) -> Path | None:
    """Compact weights written from the installed offline file for the smoke test, None without it."""
    from flexae.metrics.inception import write_compact_weights
    from flexae.metrics.inception import torchscript_weights_path

    if torchscript_weights_path() is None:
        return None
    return Path(write_compact_weights(folder / "inception-fp16.safetensors")["out"])


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
    long = report.get("long", {})
    if long:
        state = long.get("skipped") or long.get("error") or f"{long.get('steps')} iterations, {long.get('wall_s')} s"
        print(f"\nLong run (FlexAE-SR MNIST, default config): {state}")
    for name, scores in report.get("fid", {}).items():
        if isinstance(scores, dict):
            cells = ", ".join(f"{mode} {v['fid']:.2f} (n {v['n_a']})" for mode, v in scores.items())
            print(f"FID {name} (compact weights, {report['gpu']}): {cells}")
        else:
            print(f"FID: {scores}")


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
    p.add_argument("--long-run", type=Path, default=None,
                   help="run folder of the long run [default: OUT/long]; one with a checkpoint is resumed")
    p.add_argument("--keep-long-run", action="store_true",
                   help="keep OUT/long (its checkpoint is ~480 MB, more than the way back takes)")
    p.add_argument("--weights", type=Path, default=Path(".gpu/inception-fp16.safetensors"),
                   help="Inception weights for FID on the GPU (the compact file of `gpu.sh prepare`)")
    p.add_argument("--smoke", action="store_true", help="check this script on the CPU at toy sizes")
    args = p.parse_args()
    SMOKE["on"] = args.smoke
    if args.smoke:
        args.loop_steps = 4
        smoke_weights = tempfile.TemporaryDirectory()  # compact weights of the installed offline file
        args.weights = smoke_compact_weights(Path(smoke_weights.name))
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
    report["long"] = long_phase(args, report, args.budget_s - (time.perf_counter() - t0))
    report["fid"] = fid_phase(args, report)
    if not args.keep_long_run and args.long_run is None:
        shutil.rmtree(args.out / "long", ignore_errors=True)  # its grid and curves are in OUT
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)


if __name__ == "__main__":
    main()
