"""train.batchnorm_stats: "authors" refreshes BatchNorm from every stream of the authors' graph in
each update, and changes nothing else (flexae.training.batchnorm)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.errors import UserError
from flexae.registry import build_model, make_trainer
from flexae.runs.checkpoint import load_checkpoint
from flexae.training.batchnorm import batchnorm_layers
from flexae.app.train import resume, train
from flexae.validation import validate_config

SHAPE = (1, 8, 8)  # the smallest side the image networks take: a cheap iteration


def _one_step(name: str, mode: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(name=name, latent_dim=4), SHAPE)
    data = torch.randint(0, 256, (64, *SHAPE), dtype=torch.uint8)
    trainer = make_trainer(model, OptimConfig(), RandomBatches(data, 6), batchnorm_stats=mode, seed=seed)
    model.train()
    logs = trainer.step()
    return model, {k: float(v) for k, v in logs.items()}


def _tracked(module) -> set[int]:
    return {int(bn.num_batches_tracked) for bn in batchnorm_layers(module)}


# Refreshes of each BatchNorm layer in one iteration (decoder, encoder). FlexAE-SR, own: D in lines
# 3, 6 (x5), 8; E in 3, 5 (x5), 6 (x5, two batches), 8 (two), 10. Authors: 14 updates (sess.runs of
# FlexAESR.py's `train`: 1 + 5 x 2 + 3) x 3 decoder streams (D(E(x)), D(G(n)), interpolations) and
# x 2 encoder streams (E(x), E(x_1)). (Issue 19 counted 13 updates, 39 decoder refreshes.)
# FlexAE: 8 updates (3, 5 x5, 9, 10) x streams E(x) | D(E(x)), D(G(n)); WAE: 7 (no L_Gen).
COUNTS = {("flexae-sr", "own"): (7, 19), ("flexae-sr", "authors"): (42, 28),
          ("flexae", "own"): (1, 7), ("flexae", "authors"): (16, 8),
          ("wae", "own"): (1, 7), ("wae", "authors"): (14, 7)}


@pytest.mark.parametrize("name,mode", list(COUNTS))
def test_refreshes_per_iteration_are_the_graphs(name: str, mode: str) -> None:
    model, _ = _one_step(name, mode)
    decoder, encoder = COUNTS[name, mode]
    assert _tracked(model.decoder) == {decoder}
    assert _tracked(model.encoder) == {encoder}


@pytest.mark.parametrize("name", ["flexae-sr", "wae"])
def test_authors_changes_only_the_running_statistics(name: str) -> None:
    own, own_logs = _one_step(name, "own")
    authors, authors_logs = _one_step(name, "authors")
    assert own_logs == authors_logs  # every loss of the first iteration, bit for bit
    for (key, a), b in zip(own.named_parameters(), authors.parameters()):
        assert torch.equal(a, b), key
    differ = [key for key, buf in own.named_buffers() if "running" in key
              and not torch.equal(buf, dict(authors.named_buffers())[key])]
    assert any(k.startswith("decoder") for k in differ)
    # WAE's graph has no second batch: each update's E(x) is its own pass, so E's statistics agree.
    assert any(k.startswith("encoder") for k in differ) == (name == "flexae-sr")


def test_authors_is_refused_for_other_trainers() -> None:
    cfg = RunConfig(ModelConfig("vae"), train=TrainConfig(dataset="mnist", batchnorm_stats="authors"))
    with pytest.raises(UserError, match=r"batchnorm_stats='authors' exists for the models of Algorithm 1.*vae"):
        validate_config(cfg, check_device=False)
    cfg.train.batchnorm_stats = "tf"
    with pytest.raises(UserError, match="batchnorm_stats"):
        validate_config(cfg, check_device=False)


def test_authors_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8))
    cfg = RunConfig(ModelConfig("flexae-sr", latent_dim=4),
                    train=TrainConfig(dataset=f"npy:{tmp_path / 'x.npy'}", steps=2, batch_size=4, grid_every=0,
                                      batchnorm_stats="authors", checkpoint_every=1))
    train(cfg, tmp_path / "whole", progress=False)
    cfg.train.steps = 1
    train(cfg, tmp_path / "part", progress=False)
    resume(tmp_path / "part", steps=2, progress=False)
    whole, part = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("whole", "part"))
    decoder_counts = {int(v) for k, v in whole.items() if k.startswith("decoder") and k.endswith("_tracked")}
    assert decoder_counts == {2 * 42}  # the authors' refreshes ran, through the training loop
    for key in whole:
        assert torch.equal(whole[key], part[key]), key
