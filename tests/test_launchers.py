"""`reproduce --launcher local | submitit` (flexae.experiments.launch): the runs train in worker
processes (real subprocesses; submitit's own local executor), the evaluation in this process, and
the table is byte for byte the one `--launcher inline` writes; a failed run is marked in the
table, and a killed worker's run resumes from its checkpoint on the next invocation.

The evaluation is a stand-in (Inception on a shared 2-core CPU would dominate): its numbers are
digests of the generated and reconstructed images, so any difference in the trained weights
(one bit) changes the table."""

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from flexae.cli import cli
from flexae.runs.layout import CHECKPOINT_NAME, LOCK_NAME, LOG_NAME

sys.path.insert(0, str(Path(__file__).parent))
from test_tables import write_tiny_mnist  # noqa: E402

MODELS = "vae,wae"


def _digest(images: torch.Tensor) -> float:
    """A number in [0, 100) that changes with any bit of `images`."""
    return int(hashlib.sha256(images.detach().float().cpu().numpy().tobytes()).hexdigest()[:8], 16) % 10000 / 100


class DigestEvaluation:
    """Stands in for flexae.evaluation.evaluate_generator (in the submitting process)."""

    def __call__(self, generate, reconstruct, test_images, train_images=None, n=10000, metrics=(), **kwargs):
        gen, rec = _digest(generate(n)), _digest(reconstruct(test_images[:n]))
        return {"n": n, "fid": {"rec": rec, "gen": gen}, "prd": {"precision": rec / 100, "recall": gen / 100}}


@pytest.fixture(autouse=True)
def _digest_evaluation(monkeypatch):
    import flexae.evaluation
    monkeypatch.setattr(flexae.evaluation, "evaluate_generator", DigestEvaluation())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the 2 local workers on 2 cores (and --slurm-cpus-per-job 1)
    yield
    torch.set_num_threads(threads)


def _reproduce(out: Path, data: Path, *extra: str, steps: int = 2, models: str = MODELS):
    args = ["reproduce", "table1", "--dataset", "mnist", "--data-dir", str(data), "--steps", str(steps),
            "--out", str(out), "--eval-n", "20", "--models", models, "--set", "train.batch_size=16", "--quiet",
            *extra]
    return CliRunner().invoke(cli, args)


def _table(out: Path) -> str:
    return (out / "table1.md").read_text()


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory) -> Path:
    """An MNIST folder of 300 training and 100 test images (bars at random rows), as test_tables'."""
    return write_tiny_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def inline_table(tmp_path_factory, tiny_mnist) -> str:
    """table1.md of `--launcher inline` (trained once for the tests of this file)."""
    import flexae.evaluation

    out, threads, evaluate = tmp_path_factory.mktemp("inline"), torch.get_num_threads(), flexae.evaluation.evaluate_generator
    flexae.evaluation.evaluate_generator = DigestEvaluation()
    torch.set_num_threads(1)
    try:
        result = _reproduce(out, tiny_mnist)
    finally:
        flexae.evaluation.evaluate_generator, _ = evaluate, torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return _table(out)


def test_local_workers_write_the_inline_table(tmp_path, tiny_mnist, inline_table):
    result = _reproduce(tmp_path / "local", tiny_mnist, "--launcher", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert _table(tmp_path / "local") == inline_table
    lines = result.stderr.splitlines()
    for name in MODELS.split(","):  # one line per run and change
        assert f"queued   {name}" in lines and f"done     {name}" in lines
        assert any(line.startswith(f"running  {name} at step") for line in lines)
    assert (tmp_path / "local" / "logs" / "vae.log").is_file()
    rows = json.loads((tmp_path / "local" / "table1.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["vae", "wae"] and not any("failed" in r for r in rows)


def test_submitit_local_executor_writes_the_inline_table(tmp_path, tiny_mnist, inline_table):
    pytest.importorskip("submitit")
    result = _reproduce(tmp_path / "submitit", tiny_mnist, "--launcher", "submitit", "--submitit-cluster", "local",
                        "--slurm-cpus-per-job", "1", "--slurm-gpus-per-job", "0", "--slurm-time", "10")
    assert result.exit_code == 0, result.output
    assert _table(tmp_path / "submitit") == inline_table
    assert "done     wae" in result.stderr.splitlines()
    # Submitted again: both runs are finished with the same config, nothing is retrained.
    stamp = (tmp_path / "submitit" / "runs" / "vae" / "checkpoint.pt").stat().st_mtime_ns
    again = _reproduce(tmp_path / "submitit", tiny_mnist, "--launcher", "local", "--workers", "2")
    assert again.exit_code == 0 and _table(tmp_path / "submitit") == inline_table
    assert (tmp_path / "submitit" / "runs" / "vae" / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_a_killed_worker_is_marked_failed_and_its_run_resumes(tmp_path, tiny_mnist, monkeypatch):
    """The worker training `vae` is killed (SIGKILL, by the PID in its run folder's lock) once its
    first checkpoint is on disk: the table marks the run failed and the command fails with the log's path;
    the next invocation resumes the run from that checkpoint (the log's lines up to it are kept
    as they were, which a retrained run would rewrite) and the table is complete."""
    import flexae.experiments.launch as launch

    out, killed = tmp_path / "sweep", []
    run = out / "runs" / "vae"

    def kill_after_first_checkpoint(self, key):
        steps = [json.loads(line)["step"] for line in (run / LOG_NAME).read_text().splitlines()] \
            if (run / LOG_NAME).is_file() else []
        if not killed and (run / CHECKPOINT_NAME).is_file() and steps:
            pid = int((run / LOCK_NAME).read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(steps[-1])

    original = launch._Progress.running
    monkeypatch.setattr(launch._Progress, "running",
                        lambda self, key: (kill_after_first_checkpoint(self, key), original(self, key))[1])
    result = _reproduce(out, tiny_mnist, "--launcher", "local", "--workers", "1", steps=8, models="vae")
    assert killed, "the worker finished before it could be killed"
    assert result.exit_code != 0 and "killed by signal SIGKILL" in str(result.exception)
    assert str(out / "logs" / "vae.log") in str(result.exception)
    assert "| VAE | failed | failed |" in _table(out)
    assert json.loads((out / "table1.json").read_text())["rows"][0]["failed"] == str(out / "logs" / "vae.log")
    checkpoint_step = torch.load(run / CHECKPOINT_NAME, weights_only=False)["step"]
    before = [line for line in (run / LOG_NAME).read_text().splitlines() if json.loads(line)["step"] <= checkpoint_step]

    monkeypatch.setattr(launch._Progress, "running", original)
    result = _reproduce(out, tiny_mnist, "--launcher", "local", "--workers", "1", steps=8, models="vae")
    assert result.exit_code == 0, result.output
    after = (run / LOG_NAME).read_text().splitlines()
    assert after[:len(before)] == before and json.loads(after[-1])["step"] == 8  # resumed, not retrained
    assert "failed" not in _table(out)


def test_worker_slots_pin_one_device_each_or_split_the_cpu_threads(tmp_path, monkeypatch):
    from flexae.errors import UserError
    from flexae.experiments import launch, tables

    gpus = launch._worker_slots(launch.LaunchSettings("local", workers=2, devices=("cuda:0", "cuda:1")))
    assert [env["CUDA_VISIBLE_DEVICES"] for env, _ in gpus] == ["0", "1"]  # the run's config keeps "auto"
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cpus = launch._worker_slots(launch.LaunchSettings("local", workers=4))
    assert [threads for _, threads in cpus] == [2, 2, 2, 2] and cpus[0][0]["OMP_NUM_THREADS"] == "2"
    for bad, message in ((launch.LaunchSettings("local", workers=0), "--workers"),
                         (launch.LaunchSettings("local", devices=("gpu1",)), "--devices gpu1"),
                         (launch.LaunchSettings("slurm"), "--launcher")):
        with pytest.raises(UserError, match=message):
            launch.check_launch(bad)
    pinned = tables.TableSettings(dataset="mnist", steps=1, out=tmp_path, device="cpu",
                                  launch=launch.LaunchSettings("local", devices=("cuda:0",)))
    with pytest.raises(UserError, match="--device auto or cuda"):
        tables.ensure_runs({}, pinned)


@pytest.mark.slow  # 94 s on the shared 2-core CPU (fig2's runs evaluate FD on 10k-point test sets)
def test_fig2_in_local_workers_writes_the_inline_results(tmp_path):
    """The figure commands take the same launchers: fig2's two runs in 2 workers give the inline
    results.md (synthetic runs train with one thread whatever the launcher)."""
    args = ["reproduce", "fig2", "--steps", "2", "--seeds", "1", "--quiet"]
    inline = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "inline")])
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local"), "--launcher", "local", "--workers", "2"])
    assert inline.exit_code == 0 and local.exit_code == 0, local.output
    assert (tmp_path / "local" / "results.md").read_text() == (tmp_path / "inline" / "results.md").read_text()
    assert "done     flexae-seed0" in local.stderr.splitlines()
