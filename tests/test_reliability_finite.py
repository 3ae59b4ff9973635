"""One finiteness rule for every file a run holds (issue 25, item 5): prior.pt, sampler.pt,
checkpoints, exported weights and statistics files holding NaN are refused alike by export,
sample, eval and load_run; fits that diverge stop with one line; a degenerate GMM is detected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.cli import main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.registry import set_options
from flexae.errors import UserError
from flexae.app.build import attach_learned_prior
from flexae.app.load import load_run
from flexae.runs import prior_file, sampler_file
from flexae.app.train import train


def _cfg(model: str) -> RunConfig:
    cfg = RunConfig(ModelConfig(name=model, latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=2, batch_size=16, eval_samples=50,
                                      log_every=1, device="cpu"))
    set_options(cfg.model, expost_gmm_components=2, sampler_fit_points=200, sampler_steps=3)
    return cfg


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory) -> Path:
    return train(_cfg("ae-gmm"), tmp_path_factory.mktemp("finite") / "gmm", progress=False)


def _cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    return info.value.code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("flexae: warning:")]
    assert len(lines) == 1 and lines[0].startswith("flexae: error:"), err
    return lines[0]


def _poison_sampler(run: Path, change) -> None:
    """Rewrite sampler.pt with `change` applied to its tensors, checksum recomputed (it is no secret)."""
    path = run / "sampler.pt"
    state = torch.load(path, weights_only=True)
    change(state["sampler"])
    state["checksum"] = sampler_file._digest(state)
    torch.save(state, path)


def _write_nan_prior(run: Path) -> None:
    """A prior.pt of the right layout and fingerprint whose generator holds NaN (checksum recomputed)."""
    model, _ = load_run(run)  # the run's own prior
    step = int(torch.load(run / "checkpoint.pt", weights_only=True)["step"])
    prior = attach_learned_prior(model, 2, (128,), 2)
    with torch.no_grad():
        next(prior.generator.parameters()).fill_(float("nan"))
    prior_file.save(run, "fitted", "adversarial", {"noise_dim": 2}, model, prior, step, {})


def test_nan_prior_is_refused_by_export_sample_eval_and_load(gmm_run, tmp_path, capsys):
    run = Path(shutil.copytree(gmm_run, tmp_path / "run"))
    _write_nan_prior(run)
    # The fitted prior is used only when asked for (--prior fitted); then every reader refuses it.
    code, err = _cli(capsys, "export", str(run), "--out", str(tmp_path / "m.safetensors"), "--prior", "fitted")
    assert code == 2 and "prior.pt" in _one_line(err) and "NaN" in err
    assert not (tmp_path / "m.safetensors").exists()
    code, err = _cli(capsys, "sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "4", "--prior", "fitted")
    assert code == 2 and "NaN" in _one_line(err) and not (tmp_path / "s.npz").exists()
    code, err = _cli(capsys, "eval", str(run), "--prior", "fitted")
    assert code == 2 and "prior.pt: generator" in _one_line(err)
    with pytest.raises(UserError, match="prior.pt: generator.* holds NaN or infinity; run `flexae fit-prior"):
        load_run(run, prior="fitted")


def test_nan_sampler_is_refused_by_export_and_sample(gmm_run, tmp_path, capsys):
    run = Path(shutil.copytree(gmm_run, tmp_path / "run"))
    _poison_sampler(run, lambda s: s["means"].fill_(float("nan")))
    code, err = _cli(capsys, "export", str(run), "--out", str(tmp_path / "m.safetensors"))
    assert code == 2 and "sampler.pt: means holds NaN or infinity" in _one_line(err)
    code, err = _cli(capsys, "sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "4")
    assert code == 2 and "sampler.pt" in _one_line(err)


def test_singular_gmm_covariance_is_detected(gmm_run, tmp_path, capsys):
    run = Path(shutil.copytree(gmm_run, tmp_path / "run"))
    _poison_sampler(run, lambda s: s["covariances"].zero_())  # finite, but no density
    code, err = _cli(capsys, "sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "4")
    assert code == 2 and "degenerated" in _one_line(err) and "fit-sampler" in err


def test_gmm_fit_on_degenerate_codes_is_one_line():
    from flexae.baselines.deterministic import GaussianMixtureSampler, check_gmm
    from flexae.baselines.deterministic_train import fit_gmm
    from flexae.baselines.deterministic import ExPostGMMOptions

    sampler = GaussianMixtureSampler(2, 3)
    codes = torch.randn(50, 3)
    codes[3, 1] = float("nan")
    with pytest.raises(UserError, match="codes hold NaN"):
        fit_gmm(sampler, codes, ExPostGMMOptions(), torch.Generator(), 0, False)
    with pytest.raises(UserError, match="NaN or infinite weights"):
        check_gmm(torch.tensor([float("nan"), 0.5]), torch.zeros(2, 3), torch.eye(3).repeat(2, 1, 1))
    singular = torch.eye(3).repeat(2, 1, 1)
    singular[1, 2, 2] = 0
    with pytest.raises(UserError, match="component 1 is singular"):
        check_gmm(torch.tensor([0.5, 0.5]), torch.zeros(2, 3), singular)


def test_diverged_fit_prior_stops_with_one_line(gmm_run, tmp_path, capsys, monkeypatch):
    from flexae.nets import factory

    run = Path(shutil.copytree(gmm_run, tmp_path / "run"))
    # A fit gone wrong: the generator starts with an infinite weight, so its updates turn NaN.
    real = factory.prior_networks

    def poisoned(*args):
        generator, critic = real(*args)
        with torch.no_grad():
            next(generator.parameters()).fill_(float("inf"))
        return generator, critic

    monkeypatch.setattr(factory, "prior_networks", poisoned)
    code, err = _cli(capsys, "fit-prior", str(run), "--steps", "3", "--batch-size", "16", "--quiet")
    assert code == 2 and "the prior fit diverged" in _one_line(err)
    assert not (run / "prior.pt").exists()


def test_diverged_sampler_fit_is_not_written(gmm_run, tmp_path, monkeypatch):
    from flexae.app import fit_sampler as samplers

    run = Path(shutil.copytree(gmm_run, tmp_path / "run"))
    before = (run / "sampler.pt").read_bytes()
    model, cfg = load_run(run)

    def diverge(model, data, hp, seed, progress):  # what an exploding second-stage fit leaves behind
        model.expost_sampler.means.fill_(float("inf"))
        return {"loss": float("nan")}

    monkeypatch.setattr(samplers, "fit_sampler", diverge)
    with pytest.raises(UserError, match="sampler fit diverged: sampler.means"):
        samplers.fit_and_save(model, run, torch.zeros(4, 128), model.options, 2)
    assert (run / "sampler.pt").read_bytes() == before


@pytest.mark.parametrize("fields, message", [
    (dict(mu=np.zeros(0), sigma=np.zeros((0, 0)), n=np.int64(10)), "empty"),
    (dict(mu=np.zeros(3), sigma=-np.eye(3), n=np.int64(10)), "not a covariance"),
    (dict(mu=np.zeros(3), sigma=np.triu(np.ones((3, 3))), n=np.int64(10)), "not a covariance"),
    (dict(mu=np.zeros(3), sigma=np.eye(3), n=np.int64(1)), "at least 2"),
    (dict(mu=np.array([0, np.nan, 0]), sigma=np.eye(3), n=np.int64(10)), "mu holds NaN or infinity"),
])
def test_bad_statistics_files_are_refused_not_fid_zero(tmp_path, capsys, fields, message):
    np.savez(tmp_path / "bad.npz", **fields)
    np.savez(tmp_path / "good.npz", mu=np.zeros(3), sigma=np.eye(3), n=np.int64(10))
    code, err = _cli(capsys, "metrics", "fid", str(tmp_path / "bad.npz"), str(tmp_path / "bad.npz"))
    assert code == 2 and message in _one_line(err)
