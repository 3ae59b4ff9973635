"""Crash safety: `flexae train` killed with SIGKILL at random moments never leaves its folder without
a loadable checkpoint (once the first was written), `--resume` continues from it, and the finished
run is bit-identical to an uninterrupted one (CPU, same seed)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flexae.files import read_jsonl
from flexae.runs.checkpoint import load_checkpoint, nonfinite_tensors

# Small and fast: a checkpoint every 5 iterations, a log line every iteration (the test watches
# it to kill mid-run), only the cheap start and end evaluations.
COMMON = ["--dataset", "synthetic-5d", "--latent-dim", "8", "--seed", "11", "--quiet",
          "--set", "train.checkpoint_every=5", "--set", "train.eval_every=0",
          "--set", "train.log_every=1", "--set", "train.eval_samples=50"]
TIMEOUT = 300  # seconds for one process; generous because the test machine may be shared


def _flexae(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flexae", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    return err


def _losses_logged(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    return [r for r in read_jsonl(path) if "loss_ae" in r] if path.exists() else []


def _logged_step(run: Path) -> int:
    """The last iteration whose losses are in log.jsonl (0 if none yet)."""
    return max((r["step"] for r in _losses_logged(run)), default=0)


def _iteration_seconds(run: Path) -> float:
    """One iteration's wall time, from the last two logged iterations (a guess before there are two).

    The kill waits a random fraction of this after its target step, so it lands anywhere inside an
    iteration (a checkpoint save included) on a fast machine as on a slow one.
    """
    records = _losses_logged(run)[-2:]
    if len(records) < 2:
        return 0.05
    (a, b) = records
    seconds, iterations = b["time"] - a["time"], b["step"] - a["step"]
    # A resumed process restarts its clock: across that seam the difference means nothing.
    return seconds / iterations if seconds > 0 and iterations > 0 else 0.05


def _check_folder(run: Path, had_checkpoint: bool) -> int | None:
    """The folder invariants after a kill; returns the checkpoint's step (None if there is none)."""
    if (run / "config.json").exists():
        json.loads((run / "config.json").read_text())  # complete, never half-written
    if (run / "log.jsonl").exists():
        read_jsonl(run / "log.jsonl")  # a torn last line is tolerated, nothing else
    if not (run / "checkpoint.pt").exists():
        assert not had_checkpoint, "the checkpoint disappeared"
        return None
    state = load_checkpoint(run / "checkpoint.pt")
    assert not nonfinite_tensors(state["model"])
    return state["step"]


def _kill_and_resume(tmp_path: Path, steps: int, kills: int, seed: int) -> Path:
    """Train to `steps`, SIGKILLing the process `kills` times at random moments and resuming."""
    rng = random.Random(seed)
    run = tmp_path / "killed"
    proc = _flexae("--steps", steps, "--out", run, *COMMON)
    had_checkpoint, last_kill_step, checkpoint_steps = False, 0, []
    # Kill points spread over the first half of the run, each past the previous one, so every resume
    # makes progress and the run never ends before the kill: the second half (at least 10 iterations
    # and the end evaluation) is the margin for this process being slow to notice its target step.
    span = steps // 2
    windows = [(1 + i * span // kills, (i + 1) * span // kills) for i in range(kills)]
    for low, high in windows:
        target = rng.randint(max(low, last_kill_step + 1), max(high, last_kill_step + 1))
        deadline = time.monotonic() + TIMEOUT
        while _logged_step(run) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "training made no progress"
            if (run / "checkpoint.pt").exists():  # loadable at any moment, also while being replaced
                had_checkpoint = True
                load_checkpoint(run / "checkpoint.pt")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5) * _iteration_seconds(run))  # anywhere in an iteration or save
        assert proc.poll() is None, (f"the run ended before the kill (target step {target}, logged "
                                     f"{_logged_step(run)} of {steps}): {proc.communicate()[1]}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
        last_kill_step = _logged_step(run)
        step = _check_folder(run, had_checkpoint)
        had_checkpoint = had_checkpoint or step is not None
        checkpoint_steps.append(step)
        if step is None:  # killed before the first checkpoint: start again
            proc = _flexae("--steps", steps, "--out", run, "--overwrite", *COMMON)
        else:
            proc = _flexae("--resume", run, "--steps", steps, "--quiet")
    _finish(proc)
    assert any(s is not None for s in checkpoint_steps), checkpoint_steps
    return run


def _assert_identical(a: Path, b: Path) -> None:
    sa, sb = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (a, b))
    assert sa["step"] == sb["step"]
    assert sa["model"].keys() == sb["model"].keys()
    for name, tensor in sa["model"].items():
        assert torch.equal(tensor, sb["model"][name]), name
    for name, opt in sa["optimizers"].items():
        for key, slot in opt["state"].items():
            for field, value in slot.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb["optimizers"][name]["state"][key][field]))
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])


def _losses_by_step(run: Path) -> dict[int, dict]:
    records = [r for r in read_jsonl(run / "log.jsonl") if "loss_ae" in r]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), "a step is logged twice or out of order"
    return {r["step"]: {k: v for k, v in r.items() if k.startswith(("loss", "w_"))} for r in records}


def _kill_test(tmp_path: Path, steps: int, kills: int) -> None:
    seed = int(os.environ.get("FLEXAE_KILL_SEED", time.time_ns() % 100_000))
    reference = _flexae("--steps", steps, "--out", tmp_path / "reference", *COMMON)  # runs alongside
    try:
        run = _kill_and_resume(tmp_path, steps, kills, seed)
        _finish(reference)
    finally:
        reference.kill()
    try:
        _assert_identical(run, tmp_path / "reference")
        # The resumed run's log holds each iteration once, with the uninterrupted run's losses.
        assert _losses_by_step(run) == _losses_by_step(tmp_path / "reference")
        assert sorted(_losses_by_step(run)) == list(range(1, steps + 1))
        assert json.loads((run / "metrics.json").read_text())["step"] == steps
    except AssertionError as exc:
        raise AssertionError(f"{exc} (rerun with FLEXAE_KILL_SEED={seed})") from exc


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    # Kills in iterations 1-20 of 40: before and after the first checkpoint (step 5), the second one
    # always past a checkpoint, so one resume is from a checkpoint.
    _kill_test(tmp_path, steps=40, kills=2)


@pytest.mark.slow
def test_sigkill_many_times_then_resume_matches_uninterrupted_run(tmp_path):
    _kill_test(tmp_path, steps=120, kills=6)


_WRITER = """
import sys, torch
from pathlib import Path
from flexae.runs.checkpoint import save_checkpoint
path, i = Path(sys.argv[1]), 0
while True:  # rewrite an 8 MB checkpoint as fast as possible, each with a different step
    i += 1
    save_checkpoint(path, {"step": i, "model": {"w": torch.full((2_000_000,), float(i))}})
    print(i, flush=True)
"""


def test_sigkill_during_checkpoint_writes_never_leaves_a_damaged_file(tmp_path):
    """A process that does nothing but save is killed at random moments (most land mid-write): the
    checkpoint is always complete, and is the last one whose save returned or the one after it."""
    rng = random.Random(time.time_ns())
    path = tmp_path / "checkpoint.pt"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        done = [int(proc.stdout.readline())]  # at least one complete save
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=TIMEOUT)
        done += [int(line) for line in out.split()]
        state = torch.load(path, weights_only=True)
        assert state["step"] in (done[-1], done[-1] + 1)
        assert torch.equal(state["model"]["w"], torch.full((2_000_000,), float(state["step"])))
