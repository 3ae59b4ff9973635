"""Baselines (flexae.baselines): build for every data shape, one training step moves exactly what it
should, checkpoint + sampler round-trips, sampler shapes, and every loss on a case with a known value."""

import dataclasses
import json
import math
import warnings

import pytest
import torch

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.deterministic import GaussianMixtureSampler
from flexae.baselines.deterministic_train import fit_gmm
from flexae.baselines.vqvae import CodePrior
from flexae.baselines.vqvae_train import fit_code_prior
from flexae.baselines.variational import SecondStageVAE
from flexae.app import fit_sampler as samplers
from flexae.runs.layout import SAMPLER_NAME
from flexae.runs.sampler_file import load_into, save
from flexae.baselines.maskaae_train import MaskAAETrainer, default_schedule, polarising_weight
from flexae.baselines.variational import IAFStep, made_masks
from flexae.baselines.wae_gan import WAEGANOptions, lr_factor
from flexae.baselines.wae_gan_train import WAEGANTrainer
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.registry import (BASELINE_NAMES, MODELS, build_model, fit_sampler, make_trainer, model_names, model_options,
                             resolve, set_options)

EXPOST = ("ae-gmm", "rae-gmm", "2s-vae", "vq-vae")
SHAPES = [(128,), (1, 28, 28), (3, 32, 32), (3, 64, 64)]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; these nets are small
    yield
    torch.set_num_threads(threads)


def small_config(name: str, m: int = 4) -> ModelConfig:
    """Paper layouts with small sizes, so every test runs in seconds."""
    cfg = ModelConfig(name=name, latent_dim=m)
    set_options(cfg, vamp_pseudo_inputs=6, vq_codebook_size=16, vq_embedding_dim=3, second_stage_width=32,
                vq_prior_width=16, iaf_hidden=16, expost_gmm_components=3, sampler_steps=3, sampler_batch_size=8)
    return cfg


def fitted(name: str, shape, data: torch.Tensor):
    model = build_model(small_config(name), shape)
    if model.expost_sampler is not None:
        fit_sampler(model, data, model.options)
    return model.eval()


def test_every_baseline_is_registered():
    assert set(BASELINE_NAMES) <= set(model_names())
    assert all(name in MODELS for name in BASELINE_NAMES)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_builds_encodes_reconstructs_generates(name, shape):
    data = torch.rand(24, *shape)
    model = fitted(name, shape, data)
    x = data[:3]
    code_size = 4 * 3 if name == "vq-vae" else 4  # vq-vae: m code vectors of size D = 3
    with torch.no_grad():
        assert model.encode(x).shape == (3, code_size)
        assert model.reconstruct(x).shape == x.shape
        assert model.decode(model.encode(x)).shape == x.shape
        out = model.generate(5, torch.Generator().manual_seed(0))
    assert out.shape == (5, *shape) and torch.isfinite(out).all()
    if len(shape) == 3:
        assert out.min() >= 0 and out.max() <= 1  # sigmoid decoder


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_generate_is_reproducible_with_a_generator(name):
    data = torch.rand(24, 128) * 2 - 1
    model = fitted(name, (128,), data)
    with torch.no_grad():
        a = model.generate(4, torch.Generator().manual_seed(3))
        b = model.generate(4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", EXPOST)
def test_unfitted_expost_sampler_is_a_user_error(name):
    model = build_model(small_config(name), (128,))
    assert not model.can_generate()
    with pytest.raises(UserError, match="fit-sampler"):
        model.generate(2)


# --- one training step -------------------------------------------------------------------------

# Which parts of each model one iteration must move; every other parameter must stay as it was.
MOVES = {
    "wae-gan": {"encoder", "decoder", "latent_critic"},    # latent_critic: the adversary on Z
    "wae-mmd": {"encoder", "decoder"},
    "ae-gmm": {"encoder", "decoder"},
    "rae-gmm": {"encoder", "decoder"},
    "2s-vae": {"encoder", "decoder", "log_gamma_x"},        # stage 2 (prior) is fitted ex post
    "vamp-vae": {"encoder", "decoder", "prior"},            # the pseudo-inputs
    "iaf-vae": {"encoder", "decoder", "flows"},
    "vq-vae": {"encoder", "decoder", "quantizer"},          # the code prior is fitted ex post
    "mask-aae": {"encoder", "decoder", "latent_critic", "prior"},  # prior holds the mask
    "pioneer": {"encoder", "decoder"},
    "alae": {"encoder", "decoder", "prior", "discriminator_head"},  # prior holds the mapping F
}
MOVES["vae-iop"] = {"encoder", "decoder", "prior"}  # the prior holds the density-ratio estimator T


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _moved_parts(model, before) -> set[str]:
    return {k.split(".")[0] for k, v in model.state_dict().items()
            if v.is_floating_point() and not torch.equal(v, before[k])}


def _trainer(model, shape=(128,), batch=16):
    data = torch.rand(64, *shape) * (1 if len(shape) == 3 else 2) - (0 if len(shape) == 3 else 1)
    return make_trainer(model, OptimConfig(critic_steps=1), lambda: data[torch.randint(0, 64, (batch,))])


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_one_step_moves_exactly_the_trained_parts(name):
    model = build_model(small_config(name), (128,))
    trainer = _trainer(model)
    assert type(trainer) is resolve(MODELS[name].trainer)
    before = _snapshot(model)
    logs = trainer.step()
    assert all(torch.isfinite(v) for v in logs.values())
    assert _moved_parts(model, before) == MOVES[name]


def test_vq_step_moves_only_the_codebook_entries_in_use():
    model = build_model(small_config("vq-vae"), (128,))
    data = torch.rand(16, 128) * 2 - 1
    trainer = make_trainer(model, OptimConfig(), lambda: data)
    with torch.no_grad():
        used = model.encode_indices(data).unique()
    before = model.quantizer.codebook.detach().clone()
    trainer.step()
    moved = (model.quantizer.codebook != before).any(dim=1).nonzero().flatten()
    assert set(moved.tolist()) == set(used.tolist())


def test_vamp_pseudo_inputs_do_not_touch_batchnorm_statistics():
    model = build_model(small_config("vamp-vae"), (1, 28, 28))
    stats = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    model.prior.components()  # a train-mode pass of the pseudo-inputs
    after = {k: v for k, v in model.encoder.state_dict().items() if "running" in k}
    assert all(torch.equal(stats[k], after[k]) for k in stats)
    model.posterior(torch.rand(4, 1, 28, 28))  # a data batch does update them
    assert any(not torch.equal(stats[k], model.encoder.state_dict()[k]) for k in stats)


def test_vamp_components_are_reused_only_while_nothing_changed():
    model = build_model(small_config("vamp-vae"), (1, 28, 28)).eval()
    with torch.no_grad():
        first = model.prior.components()
        assert model.prior.components()[0] is first[0]            # cached: same weights, eval, no grad
        model.prior.pseudo_logits.add_(0.1)
        second = model.prior.components()
        assert not torch.equal(second[0], first[0])               # a weight changed
    model.train()
    model.posterior(torch.rand(4, 1, 28, 28))                     # BatchNorm statistics change
    model.eval()
    with torch.no_grad():
        assert not torch.equal(model.prior.components()[0], second[0])
    assert model.prior.components()[0].requires_grad              # with gradients: never cached


def test_mask_aae_updates_each_move_their_own_part():
    model = build_model(small_config("mask-aae"), (128,))
    trainer = _trainer(model)
    assert isinstance(trainer, MaskAAETrainer)
    x = torch.rand(16, 128)
    for update, parts in ((lambda: trainer.update_ae(x), {"encoder", "decoder"}),
                          (lambda: trainer.update_critic(x), {"latent_critic"}),
                          (lambda: trainer.update_encoder(x), {"encoder"}),
                          (lambda: trainer.update_mask(x, 0.5), {"prior"})):
        before = _snapshot(model)
        update()
        assert _moved_parts(model, before) == parts
    assert (model.prior.mask_param >= 0).all()  # projected onto mu >= 0


def test_mask_aae_schedule_follows_the_authors_rule():
    assert default_schedule(20) == 75 and default_schedule(32) == 3600 and default_schedule(128) == 10000
    assert polarising_weight(0, 20, 75) == pytest.approx(0.1)
    assert polarising_weight(299, 20, 75) == pytest.approx(0.1)
    assert polarising_weight(300, 20, 75) == pytest.approx(0.2)  # doubled every 4 T
    assert polarising_weight(10**7, 20, 75) == 2048.0             # capped
    model = build_model(small_config("mask-aae"), (128,))
    model.options.mask_schedule = 1
    trainer = _trainer(model)
    for _ in range(7):
        trainer.step()
    assert trainer.iteration() == 7
    assert trainer.optimizers["ae"].param_groups[0]["lr"] == pytest.approx(0.2 * 2e-4)  # after 5 T steps
    assert trainer.optimizers["mask"].param_groups[0]["lr"] == pytest.approx(0.2 * 5e-4)


def _constant_adversary(model, logit: float) -> None:
    """Make the adversary output `logit` for every code: last layer's weights 0, bias `logit`."""
    last = [m for m in model.latent_critic.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(logit)


def test_wae_gan_js_losses_known_values():
    """Logits known -> losses known: BCE(l, 1) = log(1 + e^-l), BCE(l, 0) = log(1 + e^l)."""
    third = math.log(3.0)
    prior_logits, code_logits = torch.tensor([0.0, third]), torch.tensor([0.0, -third])
    # prior "real": (log 2 + log 4/3) / 2; codes "fake": (log 2 + log 4/3) / 2; times lambda = 10
    assert float(bl.js_adversary_loss(prior_logits, code_logits, 10.0)) == pytest.approx(10 * math.log(8 / 3))
    # the encoder's non-saturating term on codes with logits 0 and -log 3: (log 2 + log 4) / 2
    assert float(bl.js_encoder_penalty(code_logits)) == pytest.approx(1.5 * math.log(2.0))
    assert float(bl.js_encoder_penalty(torch.tensor([50.0]))) == pytest.approx(0.0, abs=1e-12)  # fooled
    # AVB prior trick, as the authors write it: logit - |z|^2 / (2 s^2) - log(2 pi) / 2 - m log(s^2) / 2
    z = torch.tensor([[1.0, 2.0]])
    got = bl.prior_log_density_logits(torch.tensor([0.5]), z, prior_var=2.0)
    assert float(got) == pytest.approx(0.5 - 5 / 4 - 0.5 * math.log(2 * math.pi) - math.log(2.0))
    assert float(bl.scaled_cost(torch.tensor(300.0), 0.05)) == pytest.approx(15.0)


@pytest.mark.parametrize("shape", [(128,), (1, 28, 28)], ids=str)
def test_wae_gan_step_logs_the_hand_computed_losses(shape):
    """With an adversary that outputs logit c for every input, one iteration's penalty is
    log(1 + e^-c) and the adversary's loss lambda * (log(1 + e^-c) + log(1 + e^c)), whatever the codes."""
    model = build_model(small_config("wae-gan"), shape)
    model.options.wae_gan_weight = 7.0
    _constant_adversary(model, 0.8)
    logs = _trainer(model, shape, batch=4).step()
    softplus = lambda t: math.log1p(math.exp(t))
    assert float(logs["penalty"]) == pytest.approx(softplus(-0.8), rel=1e-6)
    assert float(logs["loss_adversary"]) == pytest.approx(7.0 * (softplus(-0.8) + softplus(0.8)), rel=1e-6)


def test_wae_gan_updates_each_move_their_own_part():
    model = build_model(small_config("wae-gan"), (128,))
    trainer = _trainer(model)
    assert isinstance(trainer, WAEGANTrainer)
    x = torch.rand(16, 128)
    for update, parts in ((lambda: trainer.update_autoencoder(x), {"encoder", "decoder"}),
                          (lambda: trainer.update_adversary(x, model.sample_latent(16)), {"latent_critic"})):
        before = _snapshot(model)
        update()
        assert _moved_parts(model, before) == parts


def test_wae_gan_lr_schedule_follows_the_authors_code():
    # MNIST "manual" over 100 epochs: x1/2 from epoch 30, x1/10 from epoch 50 (never x1/100).
    assert [lr_factor("manual", i, 100) for i in (0, 29, 30, 49, 50, 99, 500)] == [1, 1, 0.5, 0.5, 0.1, 0.1, 0.1]
    # CelebA "manual_smooth" over 50 epochs: epoch e runs at 100^(-(e + 1) / 50), down to 1/100.
    assert lr_factor("smooth", 0, 50) == pytest.approx(100 ** (-1 / 50))
    assert lr_factor("smooth", 10, 50) == pytest.approx(100 ** (-11 / 50))
    assert lr_factor("smooth", 49, 50) == lr_factor("smooth", 10**6, 50) == pytest.approx(0.01)
    assert lr_factor("none", 10**6, 50) == 1.0
    model = build_model(small_config("wae-gan"), (128,))
    model.options.wae_gan_schedule_steps = 10
    trainer = _trainer(model)
    for _ in range(4):
        trainer.step()
    assert trainer.iteration() == 4
    trainer.step()  # iteration 4 of 10 runs at half the rates
    assert trainer.optimizers["ae"].param_groups[0]["lr"] == pytest.approx(0.5 * 1e-3)
    assert trainer.optimizers["adversary"].param_groups[0]["lr"] == pytest.approx(0.5 * 5e-4)
    assert trainer.optimizers["ae"].param_groups[0]["betas"] == (0.5, 0.999)


def test_wae_gan_resumes_bit_for_bit(tmp_path):
    """4 iterations == 2 + resume to 4, with the lr decay crossing the resume (x1/10 from iteration 2)."""
    from flexae.app.train import resume, train

    def config(steps: int) -> RunConfig:
        cfg = RunConfig(small_config("wae-gan"), train=TrainConfig(dataset="synthetic-2d", steps=steps, batch_size=16,
                                                                  seed=3, eval_every=0, cpu_threads=1))
        cfg.model.options.wae_gan_schedule_steps = 4
        return cfg

    train(config(4), tmp_path / "full", progress=False)
    train(config(2), tmp_path / "part", progress=False)
    resume(tmp_path / "part", 4, progress=False)
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    part = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert full["step"] == part["step"] == 4
    for name, tensor in full["model"].items():
        assert torch.equal(tensor, part["model"][name]), name
    for name, opt in full["optimizers"].items():
        assert opt["param_groups"][0]["lr"] == part["optimizers"][name]["param_groups"][0]["lr"]
        for index, slots in opt["state"].items():
            for key, value in slots.items():
                assert torch.equal(value, part["optimizers"][name]["state"][index][key]), (name, index, key)
    assert full["optimizers"]["ae"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # decayed


def test_wae_mmd_minimises_the_authors_scaled_objective():
    """One WAE-MMD iteration == one Adam step on 0.05 * L_AE + lambda * MMD, computed here by hand
    (input noise off so both draw the same prior samples); the unscaled L_AE + lambda * MMD differs."""
    data = torch.rand(8, 128) * 2 - 1

    def model():
        torch.manual_seed(0)
        m = build_model(small_config("wae-mmd"), (128,))
        m.options.wae_input_noise = 0.0
        return m

    def by_hand(cost_scale: float) -> dict:
        m = model()
        optimizer = torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
        torch.manual_seed(1)
        z = m.encode(data)
        rec = losses.reconstruction_loss(m.decode(z), data)
        mmd = bl.mmd_imq(z, m.sample_latent(8), 1.0)
        (cost_scale * rec + 10.0 * mmd).backward()
        optimizer.step()
        return _snapshot(m)

    trained = model()
    trainer = make_trainer(trained, OptimConfig(), lambda: data)
    torch.manual_seed(1)
    trainer.step()
    got = _snapshot(trained)
    scaled, raw = by_hand(0.05), by_hand(1.0)
    for k, v in got.items():
        torch.testing.assert_close(v, scaled[k], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(got[k], raw[k], rtol=1e-5, atol=1e-7) for k in got if got[k].is_floating_point())


def test_wae_input_noise_only_perturbs_the_encoder_input():
    from flexae.baselines.common import add_input_noise

    x = torch.zeros(2000)
    noisy = add_input_noise(x, 0.01)
    assert noisy.abs().max() <= 0.02 and 0.005 < float(noisy.std()) < 0.01  # truncated at 2 std
    assert add_input_noise(x, 0.0) is x


# --- checkpoint and sampler round trip ---------------------------------------------------------

@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_checkpoint_and_sampler_round_trip(name, tmp_path):
    from flexae.data import load_dataset
    from flexae.app.load import load_run
    from flexae.app.train import Run

    cfg = RunConfig(small_config(name), train=TrainConfig(dataset="synthetic-2d", steps=1, batch_size=16,
                                                         cpu_threads=1))
    cfg.model.options.sampler_fit_points = 200
    run = Run(cfg, tmp_path, torch.device("cpu"), load_dataset("synthetic-2d"))
    run.trainer.step()
    run.step = 1
    run.save()
    if name in EXPOST:
        samplers.fit_and_save(run.model, tmp_path, run.data.train, cfg.model.options, step=1)
    model, loaded_cfg = load_run(tmp_path)
    assert loaded_cfg.model == cfg.model
    run.model.eval()
    x = run.data.test[:8]
    with torch.no_grad():
        torch.testing.assert_close(model.reconstruct(x), run.model.reconstruct(x))
        torch.testing.assert_close(model.generate(6, torch.Generator().manual_seed(1)),
                                   run.model.generate(6, torch.Generator().manual_seed(1)))


def test_stale_sampler_is_not_loaded(tmp_path):
    model = fitted("ae-gmm", (128,), torch.randn(50, 128))
    save(tmp_path, model, step=3, stats={})
    fresh = build_model(small_config("ae-gmm"), (128,))
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}, strict=False)
    assert load_into(fresh, tmp_path, step=3) and fresh.can_generate()
    with torch.no_grad():
        next(fresh.encoder.parameters()).add_(1.0)  # other weights: the sampler no longer belongs to them
    other = build_model(small_config("ae-gmm"), (128,))
    other.load_state_dict(fresh.state_dict())
    other.prior.fitted.fill_(False)
    with pytest.warns(UserWarning, match="fit-sampler"):
        assert not load_into(other, tmp_path, step=3)
    with pytest.warns(UserWarning):
        assert not load_into(model, tmp_path, step=4)  # another step


def test_sampler_file_loads_with_weights_only(tmp_path):
    model = fitted("2s-vae", (128,), torch.randn(50, 128))
    path = save(tmp_path, model, step=1, stats={"x": 1.0})
    state = torch.load(path, weights_only=True)
    assert set(state) == {"step", "fingerprint", "stats", "sampler", "checksum"}
    assert all(isinstance(v, torch.Tensor) for v in state["sampler"].values())



@pytest.mark.parametrize("content", [b"", b"not a torch file", "dict-without-keys", "wrong-sampler"])
def test_damaged_sampler_file_is_a_one_line_user_error(tmp_path, content):
    model = fitted("ae-gmm", (128,), torch.randn(50, 128))
    path = save(tmp_path, model, step=3, stats={})
    if content == "dict-without-keys":
        torch.save({"sampler": {}}, path)
    elif content == "wrong-sampler":  # right step and weights, but another model's sampler state
        torch.save({**torch.load(path, weights_only=True), "sampler": {"means": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match="sampler") as info:
        load_into(model, tmp_path, step=3)
    assert "sampler.pt" in str(info.value) and "\n" not in str(info.value)

# --- samplers ----------------------------------------------------------------------------------

def test_gmm_sampler_moments():
    sampler = GaussianMixtureSampler(2, 2)
    means = torch.tensor([[-3.0, 0.0], [2.0, 1.0]])
    covs = torch.stack([torch.eye(2) * 0.5, torch.tensor([[1.0, 0.6], [0.6, 1.0]])])
    weights = torch.tensor([0.25, 0.75])
    sampler.set_parameters(weights, means, covs)
    z = sampler.sample(40000, torch.Generator().manual_seed(0))
    mean = (weights[:, None] * means).sum(0)
    second = sum(w * (c + torch.outer(mu, mu)) for w, mu, c in zip(weights, means, covs))
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), second - torch.outer(mean, mean), atol=0.06, rtol=0)


def test_gmm_fit_recovers_two_clusters():
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(300, 3, generator=g) * 0.3 + 4, torch.randn(100, 3, generator=g) * 0.3 - 4])
    sampler = GaussianMixtureSampler(2, 3)
    fit_gmm(sampler, codes, None, torch.Generator(), seed=0, progress=False)
    order = sampler.means[:, 0].argsort()
    torch.testing.assert_close(sampler.means[order], torch.tensor([[-4.0] * 3, [4.0] * 3]), atol=0.1, rtol=0)
    torch.testing.assert_close(sampler.weights[order], torch.tensor([0.25, 0.75]), atol=0.01, rtol=0)
    assert sampler.is_fitted and sampler.covariances.shape == (2, 3, 3)


def test_second_stage_and_code_prior_shapes():
    stage2 = SecondStageVAE(5, width=8, depth=2)
    stage2.fitted.fill_(True)
    assert stage2.sample(7).shape == (7, 5)
    loss, nll, kl = stage2.loss(torch.randn(4, 5), torch.randn(4, 5))
    assert torch.isfinite(loss) and kl >= 0
    prior = CodePrior(6, 10, embed=lambda idx: idx.float(), width=8, layers=1)
    idx = prior.sample_indices(9, torch.Generator().manual_seed(0))
    assert idx.shape == (9, 6) and idx.dtype == torch.long and 0 <= idx.min() and idx.max() < 10
    assert prior.logits(idx).shape == (9, 6, 10)


def test_code_prior_is_causal():
    prior = CodePrior(5, 7, embed=lambda idx: idx, width=8, layers=2).eval()
    a = torch.randint(0, 7, (1, 5))
    b = a.clone()
    b[0, 3] = (a[0, 3] + 1) % 7
    la, lb = prior.logits(a), prior.logits(b)
    torch.testing.assert_close(la[:, :4], lb[:, :4])  # positions up to 3 do not see index 3
    assert not torch.allclose(la[:, 4], lb[:, 4])


def test_code_prior_learns_a_deterministic_sequence():
    prior = CodePrior(4, 5, embed=lambda idx: idx, width=16, layers=1)
    data = torch.tensor([[1, 3, 0, 2]]).repeat(64, 1)
    cfg = small_config("vq-vae").options
    cfg.sampler_steps, cfg.vq_prior_lr = 150, 3e-3
    fit_code_prior(prior, data, cfg, torch.Generator().manual_seed(0), seed=0, progress=False)
    assert (prior.sample(20, torch.Generator().manual_seed(1)) == data[:20]).float().mean() > 0.9


# --- losses on cases with known values ---------------------------------------------------------

def test_kl_of_identical_gaussians_is_zero():
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    z = torch.randn(5, 3)
    assert float(losses.kl_standard_normal(torch.zeros(4, 3), torch.zeros(4, 3))) == 0.0
    # The VampPrior of one pseudo-input equal to the posterior: log q - log p = 0 exactly.
    log_q = bl.gaussian_log_density(z, mu[:1], logvar[:1])
    torch.testing.assert_close(log_q - bl.vamp_log_prior(z, mu[:1], logvar[:1]), torch.zeros(5))


def test_gaussian_log_density_known_value():
    z = torch.tensor([[1.0, -1.0]])
    expected = -2 * 0.5 * math.log(2 * math.pi) - 0.5 * 2
    assert float(bl.gaussian_log_density(z, torch.zeros(1, 2), torch.zeros(1, 2))) == pytest.approx(expected)
    assert float(bl.standard_normal_log_density(z)) == pytest.approx(expected)
    # Dai & Wipf's NLL with gamma = 1 and a perfect fit: only the normalising constants remain.
    x = torch.rand(3, 1, 2, 2)
    assert float(bl.gaussian_nll_learned_scale(x, x, torch.zeros(()))) == pytest.approx(4 * 0.5 * math.log(2 * math.pi))


def test_vamp_mixture_of_two_equal_components_equals_one():
    z, mu, logvar = torch.randn(4, 3), torch.randn(1, 3), torch.randn(1, 3)
    one = bl.vamp_log_prior(z, mu, logvar)
    two = bl.vamp_log_prior(z, mu.repeat(2, 1), logvar.repeat(2, 1))
    torch.testing.assert_close(one, two)


def test_imq_kernel_known_value():
    c = 2.0 * 3 * 1.0  # 2 m sigma^2 with m = 3
    x, y = torch.zeros(1, 3), torch.tensor([[math.sqrt(c), 0.0, 0.0]])  # ||x - y||^2 = C
    assert float(bl.imq_kernel(x, y, c)) == pytest.approx(0.5)
    assert float(bl.imq_kernel(x, x, c)) == pytest.approx(1.0)


def _mmd_reference(z, p, prior_var=1.0):
    """Double loop over pairs: the U-statistic of Tolstikhin et al. summed over the IMQ scales."""
    n, m = z.shape
    total = 0.0
    for s in bl.IMQ_SCALES:
        c = s * 2 * m * prior_var
        k = lambda a, b: c / (c + float(((a - b) ** 2).sum()))  # noqa: E731
        within = sum(k(z[i], z[j]) + k(p[i], p[j]) for i in range(n) for j in range(n) if i != j)
        across = sum(k(z[i], p[j]) for i in range(n) for j in range(n))
        total += within / (n * (n - 1)) - 2 * across / n ** 2
    return total


def test_mmd_matches_a_reference_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    z, p = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    assert float(bl.mmd_imq(z, p)) == pytest.approx(_mmd_reference(z, p), rel=1e-5)
    a, b = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    same = float(bl.mmd_imq(a, b))
    assert abs(same) < 0.02                                     # same distribution: ~ 0
    assert -14 / 400 <= float(bl.mmd_imq(a, a)) <= 0.0          # identical samples: ~ 0 (U-statistic bias)
    assert float(bl.mmd_imq(a, b + 1.0)) > 10 * max(abs(same), 1e-3)  # shifted: clearly > 0


def test_vq_losses_known_case():
    z_e = torch.tensor([[[1.0, 0.0]]])                      # (B=1, L=1, D=2)
    codebook = torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    from flexae.baselines.vqvae import VectorQuantizer
    vq = VectorQuantizer(2, 2)
    with torch.no_grad():
        vq.codebook.copy_(codebook)
    idx = vq.nearest(z_e)
    assert idx.tolist() == [[0]]
    codebook_loss, commitment = (v.detach() for v in bl.vq_losses(z_e, vq.lookup(idx)))
    assert float(codebook_loss) == pytest.approx(1.0) and float(commitment) == pytest.approx(1.0)
    assert 0.25 * float(commitment) == pytest.approx(0.25)  # beta ||z_e - sg[e]||^2 with beta = 0.25


def test_rae_penalties_known_values():
    assert float(bl.code_l2_penalty(torch.tensor([[1.0, 3.0], [0.0, 2.0]]))) == pytest.approx((5 + 2) / 2)
    assert float(bl.squared_weight_sum([torch.ones(2, 3), torch.full((2,), 2.0)])) == pytest.approx(14.0)


def test_mask_penalties_known_values():
    assert float(bl.polarising_penalty(torch.tensor([0.0, 1.0, 1.0]))) == 0.0
    assert float(bl.polarising_penalty(torch.tensor([0.5]))) == pytest.approx(0.25)
    z = torch.tensor([[1.0, 5.0], [3.0, 5.0]])  # dim 0 varies (variance 1), dim 1 is constant
    assert float(bl.masked_variance_penalty(z, torch.tensor([0.0, 0.0]))) == pytest.approx(1.0)
    assert float(bl.masked_variance_penalty(z, torch.tensor([1.0, 0.0]))) == pytest.approx(math.exp(-10))


# --- IAF ---------------------------------------------------------------------------------------

def test_made_masks_are_autoregressive():
    first, second = made_masks(4, 9)
    connectivity = (second.float() @ first.float())  # (out, in): paths from input j to output i
    assert (connectivity.triu() == 0).all()           # output i sees inputs < i only


def test_iaf_log_det_known_case_and_jacobian():
    step = IAFStep(3, 8, context=2)
    for layer in (step.inp, step.ctx, step.out_m, step.out_s):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    z, h = torch.randn(5, 3), torch.randn(5, 2)
    out, log_det = step(z, h)
    sigma = torch.sigmoid(torch.tensor(1.0))  # s = 0 plus the forget-gate bias +1
    torch.testing.assert_close(out, sigma * z)
    torch.testing.assert_close(log_det, torch.full((5,), 3 * math.log(sigma)))
    # Random weights: the log-det equals log |det dz'/dz| and the Jacobian is lower triangular.
    step = IAFStep(3, 8, context=2)
    z1, h1 = torch.randn(3), torch.randn(2)
    jac = torch.autograd.functional.jacobian(lambda v: step(v[None], h1[None])[0][0], z1)
    assert (jac.triu(1).abs() < 1e-7).all()
    log_det = float(step(z1[None], h1[None])[1].detach())
    assert log_det == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-5)


def test_iaf_log_q_is_a_normalised_density():
    """In 1-D the flow is monotone: integrating q(z|x) over z must give 1."""
    model = build_model(small_config("iaf-vae", m=1), (128,)).eval()
    x = torch.rand(1, 128)
    g = torch.Generator().manual_seed(0)
    z, log_q = model.sample_posterior_with_log_q(x.repeat(4000, 1), g)
    order = z[:, 0].argsort()
    zs, density = z[order, 0], log_q[order].exp()
    integral = torch.trapezoid(density, zs)
    assert float(integral) == pytest.approx(1.0, abs=0.03)


# --- the fit step and the CLI ------------------------------------------------------------------

def test_train_fits_the_sampler_and_fit_sampler_refits(tmp_path):
    from click.testing import CliRunner

    from flexae.cli import cli
    from flexae.app.load import load_run
    from flexae.runs.log import read_log
    from flexae.app.train import train

    cfg = RunConfig(small_config("rae-gmm"), train=TrainConfig(dataset="synthetic-2d", steps=2, batch_size=16,
                                                              log_every=1, eval_every=1, cpu_threads=1))
    run_dir = train(cfg, tmp_path / "run", progress=False)
    assert (run_dir / SAMPLER_NAME).is_file()
    assert any("sampler_fit" in r for r in read_log(run_dir))
    assert "fd" in json.loads((run_dir / "metrics.json").read_text())  # generation metrics after the fit
    model, _ = load_run(run_dir)
    assert model.can_generate()
    before = model.prior.means.clone()
    result = CliRunner().invoke(cli, ["fit-sampler", str(run_dir), "--fit-points", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    refit, _ = load_run(run_dir)
    assert not torch.equal(refit.prior.means, before)  # fitted on 100 points this time
    bad = CliRunner().invoke(cli, ["fit-sampler", str(tmp_path / "missing")])
    assert bad.exit_code != 0


def test_2s_vae_second_stage_is_the_same_in_two_processes(tmp_path):
    """Every random draw of the second-stage fit comes from its seeded generator: two `flexae
    fit-sampler` processes on copies of one run write the same sampler.pt, bit for bit (its
    reparameterisation noise once came from the unseeded global RNG)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from flexae.app.train import train

    cfg = RunConfig(small_config("2s-vae"), train=TrainConfig(dataset="synthetic-2d", steps=2, batch_size=16,
                                                             cpu_threads=1))
    run_dir = train(cfg, tmp_path / "run", progress=False)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    states = []
    for copy in ("a", "b"):
        shutil.copytree(run_dir, tmp_path / copy)
        done = subprocess.run([sys.executable, "-m", "flexae", "fit-sampler", str(tmp_path / copy), "--quiet"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        states.append(torch.load(tmp_path / copy / SAMPLER_NAME, map_location="cpu", weights_only=True))
    first, second = ({k: v for k, v in s.items() if isinstance(v, torch.Tensor)} for s in
                     (_tensors(states[0]), _tensors(states[1])))
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def _tensors(obj, prefix=""):
    """Every tensor of a loaded file, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    found = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found.update(_tensors(value, f"{prefix}/{key}"))
    return found


def test_fit_sampler_refuses_models_without_one(tmp_path):
    from flexae.app.train import train
    cfg = RunConfig(small_config("wae-mmd"), train=TrainConfig(dataset="synthetic-2d", steps=1, batch_size=16,
                                                              cpu_threads=1))
    run_dir = train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="no ex-post sampler"):
        samplers.fit_run(run_dir, progress=False)


def test_bad_baseline_values_are_user_errors():
    for field, value, message in (("wae_gan_schedule", "cosine", "wae_gan_schedule"),
                                  ("wae_gan_beta1", 1.0, "wae_gan_beta1"), ("wae_gan_lr", 0.0, "wae_gan_lr"),
                                  ("wae_gan_weight", -1.0, "wae_gan_weight")):
        cfg = small_config("wae-gan")
        setattr(cfg.options, field, value)
        with pytest.raises(UserError, match=message):
            build_model(cfg, (128,))
    cfg = small_config("vq-vae")
    cfg.options.vq_codebook_size = 0
    with pytest.raises(UserError, match="vq_codebook_size"):
        build_model(cfg, (128,))
    cfg = small_config("vq-vae")
    cfg.options.vq_prior_width = 10
    with pytest.raises(UserError, match="divisible"):
        build_model(cfg, (128,))


def test_config_round_trips_through_a_dict():
    cfg = RunConfig(small_config("vamp-vae"))
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict() and model_options(again.model) == cfg.model.options
    assert model_options(again.model).vamp_pseudo_inputs == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model_options(RunConfig.from_dict({"model": {"name": "vq-vae"}}).model).vq_codebook_size == 512


def _old_format(name: str, **baseline) -> dict:
    """The config dict of a run written before issue 20: every baseline setting in one flat
    model.baseline section (all of them at their defaults but `baseline`), options empty."""
    from flexae.registry import options_type
    flat = {}
    for other in BASELINE_NAMES:
        flat.update(dataclasses.asdict(options_type(other)()))
    d = RunConfig(ModelConfig(name=name, latent_dim=4), train=TrainConfig(dataset="synthetic-2d")).to_dict()
    d["model"]["baseline"] = {**flat, **baseline}
    return d


def test_an_old_flat_baseline_section_loads_as_the_models_own_settings():
    from flexae.validation import config_from_dict
    cfg = config_from_dict(_old_format("wae-gan", wae_gan_weight=3.0, vq_codebook_size=7), "old run")
    assert isinstance(cfg.model.options, WAEGANOptions) and cfg.model.options.wae_gan_weight == 3.0
    assert "baseline" not in cfg.to_dict()["model"]
    assert set(cfg.to_dict()["model"]["options"]) == {f.name for f in dataclasses.fields(WAEGANOptions)}  # vq-vae's dropped
    assert config_from_dict(_old_format("flexae"), "old run").model.options == {}  # no settings of its own
    with pytest.raises(UserError, match="wae_gan_weight must be"):  # still checked
        config_from_dict(_old_format("wae-gan", wae_gan_weight=-1.0), "old run")


def test_an_old_run_folder_is_still_the_same_run_to_a_sweep(tmp_path):
    """The experiments' sweeps reuse a finished run of the config they want: a run folder whose
    config.json has the old flat section is one of the same config (flexae.runs.status)."""
    import json
    from flexae.runs.status import finished
    (tmp_path / "metrics.json").write_text("{}")
    old = _old_format("rae-gmm", rae_code_weight=1e-3)
    (tmp_path / "config.json").write_text(json.dumps(old))
    wanted = RunConfig.from_dict(old)
    set_options(wanted.model)  # typed: the old section's rae-gmm settings
    assert wanted.model.options.rae_code_weight == 1e-3 and finished(tmp_path, wanted)
    wanted.model.options.rae_code_weight = 1e-4
    assert not finished(tmp_path, wanted)


def test_the_old_spelling_of_a_baseline_setting_on_the_command_line_is_an_alias():
    from flexae.validation import apply_override, check_settings_read
    cfg = RunConfig(ModelConfig(name="wae-gan"))
    apply_override(cfg, "model.baseline.wae_gan_weight=4")
    assert cfg.model.options.wae_gan_weight == 4.0
    check_settings_read(cfg, ["model.baseline.wae_gan_weight=4"])
    with pytest.raises(UserError, match="has no setting model.options.mmd_weight; its settings: prior_std"):
        apply_override(cfg, "model.baseline.mmd_weight=1")
