"""The command line, run as a user runs it (a subprocess of the installed entry point)."""

import json
import subprocess
import sys

import pytest
import torch

from flexae.app.load import load_run


def flexae(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "flexae", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"flexae {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def test_two_step_train_writes_a_complete_run(tmp_path):
    out = tmp_path / "run"
    flexae("train", "--model", "flexae", "--dataset", "synthetic-5d", "--latent-dim", "8", "--steps", "2",
           "--seed", "3", "--out", out, "--quiet")
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "flexae" and config["model"]["latent_dim"] == 8
    assert config["train"]["steps"] == 2 and config["train"]["seed"] == 3
    assert set(config["versions"]) == {"flexae", "torch", "python"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("loss_ae" in r and r["step"] == 2 for r in log)
    assert any("fd" in r and "w_latent" in r for r in log)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 2 and metrics["fd"] > 0
    model, cfg = load_run(out)
    assert model.generate(4).shape == (4, 128) and cfg.model.latent_dim == 8


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--dataset", "nope"], "unknown data set 'nope'"),
    (["--steps", "0"], "steps must be positive"),
    (["--latent-dim", "-3"], "latent-dim must be positive"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--model", "flexae-sr", "--dataset", "synthetic-5d"], "flexae-sr needs image data"),
    (["--set", "optim.gen.lr=abc"], "cannot read 'abc'"),
    (["--set", "optim.nothing=1"], "unknown config key"),
])
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    proc = flexae("train", "--out", tmp_path / "r", "--steps", "2", *args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_existing_run_folder_is_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    proc = flexae("train", "--steps", "1", "--out", out, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (out / "precious.txt").read_text() == "keep me"


def test_set_overrides_reach_the_config(tmp_path):
    out = tmp_path / "run"
    flexae("train", "--steps", "1", "--latent-dim", "4", "--out", out, "--quiet",
           "--set", "optim.gen.lr=2e-4", "--set", "optim.feed=authors", "--set", "train.eval_every=0")
    config = json.loads((out / "config.json").read_text())
    assert config["optim"]["gen"]["lr"] == 2e-4 and config["optim"]["feed"] == "authors"


def test_resume_continues_exactly(tmp_path):
    """4 steps, then resume to 7 == 7 uninterrupted steps (same seed, CPU): bit-identical weights."""
    common = ["--model", "flexae", "--latent-dim", "4", "--seed", "1", "--quiet",
              "--set", "train.checkpoint_every=1", "--set", "train.eval_every=0"]
    flexae("train", "--steps", "7", "--out", tmp_path / "full", *common)
    flexae("train", "--steps", "4", "--out", tmp_path / "part", *common)
    flexae("train", "--resume", tmp_path / "part", "--steps", "7", "--quiet")
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    part = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert part["step"] == full["step"] == 7
    for name, tensor in full["model"].items():
        assert torch.equal(tensor, part["model"][name]), name
    assert torch.equal(full["rng"]["torch"], part["rng"]["torch"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    proc = flexae("train", "--resume", tmp_path, check=False)
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


def test_reproduce_fig3_tiny(tmp_path):
    out = tmp_path / "fig3"
    proc = flexae("reproduce", "fig3", "--steps", "2", "--seeds", "1", "--out", out, "--quiet")
    records = json.loads((out / "results.json").read_text())
    rows = ["flexae", "vae", "wae", "wae-gmm", "wae-gmm-supplement"]
    assert sorted(r["model"] for r in records) == rows
    assert all(set(r) == {"model", "seed", "fd", "w_latent"} and r["fd"] > 0 for r in records)
    for name in ("fig3.png", "fig3_convergence.png"):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # The convergence curves come from the runs' logged evaluations: step 0, then every steps // FIG3_EVALS
    # iterations (here every iteration), and end at the final metrics.
    curves = json.loads((out / "curves.json").read_text())
    assert [c["step"] for c in curves["flexae"]] == [[0, 1, 2]]
    final = {(r["model"], r["seed"]): r["fd"] for r in records}
    assert all(c["fd"][-1] == pytest.approx(final[m, s]) for m in rows for s, c in enumerate(curves[m]))
    assert "| flexae |" in proc.stdout and "| flexae < wae |" in proc.stdout and "seed 0" in proc.stdout
    # The WAE-GMM rows differ only in their prior.
    configs = [json.loads((out / "runs" / f"{r}-seed0" / "config.json").read_text())["model"]
               for r in ("wae-gmm", "wae-gmm-supplement")]
    assert [c["gmm_layout"] for c in configs] == ["circle", "supplement"]
    # A second call reuses the finished runs instead of retraining them.
    mtime = (out / "runs" / "vae-seed0" / "checkpoint.pt").stat().st_mtime_ns
    flexae("reproduce", "fig3", "--steps", "2", "--seeds", "1", "--out", out, "--quiet")
    assert (out / "runs" / "vae-seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime


def test_bare_flexae_prints_its_help_and_exits_0():
    proc = flexae(check=False)
    assert proc.returncode == 0 and "Usage: flexae" in proc.stdout and "error" not in proc.stderr


def test_warnings_are_one_flexae_line(tmp_path):
    """A stale sampler.pt (fitted at another step) warns; the warning is one line, no source path."""
    from flexae.runs.sampler_file import SAMPLER_NAME

    run = tmp_path / "run"
    flexae("train", "--model", "ae-gmm", "--dataset", "synthetic-2d", "--latent-dim", "2", "--steps", "2",
           "--out", run, "--quiet", "--set", "model.options.expost_gmm_components=2",
           "--set", "model.options.sampler_fit_points=200", "--set", "train.eval_samples=50")
    state = torch.load(run / SAMPLER_NAME, weights_only=True)
    state["step"] = 1  # as if fitted before the last checkpoint
    state.pop("checksum")
    torch.save(state, run / SAMPLER_NAME)
    proc = flexae("sample", run, "--out", tmp_path / "s.npz", "-n", 4, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("flexae: warning: ") and "fitted to other weights" in lines[0]
    assert lines[1].startswith("flexae: error: ")  # sample wants an image run: still one line
    assert ".py" not in proc.stderr
