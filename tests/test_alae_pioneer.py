"""ALAE and Pioneer (flexae.baselines.alae / pioneer): every loss on a hand-computed case, each
update moves exactly its own networks in the originals' order, and on MNIST-shaped data a run
trains, resumes bit for bit, samples, and loads from its run folder."""

import math

import pytest
import torch

from flexae.baselines import losses as bl
from flexae.baselines.alae_train import ALAETrainer
from flexae.baselines.pioneer import on_sphere
from flexae.baselines.pioneer_train import PioneerTrainer
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.errors import UserError
from flexae.registry import build_model, make_trainer


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared
    yield
    torch.set_num_threads(threads)


# --- losses against hand-computed values ----------------------------------------------------

def test_alae_adversarial_losses_known_values():
    d = torch.tensor([0.0, math.log(3.0)])
    # softplus(0) = ln 2, softplus(ln 3) = ln 4, softplus(-ln 3) = ln(4/3)
    assert float(bl.alae_discriminator_loss(d, d)) == pytest.approx((2 * math.log(2) + math.log(4) + math.log(4 / 3)) / 2)
    assert float(bl.alae_discriminator_loss(d, -d)) == pytest.approx((2 * math.log(2) + 2 * math.log(4)) / 2)
    assert float(bl.alae_generator_loss(d)) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_r1_penalty_known_values():
    a = torch.tensor([1.0, 2.0, 0.0, -1.0]).view(1, 1, 2, 2)  # D(x) = <a, x>: grad a, ||a||^2 = 6
    x = torch.rand(3, 1, 2, 2, requires_grad=True)
    d = (x * a).flatten(1).sum(dim=1)
    assert float(bl.r1_penalty(d, x, gamma=10.0)) == pytest.approx(0.5 * 10 * 6)
    assert float(bl.r1_penalty(d, x, gamma=10.0, input_scale=2.0)) == pytest.approx(0.5 * 10 * 6 / 4)
    # D(x) = sum x^2: grad 2x, per-image ||2x||^2 = 4 sum x^2, averaged over the batch
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    penalty = bl.r1_penalty(x.pow(2).sum(dim=1), x, gamma=2.0)
    assert float(penalty.detach()) == pytest.approx((4 + 8) / 2)
    penalty.backward()  # the graph is kept: the penalty trains D
    assert x.grad is not None


def test_latent_reconstruction_loss_known_value_and_stopped_target():
    w = torch.zeros(1, 2, requires_grad=True)
    w_rec = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = bl.latent_reconstruction_loss(w_rec, w)
    assert float(loss.detach()) == pytest.approx((1 + 4) / 2)  # mean over dimensions and batch
    loss.backward()
    assert w.grad is None and torch.allclose(w_rec.grad, torch.tensor([[1.0, 2.0]]))


def test_age_kl_known_value():
    # per-dimension mean (0, 1) and biased variance (1, 1): KL terms 0 and 0.5, averaged: 0.25
    codes = torch.tensor([[1.0, 0.0], [-1.0, 2.0]])
    assert float(bl.age_kl(codes)) == pytest.approx(0.25)
    assert float(bl.age_kl(torch.randn(20000, 3, generator=torch.Generator().manual_seed(0)))) < 1e-3


def test_pioneer_reconstruction_losses_known_values():
    x = torch.tensor([0.5, 0.25, 0.0, 0.25]).view(1, 1, 2, 2)
    assert float(bl.pioneer_image_loss(torch.zeros_like(x), x)) == pytest.approx(0.25)
    assert float(bl.pioneer_image_loss(torch.zeros_like(x), x, input_scale=2.0)) == pytest.approx(0.5)
    # u = (0.6, 0.8), v = (1, 0): mean_j (2 - u_j v_j) = (1.4 + 2) / 2
    assert float(bl.pioneer_code_loss(torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 0.0]]))) == pytest.approx(1.7)


# --- the models and their updates -----------------------------------------------------------

def _model_and_trainer(name: str, shape=(128,), batch: int = 8):
    model = build_model(ModelConfig(name=name, latent_dim=4), shape)
    data = torch.rand(32, *shape) * (1 if len(shape) == 3 else 2) - (0 if len(shape) == 3 else 1)
    return model, make_trainer(model, OptimConfig(), RandomBatches(data, batch))


def _moved(model, before) -> set[str]:
    return {k.split(".")[0] for k, v in model.state_dict().items()
            if v.is_floating_point() and not torch.equal(v, before[k])}


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_alae_updates_move_their_own_parts_in_the_original_order():
    model, trainer = _model_and_trainer("alae")
    assert isinstance(trainer, ALAETrainer)
    x = torch.rand(8, 128) * 2 - 1
    for update, parts in ((lambda: trainer.update_discriminator(x), {"encoder", "discriminator_head"}),
                          (lambda: trainer.update_generator(8), {"decoder", "prior"}),
                          (lambda: trainer.update_latent(8), {"encoder", "decoder", "prior"})):
        before = _snapshot(model)
        update()
        assert _moved(model, before) == parts
    model, trainer = _model_and_trainer("alae")
    order = []
    for name, opt in trainer.optimizers.items():
        opt.register_step_post_hook(lambda o, a, k, name=name: order.append(name))
    trainer.step()
    assert order == ["encoder", "decoder", "encoder", "decoder"]  # D, G, then the latent step on both


def test_alae_generates_through_the_mapping_and_reconstructs_through_the_encoder():
    model, _ = _model_and_trainer("alae", (1, 28, 28))
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.generate(2, torch.Generator().manual_seed(1)),
                                   model.decode(model.prior.mapping(torch.randn(2, 4, generator=torch.Generator().manual_seed(1)))))
        torch.testing.assert_close(model.reconstruct(x), model.decode(model.encoder(x)))


def test_pioneer_updates_move_their_own_parts_and_the_decoder_steps_twice():
    model, trainer = _model_and_trainer("pioneer")
    assert isinstance(trainer, PioneerTrainer)
    x = torch.rand(8, 128) * 2 - 1
    for update, parts in ((lambda: trainer.update_encoder(x), {"encoder"}),
                          (lambda: trainer.update_decoder(8), {"decoder"})):
        before = _snapshot(model)
        update()
        assert _moved(model, before) == parts
    model, trainer = _model_and_trainer("pioneer")
    order = []
    for name, opt in trainer.optimizers.items():
        opt.register_step_post_hook(lambda o, a, k, name=name: order.append(name))
    trainer.step()
    assert order == ["encoder", "decoder", "decoder"]  # their n_critic = 1, n_generator = 2


def test_pioneer_codes_and_prior_lie_on_the_unit_sphere():
    model, _ = _model_and_trainer("pioneer", (1, 28, 28))
    model.eval()
    with torch.no_grad():
        codes = model.encode(torch.rand(5, 1, 28, 28))
        prior = model.sample_latent(5)
    torch.testing.assert_close(codes.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(prior.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(on_sphere(torch.tensor([[3.0, 4.0]])), torch.tensor([[0.6, 0.8]]))


def test_out_of_range_settings_are_user_errors():
    for field, value, message in (("alae_beta2", 1.0, r"must lie in \[0, 1\)"), ("pioneer_generator_steps", 0, "positive"),
                                  ("alae_r1_gamma", -1.0, ">= 0")):
        cfg = ModelConfig(name=field.split("_")[0], latent_dim=4, options={field: value})
        with pytest.raises(UserError, match=message):
            build_model(cfg, (128,))


# --- on MNIST-shaped data: train, resume bit for bit, sample, load ----------------------------

@pytest.mark.parametrize("name", ["alae", "pioneer"])
def test_trains_resumes_exactly_samples_and_loads_on_mnist(name, tmp_path, shared_data):
    from flexae.app.load import load_run
    from flexae.app.train import resume, train

    def config(steps: int) -> RunConfig:
        return RunConfig(ModelConfig(name=name, latent_dim=4),
                         train=TrainConfig(dataset="mnist", steps=steps, batch_size=4, seed=3, device="cpu",
                                           log_every=1, grid_every=0, cpu_threads=1, data_dir=str(shared_data)))

    train(config(2), tmp_path / "full", progress=False)
    train(config(1), tmp_path / "part", progress=False)
    resume(tmp_path / "part", 2, progress=False)
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert full["step"] == resumed["step"] == 2
    for key, tensor in full["model"].items():  # weights and BatchNorm statistics
        assert torch.equal(tensor, resumed["model"][key]), key
    for opt_name, opt in full["optimizers"].items():
        for index, slots in opt["state"].items():
            for slot, value in slots.items():
                assert torch.equal(value, resumed["optimizers"][opt_name]["state"][index][slot]), (opt_name, slot)

    model, cfg = load_run(tmp_path / "part")
    again, _ = load_run(tmp_path / "full")
    assert cfg.model.name == name and model.can_generate()
    with torch.no_grad():
        samples = model.generate(6, torch.Generator().manual_seed(1))
        torch.testing.assert_close(samples, again.generate(6, torch.Generator().manual_seed(1)), rtol=0, atol=0)
        x = torch.rand(2, 1, 28, 28)
        assert model.reconstruct(x).shape == x.shape
    assert samples.shape == (6, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


def test_table1_has_both_rows_with_the_papers_numbers():
    from flexae.experiments.tables import IMAGE_DATASETS, PAPER_TABLE1, PAPER_TABLE2, TABLE1_MODELS
    order = TABLE1_MODELS
    assert order.index("mask-aae") < order.index("pioneer") < order.index("alae") < order.index("flexae")
    assert all({"pioneer", "alae"} <= set(PAPER_TABLE1[d]) for d in IMAGE_DATASETS)
    assert PAPER_TABLE1["mnist"]["pioneer"] == (8.17, 7.30) and PAPER_TABLE1["celeba"]["alae"] == (24.39, 26.15)
    assert PAPER_TABLE2["cifar10"]["alae"] == (0.73, 0.85) and "pioneer" not in PAPER_TABLE2["mnist"]


def test_alae_optimizers_give_each_layer_the_originals_equalised_step():
    from flexae.baselines.alae_train import equalized_lr_groups
    net = torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4))
    groups = equalized_lr_groups(((net, 0.1),), lr=1.0)
    lrs = [(tuple(g["params"][0].shape), g["lr"]) for g in groups]
    assert lrs == [((3, 8), pytest.approx(math.sqrt(2 / 8) * 0.1)), ((3,), pytest.approx(0.1)),
                   ((4, 2, 3, 3), pytest.approx(math.sqrt(2 / 18) * 0.1)), ((4,), pytest.approx(0.1)),
                   ((4,), pytest.approx(0.1))]  # the BatchNorm weight and bias share the last group
    model, trainer = _model_and_trainer("alae")
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for o in trainer.optimizers.values() for g in o.param_groups for p in g["params"]) == n_params
    model.options.alae_equalized_lr = False
    plain = make_trainer(model, OptimConfig(), lambda: torch.rand(8, 128))
    assert {g["lr"] for o in plain.optimizers.values() for g in o.param_groups} == {0.0015}
