"""Checkpoints written in a background thread (accelerator runs): a snapshot of the step it was
asked for, errors raised to the training thread, and runs identical to foreground-written ones.
On the CPU the loop writes in the foreground; these tests force the thread there."""

from __future__ import annotations

import pytest
import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.runs.checkpoint import CheckpointWriter, load_checkpoint, rng_state, versions
from flexae.runs.layout import CHECKPOINT_NAME
from flexae.app import train as loop


def _state(weight: torch.Tensor) -> dict:
    return {"config": RunConfig().to_dict(), "step": 1, "model": {"w": weight},
            "optimizers": {"ae": {"state": {0: {"exp_avg": weight * 2}}, "param_groups": []}},
            "rng": rng_state(), "versions": versions()}


def test_a_background_write_is_a_snapshot_of_the_step_it_was_given(tmp_path):
    weight = torch.arange(6, dtype=torch.float32)
    writer = CheckpointWriter(background=True)
    writer.save(tmp_path / "c.pt", _state(weight))
    weight.add_(100)  # the next iteration updates the weights in place while the thread writes
    writer.wait()
    saved = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(saved["model"]["w"], torch.arange(6, dtype=torch.float32))


def test_a_failed_background_write_is_raised_by_the_next_wait(tmp_path):
    writer = CheckpointWriter(background=True)
    bad = _state(torch.tensor([1.0, float("nan")]))
    writer.save(tmp_path / "c.pt", bad)  # returns: the check runs in the thread
    with pytest.raises(Exception, match="NaN or infinity"):
        writer.wait()
    assert not (tmp_path / "c.pt").exists()
    writer.wait()  # reported once


def _cfg(steps: int) -> RunConfig:
    return RunConfig(ModelConfig(name="flexae", latent_dim=5),
                     train=TrainConfig(dataset="synthetic-5d", steps=steps, batch_size=16, device="cpu",
                                       log_every=2, eval_every=0, checkpoint_every=2))


def test_runs_with_background_checkpoints_equal_foreground_ones_and_resume(tmp_path, monkeypatch):
    fore = loop.train(_cfg(6), tmp_path / "fore", progress=False)
    monkeypatch.setattr(loop, "checkpoint_writer", lambda device: CheckpointWriter(background=True))
    back = loop.train(_cfg(4), tmp_path / "back", progress=False)
    assert load_checkpoint(back / CHECKPOINT_NAME)["step"] == 4  # on disk when train returns
    loop.resume(back, steps=6, progress=False)
    a, b = load_checkpoint(fore / CHECKPOINT_NAME), load_checkpoint(back / CHECKPOINT_NAME)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
