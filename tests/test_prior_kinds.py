"""One prior interface over a trained run's codes (flexae.app.prior_kinds): every kind fits on tiny
codes, is saved side by side with the others in the run, loads by name in a fresh process and
samples the same there; flow matching learns; `flexae compare-priors` fits and tabulates them all."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from flexae.app.fit_prior import fit_prior_run
from flexae.app.load import load_run
from flexae.app.prior_kinds import PriorFitConfig, fit_kind, latent_distances
from flexae.app.train import train
from flexae.cli import cli
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.priors import FlowMatchingPrior, StandardNormalPrior

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = PriorFitConfig(steps=5, batch_size=32, components=3, width=16, depth=1, ode_steps=4)
NAMES = {"adversarial": "fitted", "gmm": "gmm", "flow-matching": "flow-matching", "2s-vae": "2s-vae"}


def _codes(n: int = 600, seed: int = 0) -> torch.Tensor:
    """Four well-separated clusters in 3-D, far from N(0, I): (n, 3)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[4.0, 0, 1], [-4, 0, 1], [0, 4, -1], [0, -4, -1]])
    return centers[torch.randint(0, 4, (n,), generator=g)] + 0.3 * torch.randn(n, 3, generator=g)


@pytest.fixture(scope="module")
def wae_run(tmp_path_factory) -> Path:
    cfg = RunConfig(ModelConfig("wae", latent_dim=4),
                    train=TrainConfig(dataset="synthetic-5d", steps=10, batch_size=32, eval_every=0, log_every=10))
    return train(cfg, tmp_path_factory.mktemp("runs") / "wae", progress=False)


def test_flow_matching_brings_its_samples_closer_to_the_codes_than_its_untrained_state() -> None:
    codes = _codes()
    fit = PriorFitConfig(steps=400, batch_size=128, width=64, depth=2, ode_steps=16, solver="euler")
    trained = fit_kind("flow-matching", codes, (5,), fit, seed=0, progress=False).module
    torch.manual_seed(0)  # the same initial velocity field, with the fit's standardisation: only training differs
    untrained = FlowMatchingPrior(3, 64, 2, 16, "euler").eval()
    untrained.shift.copy_(trained.shift)
    untrained.scale.copy_(trained.scale)
    before, after = latent_distances(untrained, codes), latent_distances(trained, codes)
    assert after["w1_prior"] < 0.7 * before["w1_prior"], (before, after)
    assert after["mmd_prior"] < before["mmd_prior"]
    # Steps and solver are recorded with the fit; the solver changes the samples.
    assert (trained.ode_steps, trained.solver) == (16, "euler")
    noise = trained.noise(8, torch.Generator().manual_seed(1))
    euler = trained(noise)
    trained.solver = "midpoint"
    assert not torch.allclose(euler, trained(noise))


def test_every_kind_is_fitted_saved_by_name_and_samples_the_same_in_a_fresh_process(wae_run: Path) -> None:
    expected = {}
    for kind, name in NAMES.items():
        stats = fit_prior_run(wae_run, kind=kind, steps=TINY.steps, batch_size=32, fit_points=256, progress=False,
                              fit=TINY)
        assert {"w1_prior", "mmd_prior"} <= set(stats)
        model, _ = load_run(wae_run, prior=name)
        expected[name] = model.generate(6, torch.Generator().manual_seed(5)).tolist()
        again = model.generate(6, torch.Generator().manual_seed(5)).tolist()
        assert again == expected[name], name  # same seed, same samples
    assert (wae_run / "prior.pt").is_file() and sorted(p.name for p in (wae_run / "priors").iterdir()) == [
        "2s-vae.pt", "flow-matching.pt", "gmm.pt"]
    own, _ = load_run(wae_run)  # the run's own prior unless a fitted one is asked for
    assert isinstance(own.prior, StandardNormalPrior)
    script = (f"import json, torch\nfrom flexae import load_run\nout = {{}}\n"
              f"for name in {list(NAMES.values())!r}:\n"
              f"    model, _ = load_run({str(wae_run)!r}, prior=name)\n"
              f"    out[name] = model.generate(6, torch.Generator().manual_seed(5)).tolist()\n"
              f"print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    for name in expected:  # the same to round-off (the other process may split matmuls over other threads)
        assert torch.allclose(torch.tensor(fresh[name]), torch.tensor(expected[name]), atol=1e-5), name
    assert len({json.dumps(v) for v in expected.values()}) == len(NAMES)  # four different priors


def test_a_pickle_planted_as_a_named_prior_is_refused_without_running_it(wae_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    target = wae_run / "priors" / "planted.pt"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(pickle.dumps(Payload()))
    torch.save({"kind": "gmm", "payload": Payload()}, wae_run / "priors" / "planted2.pt")
    for name in ("planted", "planted2"):
        with pytest.raises(UserError, match=f"cannot load learned prior .*{name}.pt"):
            load_run(wae_run, prior=name)
    assert not marker.exists()
    with pytest.raises(UserError, match="no fitted prior named 'nothing' .*it has: "):
        load_run(wae_run, prior="nothing")
    with pytest.raises(UserError, match="prior must be 'own', 'fitted' or the name"):
        load_run(wae_run, prior="../escape")


def test_sample_eval_and_export_choose_a_prior_by_name_on_the_command_line(wae_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["fit-prior", str(wae_run), "--kind", "gmm", "--name", "gmm3", "--components", "3",
                                 "--fit-points", "256", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "priors/gmm3.pt" in result.output
    out = tmp_path / "w.safetensors"
    result = runner.invoke(cli, ["export", str(wae_run), "--out", str(out), "--prior", "gmm3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported, _ = load_run(out, prior="gmm3")
    model, _ = load_run(wae_run, prior="gmm3")
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    assert torch.equal(exported.generate(4, g()), model.generate(4, g()))
    with pytest.raises(UserError, match="holds a prior fitted after training.*--prior gmm3"):
        load_run(out)


def test_compare_priors_fits_every_kind_on_the_same_codes_and_writes_a_table(wae_run: Path) -> None:
    result = CliRunner().invoke(cli, ["compare-priors", str(wae_run), "--kinds", "own,gmm,flow-matching,2s-vae,adversarial",
                                      "--steps", "5", "--fit-points", "256", "--components", "3", "--width", "16",
                                      "--ode-steps", "4", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = json.loads((wae_run / "compare-priors.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["own", "gmm", "flow-matching", "2s-vae", "fitted"]
    assert table["codes"] == 256
    for row in table["rows"]:
        assert row["latent"]["w1_prior"] > 0 and "mmd_prior" in row["latent"]
    # A GMM fitted to the codes beats N(0, I), the WAE's own prior, in latent W1.
    w1 = {row["name"]: row["latent"]["w1_prior"] for row in table["rows"]}
    assert w1["gmm"] < w1["own"]
    md = (wae_run / "compare-priors.md").read_text()
    assert md.count("\n| ") == 6 and "Latent W1" in md  # header and 5 rows
    with pytest.raises(UserError, match="prior kind must be one of"):
        from flexae.app.compare_priors import compare_priors
        compare_priors(wae_run, ("gmm", "vampprior"))


@pytest.mark.slow
def test_compare_priors_on_an_image_run_adds_fid_kid_and_a_grid_per_prior(tmp_path: Path) -> None:
    import numpy as np
    np.save(tmp_path / "digits.npy", np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8))
    runner, run = CliRunner(), tmp_path / "run"
    result = runner.invoke(cli, ["train", "--model", "ae-gmm", "--dataset", f"npy:{tmp_path / 'digits.npy'}",
                                 "--steps", "2", "--batch-size", "4", "--latent-dim", "4", "--out", str(run), "--quiet",
                                 "--set", "train.grid_every=0", "--set", "model.options.expost_gmm_components=2"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with pytest.warns(UserWarning, match="FID from 4 samples"):
        result = runner.invoke(cli, ["compare-priors", str(run), "--kinds", "own,gmm,flow-matching", "--n", "4",
                                     "--steps", "3", "--components", "2", "--width", "8", "--ode-steps", "2",
                                     "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = json.loads((run / "compare-priors.json").read_text())
    assert table["protocol"]["images"]["n"] == 4 and table["protocol"]["images"]["mode"] == "pytorch-fid"
    rows = {row["name"]: row for row in table["rows"]}
    # The GMM kind with the run's own settings and seed is the run's own ex-post GMM: the same numbers.
    assert rows["gmm"]["fid"] == pytest.approx(rows["own"]["fid"]) and rows["flow-matching"]["fid"] > 0
    for name in rows:
        assert (run / "grids" / f"priors-{name}.png").stat().st_size > 0
