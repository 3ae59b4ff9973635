"""Networks, models and the Algorithm-1 step: shapes, and which parameters each update moves."""

import pytest
import torch

from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.registry import build_model, make_trainer
from flexae.nets.synthetic import (synthetic_decoder, synthetic_encoder, synthetic_latent_critic,
                                   synthetic_prior_generator)
from flexae.training.trainers import AdversarialTrainer, VAETrainer


@pytest.mark.parametrize("m", [2, 50])
def test_synthetic_network_shapes(m):
    x, z = torch.randn(7, 128), torch.randn(7, m)
    assert synthetic_encoder(128, m)(x).shape == (7, m)
    out = synthetic_decoder(m, 128)(z)
    assert out.shape == (7, 128) and out.abs().max() <= 1
    assert synthetic_prior_generator(3, m)(torch.randn(7, 3)).shape == (7, m)
    assert synthetic_latent_critic(m)(z).shape == (7, 1)
    # Table 6: one hidden layer in E and G, two in the critic, none in D.
    assert sum(isinstance(l, torch.nn.Linear) for l in synthetic_latent_critic(m)) == 3
    assert sum(isinstance(l, torch.nn.Linear) for l in synthetic_encoder(128, m)) == 2


@pytest.mark.parametrize("name", ["flexae", "wae", "wae-gmm", "vae"])
def test_models_build_encode_generate(name):
    model = build_model(ModelConfig(name=name, latent_dim=4, noise_dim=3 if name == "flexae" else None), (128,))
    x = torch.randn(5, 128)
    assert model.encode(x).shape == (5, 4)
    assert model.reconstruct(x).shape == (5, 128)
    assert model.generate(6).shape == (6, 128)


def test_gmm_prior_has_separated_modes():
    model = build_model(ModelConfig(name="wae-gmm", latent_dim=2, gmm_components=6, gmm_radius=4.0), (128,))
    z = model.sample_latent(6000)
    radii = z.norm(dim=1)
    assert 3.0 < radii.median() < 5.0  # mass sits on the ring of means, not at the origin
    assert (radii < 1.0).float().mean() < 0.02



def test_gmm_prior_supplement_layout_is_the_true_latent_mixture():
    """gmm_layout="supplement": samples fall near the 6 true means of supplement 7.1, each mode
    with its own spread (component 3 has variance 0.5, component 1 variance 1)."""
    model = build_model(ModelConfig(name="wae-gmm", latent_dim=2, gmm_layout="supplement"), (128,))
    true_means = torch.tensor([[0.0, 0.0], [5, 5], [-5, 5], [5, -1.5], [-2, -7], [-4, -3]])
    z = model.sample_latent(30000, torch.Generator().manual_seed(0))
    nearest = torch.cdist(z, true_means).argmin(dim=1)
    assert torch.bincount(nearest, minlength=6).min() > 3500  # every mode is used, about equally
    spread = [(z[nearest == k] - true_means[k]).std().item() for k in (0, 2)]
    assert 0.9 < spread[0] < 1.1 and 0.6 < spread[1] < 0.8  # stds 1 and sqrt(0.5)
    in_5d = build_model(ModelConfig(name="wae-gmm", latent_dim=8, gmm_layout="supplement"), (128,))
    assert torch.equal(in_5d.prior.means[:, 5:], torch.zeros(6, 3))  # zeros beyond the true dims

def _params(model, part):
    return {n: p.detach().clone() for n, p in getattr(model, part).named_parameters()}


def _changed(model, before):
    """Names of the model parts whose parameters differ from `before`."""
    changed = set()
    for part, params in before.items():
        for n, p in getattr(model, part).named_parameters():
            if not torch.equal(p, params[n]):
                changed.add(part)
    return changed


def _adversarial(name="flexae"):
    model = build_model(ModelConfig(name=name, latent_dim=3), (128,))
    data = torch.rand(256, 128) * 2 - 1
    trainer = AdversarialTrainer(model, OptimConfig(), RandomBatches(data, 32))
    return model, trainer


PARTS = ("encoder", "decoder", "latent_critic", "prior")


@pytest.mark.parametrize("update, expected", [
    ("ae", {"encoder", "decoder"}),
    ("critic", {"latent_critic"}),
    ("gen", {"prior"}),
    ("enc", {"encoder"}),
])
def test_each_update_changes_only_its_parameters(update, expected):
    model, trainer = _adversarial()
    before = {p: _params(model, p) for p in PARTS}
    x = trainer.batches()
    {"ae": lambda: trainer.update_ae(x), "critic": lambda: trainer.update_critic(x),
     "gen": lambda: trainer.update_gen(32), "enc": lambda: trainer.update_enc(x)}[update]()
    assert _changed(model, before) == expected
    # A frozen critic gets its requires_grad back after the update.
    assert all(p.requires_grad for p in model.latent_critic.parameters())


def test_optimizers_of_the_paper():
    model, trainer = _adversarial()
    opts = trainer.optimizers
    assert set(opts) == {"ae", "critic", "gen", "enc"}
    assert opts["ae"].param_groups[0]["lr"] == 2e-4 and opts["ae"].param_groups[0]["betas"] == (0.9, 0.999)
    assert opts["critic"].param_groups[0]["lr"] == 1e-4 and opts["critic"].param_groups[0]["betas"] == (0.0, 0.9)
    assert opts["gen"].param_groups[0]["lr"] == 1e-4 and opts["gen"].param_groups[0]["betas"] == (0.0, 0.9)
    assert opts["enc"].param_groups[0]["lr"] == 1e-5 and opts["enc"].param_groups[0]["betas"] == (0.0, 0.9)
    # The encoder-pull optimiser has only the encoder's parameters, with its own Adam state.
    enc_ids = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in opts["enc"].param_groups[0]["params"]} == enc_ids


def test_fixed_prior_has_no_generator_update():
    model, trainer = _adversarial("wae")
    assert "gen" not in trainer.optimizers
    before = {p: _params(model, p) for p in ("encoder", "decoder", "latent_critic")}
    logs = trainer.step()
    assert "loss_gen" not in logs
    assert _changed(model, before) == {"encoder", "decoder", "latent_critic"}


def test_full_step_runs_critic_five_times(monkeypatch):
    model, trainer = _adversarial()
    calls = []
    original = trainer.update_critic
    monkeypatch.setattr(trainer, "update_critic", lambda x: calls.append(1) or original(x))
    logs = trainer.step()
    assert len(calls) == 5
    assert set(logs) == {"loss_ae", "loss_critic", "w_critic", "loss_gen", "loss_enc"}
    assert all(torch.isfinite(v) for v in logs.values())


def test_vae_step_updates_encoder_and_decoder():
    model = build_model(ModelConfig(name="vae", latent_dim=3), (128,))
    trainer = make_trainer(model, OptimConfig(), RandomBatches(torch.rand(64, 128), 16))
    assert isinstance(trainer, VAETrainer)
    before = {p: _params(model, p) for p in ("encoder", "decoder")}
    logs = trainer.step()
    assert _changed(model, before) == {"encoder", "decoder"} and logs["loss_kl"] >= 0


def test_flexae_learns_on_synthetic_data(tmp_path):
    """A short run must lower the reconstruction error and FD, and its learned prior must sit
    closer to the encoder codes than the fixed N(0, I) does (the codes drift away from the origin
    early in training; the critic and L_Gen make G follow them)."""
    from flexae.data import load_dataset
    from flexae.metrics.wasserstein import wasserstein1_exact
    from flexae.app.train import Run, synthetic_metrics
    data = load_dataset("synthetic-2d")
    cfg = RunConfig(ModelConfig(name="flexae", latent_dim=2), train=TrainConfig(dataset="synthetic-2d"))
    run = Run(cfg, tmp_path, torch.device("cpu"), data)
    start = synthetic_metrics(run.model, data, 500)
    first = run.trainer.step()["loss_ae"].item()
    for _ in range(300):
        logs = run.trainer.step()
    end = synthetic_metrics(run.model, data, 500)
    assert logs["loss_ae"].item() < 0.75 * first
    assert end["fd"] < 0.9 * start["fd"]
    with torch.no_grad():
        codes = run.model.encode(data.test[:500]).numpy()
    w_fixed = wasserstein1_exact(torch.randn(500, 2).numpy(), codes)
    assert end["w_latent"] < w_fixed
