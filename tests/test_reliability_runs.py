"""Reliability, second pass (run folders): nothing a user owns is destroyed, every saved state is
checked the same way, corruption is reported as corruption, every failure is one line.

Each test is one of the failure modes found by attacking flexae as a hostile user would; each
failed on the main before this work."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from flexae.cli import main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.registry import set_options
from flexae.errors import UserError
from flexae.files import append_jsonl, atomic_write
from flexae.app.load import load_run
from flexae.runs.checkpoint import load_checkpoint
from flexae.app.export import export_weights
from flexae.runs.folder import RunFolderLock
from flexae.runs.log import read_log
from flexae.training.divergence import TrainingDiverged
from flexae.app.train import resume, train
from flexae.training.signals import TrainingStopped


def _cfg(model: str = "flexae", steps: int = 2, **train_fields) -> RunConfig:
    cfg = RunConfig(ModelConfig(name=model, latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=steps, batch_size=16, eval_samples=50,
                                      log_every=1, device="cpu", **train_fields))
    set_options(cfg.model, expost_gmm_components=2, sampler_fit_points=200, sampler_steps=3)
    return cfg


def _cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    return info.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small finished run; tests copy it before changing anything."""
    return train(_cfg(), tmp_path_factory.mktemp("runs") / "run", progress=False)


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- 1. --overwrite ---------------------------------------------------------------------------

def test_overwrite_keeps_the_old_run_until_the_new_one_is_ready(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    before = _files(run)
    empty = tmp_path / "no-images"
    empty.mkdir()
    code, err = _cli(capsys, "train", "--out", str(run), "--overwrite", "--dataset", "mnist",
                     "--data-dir", str(empty), "--steps", "1", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert _files(run) == before  # the data could not be loaded, so nothing was replaced


@pytest.mark.parametrize("out", ["", "."])
def test_the_working_directory_is_never_a_run_folder(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{\"mine\": true}")
    (tmp_path / "grids").mkdir()
    code, err = _cli(capsys, "train", "--out", out, "--overwrite", "--steps", "1", "--quiet")
    assert code == 2 and ("working directory" in err or "is empty" in err), err
    assert (tmp_path / "config.json").read_text() == "{\"mine\": true}" and (tmp_path / "grids").is_dir()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("precious")
    code, err = _cli(capsys, "train", "--out", str(tmp_path / "thesis"), "--overwrite", "--steps", "1", "--quiet")
    assert code == 2 and "not a flexae run folder" in err, err
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "precious"


def test_overwrite_removes_every_file_of_the_old_run(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    for name in ("eval.json", "eval.md", "sampler.pt"):
        (run / name).write_text("old")
    (run / "notes.txt").write_text("mine")
    train(_cfg(steps=1), run, overwrite=True, progress=False)
    assert not any((run / name).exists() for name in ("eval.json", "eval.md", "sampler.pt"))
    assert (run / "notes.txt").read_text() == "mine"  # not the run's: left alone
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1


# --- 2. divergence in optimizer state -----------------------------------------------------------

def test_an_overflowing_optimizer_state_stops_the_run_at_its_first_step(tmp_path, monkeypatch):
    from flexae.app import train as loop

    cfg = _cfg(steps=50, checkpoint_every=300)
    real = loop.make_trainer

    def exploding(*args, **kwargs):  # steps far beyond any lr a config accepts (optim.*.lr <= 10)
        trainer = real(*args, **kwargs)
        for group in trainer.optimizers["ae"].param_groups:
            group["lr"] = 1e9
        return trainer

    monkeypatch.setattr(loop, "make_trainer", exploding)
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, tmp_path / "run", progress=False)
    message = str(info.value)
    first_bad = int(message.split("diverged at step ")[1].split(":")[0])
    assert first_bad <= 2, message  # not a checkpoint interval later
    assert info.value.step == first_bad
    assert "no checkpoint was written" in message


# --- 3. one validation of a checkpoint ------------------------------------------------------------

def _tampered(run: Path, change) -> None:
    """Rewrite the checkpoint with `change(state)` applied and no checksum, as an older flexae (or
    another tool) would have written it, so the content checks are what is tested."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state.pop("checksum", None)
    change(state)
    torch.save(state, run / "checkpoint.pt")


def _nan_weight(state) -> None:
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))


def test_nan_weights_are_refused_by_load_export_and_resume(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    _tampered(run, _nan_weight)
    with pytest.raises(UserError, match="holds NaN or infinity"):
        load_run(run)
    with pytest.raises(UserError, match="holds NaN or infinity"):
        export_weights(run, tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()
    with pytest.raises(UserError, match="holds NaN or infinity") as info:
        resume(run, steps=4, progress=False)
    assert "last good checkpoint" not in str(info.value)


def test_export_refuses_weights_that_do_not_fit_their_config(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)

    def wrong_shape(state):
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 3)

    _tampered(run, wrong_shape)
    with pytest.raises(UserError, match="do not fit"):
        export_weights(run, tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()


def test_what_export_writes_always_loads(finished_run, tmp_path):
    path = export_weights(finished_run, tmp_path / "model.safetensors")
    model, cfg = load_run(path)
    assert cfg.model.name == "flexae" and torch.isfinite(model.generate(3)).all()


# --- 4 and 8. corruption is corruption; fit-sampler repairs sampler.pt --------------------------

def _flip_a_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest stored tensor of a torch zip file."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + k:info.header_offset + k + 2], "little")
                           for k in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_inside_a_tensor_is_reported_as_damage(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    _flip_a_tensor_byte(run / "checkpoint.pt")
    with pytest.raises(UserError, match="is damaged"):
        load_checkpoint(run / "checkpoint.pt")
    code, err = _cli(capsys, "train", "--resume", str(run), "--steps", "4", "--quiet")
    assert code == 2 and "damaged" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(UserError, match="is damaged"):
        export_weights(run, tmp_path / "model.safetensors")


def test_random_bytes_are_damage_not_an_attack(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    noise = random.Random(0).randbytes(4096)
    (run / "checkpoint.pt").write_bytes(b"\x01" + noise)  # not the 0x80 that starts a pickle stream
    with pytest.raises(UserError) as info:
        load_checkpoint(run / "checkpoint.pt")
    assert "corrupt" in str(info.value) and "refused" not in str(info.value)


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory) -> Path:
    return train(_cfg("ae-gmm"), tmp_path_factory.mktemp("runs") / "gmm", progress=False)


@pytest.mark.parametrize("damage", ["garbage", "flipped"])
def test_fit_sampler_rebuilds_a_damaged_sampler_file(gmm_run, tmp_path, capsys, damage):
    from flexae.app.fit_sampler import fit_run

    run = _copy(gmm_run, tmp_path)
    if damage == "garbage":
        (run / "sampler.pt").write_bytes(random.Random(1).randbytes(1000))
    else:
        _flip_a_tensor_byte(run / "sampler.pt")
    with pytest.raises(UserError) as info:
        load_run(run)
    assert "fit-sampler" in str(info.value) and "weights_only" not in str(info.value)
    if damage == "flipped":
        assert "damaged" in str(info.value)
    fit_run(run, progress=False)
    model, _ = load_run(run)
    assert model.can_generate() and model.generate(4).shape == (4, 128)


# --- 5. one-line errors instead of tracebacks -------------------------------------------------------

def test_a_full_disk_while_logging_is_one_line(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with pytest.raises(UserError, match="cannot append to /dev/full"):  # now refused as not a regular file
        append_jsonl(Path("/dev/full"), {"step": 1})


def test_a_write_error_while_logging_to_a_regular_file_is_one_line(tmp_path):
    """A regular log.jsonl that cannot grow (the file-size limit, as a full disk would): one line."""
    import resource
    import signal

    log = tmp_path / "log.jsonl"
    log.write_text("")
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a fatal signal
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, old_limit[1]))
    try:
        with pytest.raises(UserError, match=r"cannot append to .*log.jsonl \(File too large\)"):
            append_jsonl(log, {"step": 1})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_read_only_file_system_is_one_line(tmp_path, monkeypatch):
    """EROFS from the write and from the clean-up of the temporary file (root ignores permissions,
    so the file system's refusal is raised where the kernel would raise it)."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(UserError, match="Read-only file system"):
        atomic_write(tmp_path / "checkpoint.pt", lambda f: f.write(b"x"))


def test_a_log_that_is_a_folder_is_one_line(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").mkdir()
    code, err = _cli(capsys, "train", "--resume", str(run), "--steps", "4", "--quiet")
    assert code == 2 and "log.jsonl" in err and len(err.strip().splitlines()) == 1, err


def test_sample_seed_beyond_the_generator_range_is_one_line(finished_run, tmp_path, capsys):
    from flexae import inference

    model, _ = load_run(finished_run)
    with pytest.raises(UserError, match="seed must lie in"):
        inference.sample(model, 4, seed=2**63 - 2)
    code, err = _cli(capsys, "sample", str(finished_run), "--out", str(tmp_path / "s.npz"), "--seed", str(2**63))
    assert code == 2 and "seed" in err.lower(), err


def test_reproduce_redoes_a_run_whose_config_json_is_garbled(finished_run, tmp_path):
    from flexae.experiments.tables import _read_json

    run = _copy(finished_run, tmp_path)
    (run / "config.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert _read_json(run / "config.json") == {}
    train(_cfg(steps=1), run, overwrite=True, progress=False)  # what ensure_run then does
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 1


# --- 7. one writer per run folder -----------------------------------------------------------------

def test_a_second_writer_gets_the_first_ones_pid(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    with RunFolderLock(run):
        with pytest.raises(UserError, match=f"PID {os.getpid()}"):
            resume(run, steps=4, progress=False)
        with pytest.raises(UserError, match="being written by another flexae process"):
            train(_cfg(steps=1), run, overwrite=True, progress=False)
    resume(run, steps=3, progress=False)  # released: the run continues


def test_a_lock_left_by_a_killed_process_is_taken_over(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from flexae.runs.folder import RunFolderLock\n"
                               "with RunFolderLock(sys.argv[1]):\n print('locked', flush=True); time.sleep(60)",
                               str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"PID {holder.pid}"):
            resume(run, steps=3, progress=False)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays
        holder.wait()
    assert (run / ".lock").read_text().strip() == str(holder.pid)
    resume(run, steps=3, progress=False)


def test_temporary_files_are_private_to_their_process(tmp_path):
    seen = []
    atomic_write(tmp_path / "f.bin", lambda f: seen.extend(p.name for p in tmp_path.iterdir()))
    assert seen == [f"f.bin.{os.getpid()}.tmp"]


# --- 9. signals after training, cumulative time -----------------------------------------------------

@pytest.fixture
def self_stopping_model():
    from toy_model import build_self_stopping, fit_self_stopping, ToyTrainer

    from flexae.registry import MODELS, ModelSpec, register
    register("toy-self-stopping", ModelSpec(build_self_stopping, ToyTrainer, fit_self_stopping))
    yield "toy-self-stopping"
    MODELS.pop("toy-self-stopping")


def test_a_stop_signal_during_the_sampler_fit_is_honoured(self_stopping_model, tmp_path):
    started = time.monotonic()
    with pytest.raises(TrainingStopped, match="during the ex-post sampler fit") as info:
        train(_cfg(self_stopping_model, steps=2), tmp_path / "run", progress=False)
    assert time.monotonic() - started < 25  # the 30 s fit was cut short
    assert "flexae fit-sampler" in str(info.value)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2  # training's result is kept
    assert not (tmp_path / "run" / "sampler.pt").exists()
    assert read_log(tmp_path / "run")[-1]["event"] == "stopped"


def test_the_logged_time_is_cumulative_across_resumes(tmp_path):
    run = train(_cfg(steps=4, checkpoint_every=2), tmp_path / "run", progress=False)
    before = {r["step"]: r["time"] for r in read_log(run) if "time" in r}
    time.sleep(0.2)
    resume(run, steps=6, progress=False)
    after = {r["step"]: r["time"] for r in read_log(run) if "time" in r}
    assert after[5] >= before[4] and after[6] >= after[5]


# --- exported ex-post samplers, the package's Python API -----------------------------------------

def test_an_exported_expost_model_generates(gmm_run, tmp_path):
    path = export_weights(gmm_run, tmp_path / "gmm.safetensors")
    model, cfg = load_run(path)
    assert cfg.model.name == "ae-gmm" and model.can_generate()
    torch.testing.assert_close(model.generate(4, torch.Generator().manual_seed(0)),
                               load_run(gmm_run)[0].generate(4, torch.Generator().manual_seed(0)))


def test_the_readme_python_snippet_runs_twice(tmp_path, monkeypatch):
    import flexae

    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        cfg = flexae.RunConfig(flexae.ModelConfig(name="flexae", latent_dim=2),
                               train=flexae.TrainConfig(dataset="synthetic-2d", steps=2, eval_samples=50))
        run_dir = flexae.train(cfg, "runs/flexae-2d", overwrite=True, progress=False)
        model, _ = flexae.load_run(run_dir)
        x = model.generate(16)
        assert not x.requires_grad and model.encode(x).shape == (16, 2)
