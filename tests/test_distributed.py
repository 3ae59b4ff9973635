"""Multi-process training (flexae.training.distributed): 2 CPU processes under torchrun (gloo),
one writer, identical weights on every rank, disjoint batches, and resume with another process count."""

import json
import subprocess
import sys
import textwrap

import torch

from flexae.training import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_single_process_helpers_are_no_ops():
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    data = torch.arange(10)
    assert distributed.shard(data) is data
    state = torch.get_rng_state()
    distributed.seed_rank(0, 5)  # rank 0 keeps its stream
    assert torch.equal(torch.get_rng_state(), state)
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    distributed.average_gradients(torch.optim.SGD([p], lr=0.1))
    assert torch.equal(p.grad, torch.full((3,), 2.0))


WORKER = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    from flexae.bench import random_dataset
    from flexae.config import ModelConfig, RunConfig, TrainConfig
    from flexae.training import distributed
    from flexae.app.train import Run

    distributed.init_from_environment("cpu")
    cfg = RunConfig(ModelConfig(name="flexae", latent_dim=4), train=TrainConfig(dataset="synthetic-5d", batch_size=16))
    data = random_dataset("synthetic-5d", 64)
    data.train[:, 0] = torch.arange(64, dtype=torch.float32)  # row ids, to tell the ranks' batches apart
    run = Run(cfg, distributed.rank_folder(sys.argv[1]), torch.device("cpu"), data)
    rows = set(run.batches()[:, 0].long().tolist())
    assert all(r % 2 == dist.get_rank() for r in rows), rows  # this rank's shard only
    for _ in range(3):
        run.trainer.step()
    flat = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    copies = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(copies, flat)
    assert torch.equal(copies[0], copies[1]), "ranks' weights differ"
    noise = run.model.sample_latent(4)
    others = [torch.zeros_like(noise) for _ in range(2)]
    dist.all_gather(others, noise)
    assert not torch.equal(others[0], others[1]), "ranks draw the same noise"
    print("rank", dist.get_rank(), "ok")
""")


def test_two_ranks_keep_identical_weights_on_disjoint_batches(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = _run([*TORCHRUN, str(script), str(tmp_path / "run")])
    assert proc.stdout.count("ok") == 2
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_torchrun_training_writes_once_and_resumes_in_one_process(tmp_path):
    out = tmp_path / "run"
    _run([*TORCHRUN, "-m", "flexae", "train", "--model", "flexae", "--dataset", "synthetic-5d", "--latent-dim", "4",
          "--steps", "6", "--batch-size", "16", "--out", str(out), "--quiet",
          "--set", "train.log_every=1", "--set", "train.checkpoint_every=3", "--set", "train.eval_samples=50"])
    config = json.loads((out / "config.json").read_text())
    assert config["processes"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss_ae" in r]
    assert steps == list(range(1, 7))  # one writer: every step logged exactly once
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint.pt"]

    _run([sys.executable, "-m", "flexae", "train", "--resume", str(out), "--steps", "9", "--quiet"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss_ae" in r] == list(range(1, 10))
    assert json.loads((out / "config.json").read_text())["processes"] == 1
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 9
