"""Reliability, third pass: no code from a run folder without consent (issue 25, item 1).

A run whose config names its own networks ("evil_nets:Encoder") is trained by another process;
`evil_nets.py` writes a marker file when it is imported and lies beside the run, in the run and in
the working directory. Loading that run (CLI, `load_run`, an exported `.safetensors`) refuses with
one line and imports nothing; with `--trust-code` / `trust_code=True` it loads. Each test failed on
the main before this work (the module was imported and the marker written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flexae.cli import main
from flexae.errors import UserError
from flexae.app.load import load_run

REPO = Path(__file__).resolve().parents[1]
MARKER = "evil-imported.marker"
EVIL_NETS = f'''
import math
from pathlib import Path
from torch import nn

Path(__file__).with_name("{MARKER}").write_text("top-level code of evil_nets ran")


class Encoder(nn.Module):
    def __init__(self, data_shape, out_features):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), out_features))

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, data_shape, latent_dim):
        super().__init__()
        self.shape = tuple(data_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, math.prod(data_shape)), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).reshape(z.shape[0], *self.shape)
'''


def _flexae(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m flexae ARGS` in `cwd`: the working directory is on Python's search path."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "flexae", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _markers(root: Path) -> list[Path]:
    return sorted(root.rglob(MARKER))


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(working directory with evil_nets.py, run folder that names evil_nets, its .safetensors)."""
    root = tmp_path_factory.mktemp("consent")
    work, runs = root / "work", root / "runs"
    work.mkdir()
    runs.mkdir()
    (work / "evil_nets.py").write_text(EVIL_NETS)
    rng = np.random.default_rng(0)
    np.savez(work / "images.npz", train=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
             test=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8))
    # The user names evil_nets themselves here: training needs no --trust-code.
    done = _flexae(work, "train", "--model", "wae", "--dataset", f"npz:{work / 'images.npz'}", "--latent-dim", "2",
                   "--steps", "2", "--batch-size", "4", "--set", "model.encoder=evil_nets:Encoder",
                   "--set", "model.decoder=evil_nets:Decoder", "--set", "train.grid_every=0",
                   "--out", str(runs / "run"), "--quiet")
    assert done.returncode == 0, done.stderr
    done = _flexae(work, "export", str(runs / "run"), "--out", str(runs / "model.safetensors"), "--trust-code")
    assert done.returncode == 0, done.stderr
    for place in (runs, runs / "run"):  # beside the run and inside it, too
        (place / "evil_nets.py").write_text(EVIL_NETS)
    for marker in _markers(root):
        marker.unlink()
    assert "evil_nets" not in sys.modules
    return work, runs / "run", runs / "model.safetensors"


def _one_line_refusal(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "evil_nets" in lines[0] and "--trust-code" in lines[0], err


def test_sample_refuses_code_named_by_a_run(evil_run, tmp_path):
    work, run, _ = evil_run
    done = _flexae(work, "sample", str(run), "--out", str(tmp_path / "s.png"), "-n", "4")
    assert done.returncode == 2
    _one_line_refusal(done.stderr)
    assert not _markers(run.parents[1]) and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("command", [["sample", "RUN", "--out", "OUT/s.png", "-n", "4"],
                                     ["export", "RUN", "--out", "OUT/m.safetensors"],
                                     ["train", "--resume", "RUN", "--steps", "3", "--quiet"],
                                     ["sample", "FILE", "--out", "OUT/s.png", "-n", "4"]])
def test_every_loading_command_refuses_without_trust_code(evil_run, tmp_path, monkeypatch, capsys, command):
    work, run, exported = evil_run
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))  # even importable, it is not imported
    args = [a.replace("RUN", str(run)).replace("OUT", str(tmp_path)).replace("FILE", str(exported))
            for a in command]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    _one_line_refusal(capsys.readouterr().err)
    assert not _markers(run.parents[1]) and "evil_nets" not in sys.modules


@pytest.mark.parametrize("which", ["run", "safetensors"])
def test_load_run_refuses_without_trust_code(evil_run, monkeypatch, which):
    work, run, exported = evil_run
    monkeypatch.syspath_prepend(str(work))
    with pytest.raises(UserError, match=r"evil_nets.*trust_code=True") as info:
        load_run(run if which == "run" else exported)
    assert "\n" not in str(info.value)
    assert not _markers(run.parents[1]) and "evil_nets" not in sys.modules


def test_trust_code_loads_it(evil_run, tmp_path, monkeypatch):
    work, run, exported = evil_run
    done = _flexae(work, "sample", str(run), "--out", str(tmp_path / "s.png"), "-n", "4", "--trust-code")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.png").is_file() and _markers(work)  # the user allowed it: it ran
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.delitem(sys.modules, "evil_nets", raising=False)
    try:
        model, cfg = load_run(exported, trust_code=True)
        assert cfg.model.encoder == "evil_nets:Encoder" and type(model.encoder).__name__ == "Encoder"
        assert load_run(run, trust_code=True)[0].generate(2).shape == (2, 1, 8, 8)
    finally:
        sys.modules.pop("evil_nets", None)
