"""`flexae fit-prior`: a FlexAE prior learned on the frozen codes of a trained run (or of any
encoder), written into the run and used by load_run, sample and export when asked (prior="fitted")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flexae import fit_prior, fit_prior_run
from flexae.cli import cli
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.priors import LearnedPrior, StandardNormalPrior
from flexae.app.load import load_run
from flexae.app.train import train


def _wae_synthetic(tmp_path: Path) -> Path:
    cfg = RunConfig(ModelConfig("wae", latent_dim=8),
                    train=TrainConfig(dataset="synthetic-5d", steps=30, batch_size=32, eval_every=0, log_every=10))
    return train(cfg, tmp_path / "wae", progress=False)


def test_fit_prior_on_a_wae_run_learns_the_codes_and_is_used_by_load_run(tmp_path: Path) -> None:
    run = _wae_synthetic(tmp_path)
    before, _ = load_run(run)
    stats = fit_prior_run(run, steps=150, batch_size=64, progress=False)
    assert (run / "prior.pt").is_file()
    # The learned prior is closer (exact W1) to the frozen codes than the N(0, I) the WAE was trained with.
    assert stats["w1_learned_prior"] < stats["w1_standard_normal"]
    model, _ = load_run(run, prior="fitted")
    assert isinstance(model.prior, LearnedPrior)
    own, _ = load_run(run)  # the run's own prior unless the fitted one is asked for
    assert isinstance(own.prior, StandardNormalPrior)
    # Encoder and decoder are frozen: every weight but the prior's is the checkpoint's.
    for name, t in before.state_dict().items():
        assert torch.equal(t, model.state_dict()[name]), name
    assert model.generate(5).shape == (5, 128)
    # A damaged prior file is a one-line error naming the command that rewrites it.
    good = (run / "prior.pt").read_bytes()
    (run / "prior.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match=r"cannot load learned prior .*flexae fit-prior"):
        load_run(run, prior="fitted")
    (run / "prior.pt").write_bytes(good)
    # A resumed run has other weights: its stale prior.pt is refused when asked for.
    from flexae.app.train import resume
    resume(run, 31, progress=False)
    with pytest.raises(UserError, match="fitted to other weights.*fit-prior"):
        load_run(run, prior="fitted")
    assert isinstance(load_run(run)[0].prior, StandardNormalPrior)


def test_fit_prior_cli_on_an_mnist_shaped_ae_gmm_run_samples_and_exports(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "digits.npy", rng.integers(0, 256, (24, 28, 28), dtype=np.uint8))
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--model", "ae-gmm", "--dataset", f"npy:{tmp_path / 'digits.npy'}",
                                 "--steps", "2", "--batch-size", "4", "--out", str(run), "--quiet",
                                 "--set", "train.grid_every=0", "--set", "model.options.expost_gmm_components=2"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["fit-prior", str(run), "--steps", "3", "--batch-size", "8", "--quiet"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "w1_learned_prior" in result.output and (run / "prior.pt").is_file()
    result = runner.invoke(cli, ["sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "4", "--prior",
                                 "fitted"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model, _ = load_run(run, prior="fitted")
    assert isinstance(model.prior, LearnedPrior)
    result = runner.invoke(cli, ["export", str(run), "--out", str(tmp_path / "w.safetensors"), "--prior", "fitted"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported, _ = load_run(tmp_path / "w.safetensors", prior="fitted")
    assert isinstance(exported.prior, LearnedPrior)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(exported.generate(2, g()), model.generate(2, g()))  # the same prior, exported


def test_fit_prior_for_codes_of_your_own_encoder() -> None:
    torch.manual_seed(0)
    codes = torch.randn(512, 3) * torch.tensor([3.0, 0.5, 1.0]) + 2.0  # not N(0, I)
    prior, stats = fit_prior(codes, networks="synthetic", steps=200, batch_size=64, progress=False)
    assert prior.sample(7).shape == (7, 3)
    assert stats["w1_learned_prior"] < stats["w1_standard_normal"]
    with pytest.raises(UserError, match=r"codes must be a float tensor \(N, m\)"):
        fit_prior(torch.zeros(5))
    with pytest.raises(UserError, match="networks must be"):
        fit_prior(codes, networks="huge")
