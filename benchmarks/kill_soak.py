"""Kill soak: SIGKILL flexae at random moments, run the same command again, and check that the
final state is identical to an uninterrupted run and that no temporary file is left behind.

    python benchmarks/kill_soak.py --kills 20 --seed 0      # prints one line per kill and a summary

The kills are spread over four commands on tiny CPU runs: `flexae train` (synthetic-5d, a
checkpoint every 2 iterations, so many kills land while checkpoint.pt is being written; the script
counts those), `flexae fit-sampler` of an ae-gmm run (its ex-post GMM fit), `flexae fit-prior`
of a wae run, and `flexae eval` (FID, n = 30) of an ae-gmm run on 16 x 16 images of an npy file,
with its own Inception feature cache, which is checked for temporaries too. "Identical" means every tensor of checkpoint.pt (weights, optimizer states, RNG),
sampler.pt or prior.pt equal bit for bit to the uninterrupted run's, and eval.json equal to it. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TRAIN = ["--dataset", "synthetic-5d", "--latent-dim", "8", "--seed", "3", "--quiet",
         "--set", "train.checkpoint_every=2", "--set", "train.eval_every=0", "--set", "train.log_every=1",
         "--set", "train.eval_samples=50", "--set", "train.cpu_threads=1"]


EVAL = ["eval", "--n", "30", "--metrics", "fid", "--quiet"]
CACHE_ENV: dict[str, str] = {}  # FLEXAE_CACHE_DIR of every command: the soak's own feature cache


def flexae(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flexae", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **CACHE_ENV})


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")


def tensors(obj, prefix=""):
    """Every tensor of a loaded checkpoint / sampler / prior file, by path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from tensors(value, f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from tensors(value, f"{prefix}/{i}")


def same_file(a: Path, b: Path) -> bool:
    sa, sb = (dict(tensors(torch.load(p, map_location="cpu", weights_only=True))) for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def same_json(a: Path, b: Path) -> bool:
    """eval.json files equal apart from the run folder's own path."""
    ja, jb = (json.loads(p.read_text()) for p in (a, b))
    ja.pop("run", None), jb.pop("run", None)
    return ja == jb


def temporaries(run: Path) -> list[Path]:
    folders = [run, *(Path(d) for d in CACHE_ENV.values())]
    return sorted(p for folder in folders for p in folder.rglob("*.tmp"))


def kill_once(command: list, run: Path, rng: random.Random, watch: str, max_wait: float) -> bool:
    """Start `command`, SIGKILL it after a random delay (sooner if `watch` shows up as a temporary
    file, to land inside a write); returns whether a temporary of `watch` existed at the kill."""
    proc = flexae(*command)
    deadline = time.monotonic() + rng.uniform(0.5, max_wait)
    in_write = False
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(watch) for p in temporaries(run)) and rng.random() < 0.5:
            in_write = True
            break
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=900)
    return in_write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40, help="Training iterations of the train runs.")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="flexae-soak-"))
    CACHE_ENV["FLEXAE_CACHE_DIR"] = str(root / "cache")
    failures, in_writes = 0, 0
    try:
        print(f"reference runs in {root}", flush=True)
        images = root / "images.npy"  # 300 random 16 x 16 greyscale images: 30 of them held out as test
        np.save(images, (np.random.default_rng(0).random((300, 16, 16)) * 255).astype(np.uint8))
        finish(flexae("train", "--model", "ae-gmm", "--dataset", f"npy:{images}", "--steps", 2, "--seed", 3,
                      "--quiet", "--out", root / "base-eval", "--set", "train.cpu_threads=1",
                      "--set", "model.options.expost_gmm_components=2"))
        shutil.copytree(root / "base-eval", root / "ref-eval")
        finish(flexae(EVAL[0], root / "ref-eval", *EVAL[1:]))
        finish(flexae("train", "--model", "flexae", "--steps", args.steps, "--out", root / "ref-train", *TRAIN))
        for model, sidecar, fit in (("ae-gmm", "sampler.pt", ["fit-sampler", "--quiet"]),
                                    ("wae", "prior.pt", ["fit-prior", "--steps", "300", "--quiet"])):
            extra = ["--set", "model.options.expost_gmm_components=10"] if model == "ae-gmm" else []
            finish(flexae("train", "--model", model, "--steps", 6, "--out", root / f"base-{model}", *TRAIN, *extra))
            shutil.copytree(root / f"base-{model}", root / f"ref-{model}")
            finish(flexae(fit[0], root / f"ref-{model}", *fit[1:]))
        kinds = ["train"] * (args.kills - 3 * (args.kills // 5)) + ["fit-sampler", "fit-prior", "eval"] * (args.kills // 5)
        rng.shuffle(kinds)
        state = {}
        for i, kind in enumerate(kinds, 1):
            if kind == "train":
                run = root / f"train-{i}"
                in_write = kill_once(["train", "--model", "flexae", "--steps", args.steps, "--out", run, *TRAIN],
                                     run, rng, "checkpoint.pt", 12.0)
                again = (["train", "--resume", run, "--quiet"] if (run / "checkpoint.pt").is_file() else
                         ["train", "--model", "flexae", "--steps", args.steps, "--out", run, "--overwrite", *TRAIN])
                finish(flexae(*again))
                ok = same_file(run / "checkpoint.pt", root / "ref-train" / "checkpoint.pt")
            elif kind == "eval":
                run = root / f"eval-{i}"
                shutil.copytree(root / "base-eval", run)
                in_write = kill_once([EVAL[0], run, *EVAL[1:]], run, rng, "eval", 20.0)
                finish(flexae(EVAL[0], run, *EVAL[1:]))
                ok = same_json(run / "eval.json", root / "ref-eval" / "eval.json")
            else:
                model, sidecar, fit = (("ae-gmm", "sampler.pt", ["fit-sampler", "--quiet"])
                                       if kind == "fit-sampler" else
                                       ("wae", "prior.pt", ["fit-prior", "--steps", "300", "--quiet"]))
                run = root / f"{kind}-{i}"
                shutil.copytree(root / f"base-{model}", run)
                in_write = kill_once([fit[0], run, *fit[1:]], run, rng, sidecar, 8.0)
                finish(flexae(fit[0], run, *fit[1:]))
                ok = same_file(run / sidecar, root / f"ref-{model}" / sidecar)
            left = temporaries(run)
            ok = ok and not left
            failures += not ok
            in_writes += in_write
            state[kind] = state.get(kind, 0) + 1
            print(f"kill {i:2d} {kind:11s} {'during a write' if in_write else 'elsewhere     '} "
                  f"{'identical' if ok else 'DIFFERENT'}{'' if not left else f' (left {len(left)} *.tmp)'}",
                  flush=True)
        print(f"{len(kinds)} kills ({', '.join(f'{n} {k}' for k, n in state.items())}; {in_writes} during a "
              f"file write): {len(kinds) - failures} identical to the uninterrupted run with no temporary file left, "
              f"{failures} not")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
