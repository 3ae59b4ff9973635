"""Graceful stop on SIGINT/SIGTERM, and divergence detection with a real NaN (not a mock)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flexae.cli import main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import load_dataset
from flexae.files import read_jsonl
from flexae.runs.checkpoint import load_checkpoint, nonfinite_tensors
from flexae.training.divergence import DivergenceMonitor, TrainingDiverged
from flexae.app.train import Run

TIMEOUT = 300


def _logged_step(run: Path) -> int:
    path = run / "log.jsonl"
    steps = [r["step"] for r in read_jsonl(path) if "loss_ae" in r] if path.exists() else []
    return max(steps, default=0)


def _stop_with(sig: signal.Signals, run: Path, *args: str) -> subprocess.CompletedProcess:
    """Start `flexae train ...`, wait for a few logged iterations, send `sig`, wait for the exit."""
    proc = subprocess.Popen([sys.executable, "-m", "flexae", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # A background process may inherit SIGINT ignored; a terminal's would not.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    start_step = _logged_step(run)
    deadline = time.monotonic() + TIMEOUT
    while _logged_step(run) < start_step + 3:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigint_and_sigterm_stop_after_the_iteration_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    common = ["--quiet", "--set", "train.log_every=1", "--set", "train.eval_every=0",
              "--set", "train.eval_samples=50"]
    # Checkpoints would come only every 10,000 iterations: the one found is the stop's own.
    first = _stop_with(signal.SIGINT, run, "--latent-dim", "4", "--steps", "100000", "--out", str(run),
                       "--set", "train.checkpoint_every=10000", *common)
    assert first.returncode == 128 + signal.SIGINT, first.stderr  # 130: the run did not finish
    message = first.stderr.strip().splitlines()[-1]
    assert f"Resume with: flexae train --resume {run}" in message and "stopped by SIGINT" in message
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert 3 <= step < 100000 and f"at step {step} of 100000" in message
    last = read_jsonl(run / "log.jsonl")[-1]
    assert last == {"step": step, "event": "stopped", "signal": "SIGINT"}
    assert _logged_step(run) == step  # the iteration in progress was finished, none was started

    second = _stop_with(signal.SIGTERM, run, "--resume", str(run), "--quiet")
    assert second.returncode == 128 + signal.SIGTERM, second.stderr  # 143
    assert "stopped by SIGTERM" in second.stderr and f"--resume {run}" in second.stderr
    resumed = load_checkpoint(run / "checkpoint.pt")["step"]
    assert resumed >= step + 3
    steps = [r["step"] for r in read_jsonl(run / "log.jsonl") if "loss_ae" in r]
    assert steps == list(range(1, resumed + 1))  # continued exactly where the stop left off


def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    """A VAE with learning rate 1 overflows exp(log-variance) within a few iterations: a real NaN."""
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "vae", "--latent-dim", "4", "--steps", "200", "--out", str(run), "--quiet",
              "--set", "optim.ae.lr=1", "--set", "train.checkpoint_every=2", "--set", "train.eval_every=0",
              "--set", "train.eval_samples=50", "--set", "train.log_every=100"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    found = re.search(r"training diverged at step (\d+): non-finite loss (\S+=(nan|inf|-inf))", err)
    assert found, err
    bad_step = int(found.group(1))
    kept = (bad_step - 1) // 2 * 2  # the last checkpoint step (every 2) before the divergence
    assert kept >= 2, f"diverged too early to show a kept checkpoint: {err}"
    assert f"the last good checkpoint (step {kept}) is kept in {run}" in err
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == kept and not nonfinite_tensors(state["model"])
    assert read_jsonl(run / "log.jsonl")[-1]["event"] == "diverged"

    # "At once": replaying from the kept checkpoint, the first non-finite loss is at bad_step.
    cfg = RunConfig.from_dict(state["config"])
    replay = Run(cfg, tmp_path / "replay", torch.device("cpu"), load_dataset(cfg.train.dataset))
    replay.load_state(state)
    for step in range(kept + 1, bad_step + 1):
        logs = replay.trainer.step()
        finite = all(bool(torch.isfinite(v)) for v in logs.values())
        assert finite == (step < bad_step), f"step {step}"


def test_deferred_monitor_names_the_first_bad_step(tmp_path):
    """The accelerator path (no sync per iteration), run on CPU tensors: it records without raising,
    and `check` reports the first non-finite iteration and its loss, not the current one."""
    model = torch.nn.Linear(2, 2)
    monitor = DivergenceMonitor(model, torch.device("cpu"), tmp_path)
    monitor.eager = False  # what an accelerator device selects
    monitor.saved_step = 10
    finite = {"loss_ae": torch.tensor(1.0), "loss_kl": torch.tensor(2.0)}
    monitor.observe(11, finite)
    monitor.check(11)
    monitor.observe(12, {"loss_ae": torch.tensor(float("nan")), "loss_kl": torch.tensor(2.0)})
    monitor.observe(13, {"loss_ae": torch.tensor(float("inf")), "loss_kl": torch.tensor(2.0)})
    monitor.observe(14, finite)
    with pytest.raises(TrainingDiverged, match=r"at step 12: non-finite loss loss_ae=nan \(detected at step 14\); "
                                               r"the last good checkpoint \(step 10\)"):
        monitor.check(14)


def test_non_finite_weights_with_finite_losses_are_caught(tmp_path):
    model = torch.nn.Linear(2, 2)
    monitor = DivergenceMonitor(model, torch.device("cpu"), tmp_path)
    with torch.no_grad():
        model.weight[0, 1] = float("inf")
    with pytest.raises(TrainingDiverged, match="at step 3: non-finite weights in weight"):
        monitor.observe(3, {"loss": torch.tensor(0.5)})
