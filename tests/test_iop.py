"""vae-iop (flexae.baselines.iop): its losses against hand-computed values, the density-ratio
estimator on a 1-D case with a closed-form log ratio, what each of its updates moves, and a run on
tiny MNIST-shaped data that trains, resumes bit for bit, samples and loads from its folder."""

import math

import numpy as np
import pytest
import torch

from flexae.baselines import losses as bl
from flexae.baselines.iop import DensityRatioEstimator, ImplicitOptimalPrior
from flexae.baselines.iop_train import IOPTrainer
from flexae.config import Adam, ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.registry import build_model, make_trainer
from flexae.training.steps import make_adam, update


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; these nets are small
    yield
    torch.set_num_threads(threads)


def small_config(m: int = 4) -> ModelConfig:
    cfg = ModelConfig(name="vae-iop", latent_dim=m)
    cfg.options = {"iop_ratio_width": 16, "iop_ratio_steps": 2, "iop_sir_candidates": 8}
    return cfg


# --- the losses on tiny batches ----------------------------------------------------------------

def test_iop_kl_hand_computed():
    # sample 1: KL(N(0.5, 1) || N(0, 1)) = 0.5 * 0.25 = 0.125 in dim 1, and in dim 2
    # KL(N(-1, 0.25) || N(0, 1)) = 0.5 * (1 + 0.25 - 1 - log 0.25) = 0.818147; minus T = 0.3.
    # sample 2: KL = 0 (the prior itself), minus T = -0.5.
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(0.25)], [0.0, 0.0]])
    log_ratio = torch.tensor([0.3, -0.5])
    expected = ((0.125 + 0.5 * (0.25 - math.log(0.25)) - 0.3) + (0.0 + 0.5)) / 2
    assert float(bl.iop_kl(mu, logvar, log_ratio)) == pytest.approx(expected, abs=1e-6)


def test_density_ratio_loss_hand_computed():
    # codes: mean of -log sigmoid(0) = log 2 and -log sigmoid(2) = log(1 + e^-2);
    # prior samples: -log(1 - sigmoid(-1)) = log(1 + e^-1).
    loss = bl.density_ratio_loss(torch.tensor([0.0, 2.0]), torch.tensor([-1.0]))
    expected = (math.log(2) + math.log1p(math.exp(-2))) / 2 + math.log1p(math.exp(-1))
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_relative_ess_known_values():
    assert float(bl.relative_ess(torch.tensor([0.7, 0.7, 0.7]))) == pytest.approx(1.0)
    assert float(bl.relative_ess(torch.tensor([0.0, -float("inf")]))) == pytest.approx(0.5)  # w = (1, 0)
    assert float(bl.relative_ess(torch.tensor([1000.0, 1000.0 + math.log(3)]))) == pytest.approx(16 / 20, rel=1e-5)  # w = (1, 3), float32 logits


def test_the_trainer_loss_is_the_closed_form_kl_minus_t():
    """The step's logged KL equals KL(q(z|x) || N(0, I)) - T(z) recomputed from the same draw."""
    model = build_model(small_config(), (128,))
    x = torch.rand(6, 128) * 2 - 1
    trainer = make_trainer(model, OptimConfig(), lambda: x)
    torch.manual_seed(4)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        t = model.prior.log_ratio(z)
    expected = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1) - t).mean()
    torch.manual_seed(4)
    logs = trainer.update_vae(x)
    assert float(logs["loss_kl"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(logs["log_ratio"]) == pytest.approx(float(t.mean()), rel=1e-5)


# --- the density-ratio estimator on a known ratio ----------------------------------------------

def test_estimator_learns_a_closed_form_log_ratio_and_sir_samples_the_numerator():
    """q = N(1, 0.5^2) against p = N(0, 1): log q/p = log 2 - 2 (z - 1)^2 + z^2 / 2. After 1500
    logistic-regression steps (batch 512 of each, Adam 1e-3 as the authors'), T is within 0.2 of it
    everywhere on [0.25, 1.75] (q's mean +- 1.5 sd) and within 0.1 on average; resampling N(0, 1)
    proposals with exp(T) then draws codes with q's mean and standard deviation (to 0.05)."""
    torch.manual_seed(0)
    estimator = DensityRatioEstimator(1, 32, 2, 0.0)  # 2 x 32 tanh: a 1-D ratio needs no more
    optimizer = make_adam(estimator.parameters(), Adam(1e-3, 0.9, 0.999))
    for _ in range(1500):
        z_q, z_p = 1 + 0.5 * torch.randn(512, 1), torch.randn(512, 1)
        update(optimizer, bl.density_ratio_loss(estimator(z_q, dropout=True), estimator(z_p, dropout=True)))
    z = torch.linspace(0.25, 1.75, 31)[:, None]
    true = math.log(2) - 2 * (z[:, 0] - 1) ** 2 + z[:, 0] ** 2 / 2
    with torch.no_grad():
        error = (estimator(z) - true).abs()
        codes = ImplicitOptimalPrior(estimator, 1, candidates=100).sample(4000, torch.Generator().manual_seed(0))
    assert float(error.max()) < 0.2 and float(error.mean()) < 0.1
    assert codes.shape == (4000, 1)
    assert float(codes.mean()) == pytest.approx(1.0, abs=0.05)
    assert float(codes.std()) == pytest.approx(0.5, abs=0.05)


def test_sampling_is_chunked_reproducible_and_dropout_free():
    prior = build_model(small_config(), (128,)).prior
    prior.estimator.dropout = 0.9  # would change every draw if sampling used it
    a = prior.sample(300, torch.Generator().manual_seed(1))  # two chunks of proposals
    b = prior.sample(300, torch.Generator().manual_seed(1))
    assert a.shape == (300, 4) and torch.equal(a, b)


# --- what each update moves --------------------------------------------------------------------

def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(module, before):
    """Floating-point entries that changed (BatchNorm's integer pass counter counts every train-mode
    pass, frozen statistics or not; it is unused with a fixed momentum)."""
    return {k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}


def test_ratio_updates_move_only_t_and_the_vae_update_only_e_and_d():
    model = build_model(small_config(), (1, 28, 28))
    data = torch.rand(32, 1, 28, 28)
    trainer = make_trainer(model, OptimConfig(), lambda: data[torch.randint(0, 32, (8,))])
    assert isinstance(trainer, IOPTrainer) and set(trainer.optimizers) == {"ae", "ratio"}
    before = _state(model)
    trainer.update_ratio(trainer.batches())
    assert {k.split(".")[0] for k in _changed(model, before)} == {"prior"}  # no BN statistic moved either
    before = _state(model)
    trainer.update_vae(trainer.batches())
    changed = _changed(model, before)
    assert {k.split(".")[0] for k in changed} == {"encoder", "decoder"}
    assert any(k.endswith("running_mean") for k in changed)  # BN statistics move with the VAE update


def test_bad_iop_values_are_user_errors():
    for field, value in (("iop_ratio_steps", 0), ("iop_sir_candidates", 0), ("iop_ratio_dropout", 1.0)):
        cfg = small_config()
        cfg.options[field] = value
        with pytest.raises(UserError, match=field):
            build_model(cfg, (128,))


# --- a run: train, resume bit for bit, sample, load ---------------------------------------------

@pytest.fixture
def tiny_mnist(tmp_path):
    """An npz of MNIST-shaped uint8 images (N x 28 x 28 x 1): 64 training, 16 test images."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, train=rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8),
             test=rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8))
    return f"npz:{path}"


def test_trains_resumes_bit_for_bit_samples_and_loads(tmp_path, tiny_mnist):
    from flexae.app.load import load_run
    from flexae.runs.log import read_log
    from flexae.app.train import resume, train

    def config(steps: int) -> RunConfig:
        return RunConfig(small_config(), train=TrainConfig(dataset=tiny_mnist, steps=steps, batch_size=8, seed=3,
                                                          device="cpu", log_every=1, cpu_threads=1))

    train(config(2), tmp_path / "full", progress=False)
    train(config(1), tmp_path / "part", progress=False)
    resume(tmp_path / "part", 2, progress=False)
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert full["step"] == resumed["step"] == 2
    for name, tensor in full["model"].items():  # includes T's weights and the BN statistics
        assert torch.equal(tensor, resumed["model"][name]), name
    for name, opt in full["optimizers"].items():
        for index, slots in opt["state"].items():
            for key, value in slots.items():
                assert torch.equal(value, resumed["optimizers"][name]["state"][index][key]), (name, index, key)
    logged = [r for r in read_log(tmp_path / "full") if "loss_ae" in r]
    assert [r["step"] for r in logged] == [1, 2]
    assert all(math.isfinite(r[k]) for r in logged for k in ("loss_ratio", "ratio_ess", "loss_kl", "log_ratio"))

    model, cfg = load_run(tmp_path / "full")
    again, _ = load_run(tmp_path / "part")
    assert cfg.model.name == "vae-iop" and model.can_generate()
    with torch.no_grad():
        samples = model.generate(5, torch.Generator().manual_seed(7))
        torch.testing.assert_close(samples, again.generate(5, torch.Generator().manual_seed(7)), rtol=0, atol=0)
    assert samples.shape == (5, 1, 28, 28) and 0 <= float(samples.min()) and float(samples.max()) <= 1
