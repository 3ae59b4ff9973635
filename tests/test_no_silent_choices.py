"""Evaluation choices made only when asked: best.pt selected on a validation slice of the training
images (train.best_split), and a prior learned after training used only with prior="fitted"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flexae.cli import cli
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import load_for_config
from flexae.errors import UserError
from flexae.priors import LearnedPrior, StandardNormalPrior
from flexae.app.load import load_run
from flexae.app.fit_prior import fit_prior_run
from flexae.app.image_eval import evaluation_split
from flexae.app.train import Run, train

from test_tables import FakeEvaluation, _settings, tiny_mnist  # noqa: F401  (a fixture)


# --- train.best_split -----------------------------------------------------------------------------

def _images(n: int, offset: int = 0) -> torch.Tensor:
    """uint8 (n, 1, 8, 8) images, image i filled with the value offset + i: each one recognisable."""
    return (torch.arange(n, dtype=torch.uint8) + offset).view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()


def test_validation_is_a_fixed_slice_of_the_training_images_never_trained_on() -> None:
    train_images, test_images = _images(50), _images(20, offset=100)
    kept, reference = evaluation_split(train_images, test_images, 10, "validation", data_seed=3)
    held = set(reference[:, 0, 0, 0].tolist())
    assert len(held) == 10 and held <= set(range(50))                 # training images, not test ones
    assert held.isdisjoint(kept[:, 0, 0, 0].tolist()) and kept.shape[0] == 40
    again = evaluation_split(train_images, test_images, 10, "validation", data_seed=3)[1]
    other = evaluation_split(train_images, test_images, 10, "validation", data_seed=4)[1]
    assert torch.equal(again, reference) and not torch.equal(other, reference)
    # Without eval_images every training image is trained on, as before (fp32 numbers unchanged).
    same, none = evaluation_split(train_images, test_images, 0, "validation", data_seed=3)
    assert same is train_images and none is None
    with pytest.raises(UserError, match="leaves no training images"):
        evaluation_split(train_images, test_images, 50, "validation", data_seed=3)


def test_selection_on_test_images_warns() -> None:
    train_images, test_images = _images(50), _images(20, offset=100)
    with pytest.warns(UserWarning, match="best.pt is selected on the test images"):
        kept, reference = evaluation_split(train_images, test_images, 10, "test", data_seed=0)
    assert kept is train_images and torch.equal(reference, test_images)


def test_a_run_with_eval_images_trains_without_its_validation_images(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _images(40).squeeze(1).numpy())
    cfg = RunConfig(ModelConfig("wae", latent_dim=4),
                    train=TrainConfig(dataset=f"npy:{tmp_path / 'x.npy'}", eval_images=6, batch_size=4, device="cpu"))
    data = load_for_config(cfg.train)
    run = Run(cfg, tmp_path / "run", torch.device("cpu"), data)
    reference = set(run.image_eval.test[:, 0, 0, 0].tolist())
    trained_on = set(run.batches.data[:, 0, 0, 0].tolist())
    assert len(reference) == 6 and reference <= set(data.train[:, 0, 0, 0].tolist())
    assert reference.isdisjoint(trained_on) and len(trained_on) == data.train.shape[0] - 6
    assert reference.isdisjoint(data.test[:, 0, 0, 0].tolist())


# --- prior="own" | "fitted" -----------------------------------------------------------------------

@pytest.fixture
def wae_with_prior(tmp_path: Path) -> Path:
    cfg = RunConfig(ModelConfig("wae", latent_dim=8),
                    train=TrainConfig(dataset="synthetic-5d", steps=3, batch_size=32, eval_every=0))
    run = train(cfg, tmp_path / "wae", progress=False)
    fit_prior_run(run, steps=3, batch_size=32, progress=False)
    return run


def test_load_run_uses_the_fitted_prior_only_when_asked(wae_with_prior: Path, tmp_path: Path) -> None:
    own, _ = load_run(wae_with_prior)
    assert isinstance(own.prior, StandardNormalPrior)                   # prior.pt is there, and not used
    fitted, _ = load_run(wae_with_prior, prior="fitted")
    assert isinstance(fitted.prior, LearnedPrior)
    (wae_with_prior / "prior.pt").unlink()
    with pytest.raises(UserError, match=r"has no fitted prior \(prior.pt\); run `flexae fit-prior"):
        load_run(wae_with_prior, prior="fitted")
    with pytest.raises(UserError, match="has no fitted prior named 'learned'.*fit-prior .* --name learned"):
        load_run(wae_with_prior, prior="learned")   # a name `fit-prior --name` could have written
    with pytest.raises(UserError, match="prior must be 'own', 'fitted' or the name of a prior"):
        load_run(wae_with_prior, prior="../prior")


def test_cli_prior_option_for_sample_export_and_eval(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.random.default_rng(0).integers(0, 256, (24, 8, 8), dtype=np.uint8))
    run, runner = tmp_path / "run", CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    ok("train", "--model", "wae", "--dataset", f"npy:{tmp_path / 'd.npy'}", "--steps", "1", "--batch-size", "4",
       "--out", str(run), "--quiet", "--set", "train.grid_every=0")
    refused = runner.invoke(cli, ["sample", str(run), "--out", str(tmp_path / "s.npz"), "--prior", "fitted"])
    assert isinstance(refused.exception, UserError) and "has no fitted prior" in str(refused.exception)
    ok("fit-prior", str(run), "--steps", "2", "--batch-size", "8", "--quiet")
    ok("sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "2", "--prior", "fitted")
    ok("export", str(run), "--out", str(tmp_path / "own.safetensors"))
    ok("export", str(run), "--out", str(tmp_path / "fitted.safetensors"), "--prior", "fitted")
    assert isinstance(load_run(tmp_path / "own.safetensors")[0].prior, StandardNormalPrior)
    assert isinstance(load_run(tmp_path / "fitted.safetensors", prior="fitted")[0].prior, LearnedPrior)
    with pytest.raises(UserError, match=r"holds a prior fitted after training, not prior='own'"):
        load_run(tmp_path / "fitted.safetensors")
    ok("eval", str(run), "--n", "2", "--metrics", "fid", "--batch-size", "2", "--device", "cpu", "--quiet",
       "--prior", "fitted")
    assert json.loads((run / "eval.json").read_text())["prior"] == "fitted"
    assert "prior: fitted" in (run / "eval.md").read_text()


@pytest.mark.slow  # two table runs trained on 28 x 28 images: ~3 min on a shared 2-core CPU
def test_table_evaluations_record_the_prior_in_their_cache_key(tmp_path, tiny_mnist, monkeypatch) -> None:  # noqa: F811
    import flexae.evaluation
    from flexae.experiments import tables
    fake = FakeEvaluation()
    monkeypatch.setattr(flexae.evaluation, "evaluate_generator", fake)
    own = _settings(tmp_path, tiny_mnist)
    assert "prior: own" in tables.reproduce_table1(own, models=("wae",), warn=lambda m: None)
    run = own.out / "runs" / "wae"
    fit_prior_run(run, steps=2, batch_size=16, data_dir=str(tiny_mnist), progress=False)
    tables.reproduce_table1(own, models=("wae",), warn=lambda m: None)
    assert len(fake.calls) == 1                                         # own prior: still the cached result
    fitted = _settings(tmp_path, tiny_mnist, prior="fitted")
    assert "prior: fitted" in tables.reproduce_table1(fitted, models=("wae",), warn=lambda m: None)
    stored = json.loads((own.out / "eval" / "wae.json").read_text())
    assert len(fake.calls) == 2 and stored["key"]["prior"] == "fitted" and "prior_sha256" in stored["key"]
    assert stored["results"]["prior"] == "fitted"
    fit_prior_run(run, steps=3, batch_size=16, data_dir=str(tiny_mnist), progress=False)  # a refit: evaluated again
    tables.reproduce_table1(fitted, models=("wae",), warn=lambda m: None)
    assert len(fake.calls) == 3
    with pytest.raises(UserError, match="has no fitted prior"):
        tables.reproduce_table1(fitted, models=("vae",), warn=lambda m: None)
