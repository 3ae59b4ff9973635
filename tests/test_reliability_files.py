"""Reliability, third pass (issue 25, items 2-4 and the "Also" list): files flexae writes or reads
in a run folder cannot be aimed elsewhere, stale temporary files are swept, `--overwrite` deletes
only a real run's own files, the report embeds only the run's own files, eval.json names the step
it evaluated and is refused into a run that changed under it, and fit-prior is reproducible.
Each test failed on the main before this work."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.cli import main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.registry import set_options
from flexae.errors import UserError
from flexae.files import atomic_write
from flexae.runs.checkpoint import load_checkpoint
from flexae.runs.log import RunLog
from flexae.app.train import train


def _cfg(model: str = "flexae", steps: int = 2) -> RunConfig:
    cfg = RunConfig(ModelConfig(name=model, latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=steps, batch_size=16, eval_samples=50,
                                      log_every=1, device="cpu"))
    set_options(cfg.model, expost_gmm_components=2, sampler_fit_points=200, sampler_steps=3)
    return cfg


def _cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    return info.value.code, capsys.readouterr().err


def _one_line(code: int, err: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return train(_cfg(), tmp_path_factory.mktemp("runs") / "run", progress=False)


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- 2. a lock, log or temporary file aimed elsewhere ---------------------------------------------

@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_lock_aimed_at_another_file_is_refused(run, victim, capsys, link):
    (run / ".lock").unlink(missing_ok=True)
    if link == "symlink":
        (run / ".lock").symlink_to("../victim.txt")
    else:
        os.link(victim, run / ".lock")
    code, err = _cli(capsys, "train", "--resume", str(run), "--steps", "3", "--quiet")
    _one_line(code, err)
    assert "cannot lock" in err and victim.read_text() == "precious"
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2  # nothing was trained


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory) -> Path:
    return train(_cfg("ae-gmm"), tmp_path_factory.mktemp("runs") / "gmm", progress=False)


def test_a_log_symlink_is_not_appended_through(gmm_run, tmp_path, victim, capsys):
    run = Path(shutil.copytree(gmm_run, tmp_path / "gmm"))
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").symlink_to("../victim.txt")
    code, err = _cli(capsys, "fit-sampler", str(run), "--quiet")
    _one_line(code, err)
    assert "symbolic link" in err and victim.read_text() == "precious"
    with pytest.raises(UserError, match="cannot append to .*symbolic link"):
        RunLog(run / "log.jsonl").write({"step": 1})
    assert victim.read_text() == "precious"


def test_atomic_writes_never_write_through_a_symlink(tmp_path, victim):
    target = tmp_path / "f.bin"
    target.symlink_to(victim)  # at the destination: the rename replaces the link itself
    atomic_write(target, lambda f: f.write(b"new"))
    assert victim.read_text() == "precious" and not target.is_symlink() and target.read_bytes() == b"new"
    # planted at this process's temporary name: created afresh, never opened through the link
    planted = tmp_path / f"g.bin.{os.getpid()}.tmp"
    planted.symlink_to(victim)
    atomic_write(tmp_path / "g.bin", lambda f: f.write(b"new"))
    assert victim.read_text() == "precious" and (tmp_path / "g.bin").read_bytes() == b"new"


# --- 3. stale temporary files ----------------------------------------------------------------------

def test_stale_temporary_files_of_dead_writers_are_swept(run, capsys):
    dead = run / f"checkpoint.pt.{_dead_pid()}.tmp"
    dead.write_bytes(b"\0" * 1000)
    live_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = run / f"config.json.{live_process.pid}.tmp"
        live.write_text("being written")
        users = run / f"notes.{_dead_pid()}.tmp"  # not a file flexae writes: never swept
        users.write_text("mine")
        main(["train", "--resume", str(run), "--steps", "3", "--quiet"])
        err = capsys.readouterr().err
        assert "flexae: note: removed 1 stale temporary file(s)" in err, err
        assert not dead.exists() and live.read_text() == "being written"  # a live writer's file is kept
        assert users.read_text() == "mine"
    finally:
        live_process.kill()
        live_process.wait()


# --- 4. --overwrite deletes only a real run's own files -----------------------------------------------

def _project(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": {"name": "resnet"}, "lr": 0.1}))
    (folder / "metrics.json").write_text('{"accuracy": 0.9}')
    (folder / "eval.md").write_text("# my evaluation")
    (folder / "grids").mkdir()
    (folder / "grids" / "paper-figure.png").write_bytes(b"figure")
    (folder / "tensorboard" / "other-experiment").mkdir(parents=True)
    (folder / "tensorboard" / "other-experiment" / "events.out.tfevents.1.host").write_bytes(b"events")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_overwrite_refuses_a_project_folder_with_run_like_names(tmp_path, capsys):
    before = _project(tmp_path / "project")
    (tmp_path / "project" / "src").mkdir()
    code, err = _cli(capsys, "train", "--out", str(tmp_path / "project"), "--overwrite", "--steps", "1",
                     "--quiet", "--dataset", "synthetic-2d")
    _one_line(code, err)
    assert "not a flexae run folder" in err
    after = {str(p.relative_to(tmp_path / "project")): p.read_bytes()
             for p in (tmp_path / "project").rglob("*") if p.is_file()}
    assert after == before


def test_overwrite_of_a_real_run_removes_only_flexae_files(run):
    (run / "grids").mkdir()
    (run / "grids" / "samples-000002.png").write_bytes(b"flexae grid")
    (run / "grids" / "paper-figure.png").write_bytes(b"mine")
    (run / "tensorboard" / "other").mkdir(parents=True)
    (run / "tensorboard" / "events.out.tfevents.1.host.1.0").write_bytes(b"flexae events")
    (run / "eval.json").write_text("{}")
    train(_cfg(steps=1), run, overwrite=True, progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1 and not (run / "eval.json").exists()
    assert not (run / "grids" / "samples-000002.png").exists()
    assert (run / "grids" / "paper-figure.png").read_bytes() == b"mine" and (run / "tensorboard" / "other").is_dir()
    assert not (run / "tensorboard" / "events.out.tfevents.1.host.1.0").exists()


def test_a_run_is_recognised_by_its_checkpoint_alone(run):
    (run / "config.json").unlink()
    train(_cfg(steps=1), run, overwrite=True, progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1


# --- "Also": report, eval, fit-prior ---------------------------------------------------------------

def test_the_report_embeds_no_file_from_outside_the_run(run, tmp_path):
    from flexae.report import write_report

    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN PRIVATE KEY----- not for a report")
    (run / "grids").mkdir()
    (run / "grids" / "samples-000002.png").symlink_to(secret)
    with pytest.warns(UserWarning, match="symbolic link"):
        page = write_report([run], tmp_path / "report")
    encoded = base64.b64encode(secret.read_bytes()).decode()
    assert encoded not in page.read_text() and not any(
        secret.read_bytes() in p.read_bytes() for p in (tmp_path / "report").iterdir())


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    np.savez(root / "images.npz", train=rng.integers(0, 256, (24, 8, 8), dtype=np.uint8),
             test=rng.integers(0, 256, (8, 8, 8), dtype=np.uint8))
    cfg = RunConfig(ModelConfig(name="wae", latent_dim=2),
                    train=TrainConfig(dataset=f"npz:{root / 'images.npz'}", steps=2, batch_size=4, grid_every=0))
    return train(cfg, root / "images", progress=False)


def test_eval_json_records_the_step_and_refuses_a_run_that_changed(image_run, tmp_path, monkeypatch):
    from flexae.app import evaluate as eval_run
    from flexae.app.train import resume

    run = Path(shutil.copytree(image_run, tmp_path / "images"))
    results = eval_run.evaluate_run(run, n=4, metrics=("pms",), device="cpu", progress=False)
    assert json.loads((run / "eval.json").read_text())["step"] == results["step"] == 2
    (run / "eval.json").unlink()
    real = eval_run.evaluate_generator

    def resumed_meanwhile(*args, **kwargs):  # the run is trained on while it is evaluated
        out = real(*args, **kwargs)
        resume(run, steps=3, progress=False)
        return out

    monkeypatch.setattr(eval_run, "evaluate_generator", resumed_meanwhile)
    with pytest.raises(UserError, match="changed while it was evaluated") as info:
        eval_run.evaluate_run(run, n=4, metrics=("pms",), device="cpu", progress=False)
    assert "\n" not in str(info.value) and not (run / "eval.json").exists()


def test_fit_prior_with_a_seed_is_reproducible(run):
    from flexae.app.fit_prior import fit_prior, fit_prior_run

    priors = []
    for global_seed in (1, 2):  # whatever the state of the global generator before
        torch.manual_seed(global_seed)
        fit_prior_run(run, steps=2, fit_points=64, batch_size=16, seed=3, progress=False)
        priors.append(torch.load(run / "prior.pt", weights_only=True))
    first, second = (p["tensors"] for p in priors)  # G_psi's weights
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    codes = torch.randn(64, 2)
    samples = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        prior, _ = fit_prior(codes, networks="synthetic", steps=2, batch_size=16, seed=3, progress=False)
        samples.append(prior.sample(5, torch.Generator().manual_seed(0)))
    assert torch.equal(samples[0], samples[1])
