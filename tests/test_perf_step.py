"""The fast training step computes what the plain one computes: gradient penalty, critic passes,
memory format, precision policy, emulated bf16, `flexae bench train-step` (no timings asserted)."""

import contextlib
import json
import subprocess
import sys

import pytest
import torch

from flexae import losses
from flexae.bench import bench_train_step, random_dataset
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.errors import UserError
from flexae.registry import build_model
from flexae.nets.image import LatentCritic, SmoothingCritic
from flexae.training.precision import EmulatedBF16, StepOptions, step_options
from flexae.training.trainers import AdversarialTrainer
from flexae.validation import validate_config


def _plain_penalty(critic, real, fake):
    """The textbook WGAN-GP penalty (ReLU differentiated by autograd as usual)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)))
    avg = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(avg).sum(), avg, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@pytest.mark.parametrize("critic, shape", [(LatentCritic(6), (16, 6)), (SmoothingCritic((1, 12, 12)), (8, 1, 12, 12))])
def test_gradient_penalty_gradients_equal_the_plain_double_backward(critic, shape):
    real, fake = torch.rand(shape), torch.rand(shape)
    grads = []
    for penalty in (_plain_penalty, losses.gradient_penalty):
        critic.zero_grad()
        torch.manual_seed(1)
        value = penalty(critic, real, fake)
        value.backward()
        # The plain version sends all-zero gradients to some biases; here they stay None.
        grads.append([value.detach()] + [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                         for p in critic.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)  # bit-identical: only dead (all-zero) branches of the graph are gone


def test_critic_loss_scores_real_and_fake_in_one_pass_with_the_same_result():
    critic = LatentCritic(5)
    real, fake = torch.randn(32, 5), torch.randn(32, 5)
    torch.manual_seed(0)
    loss, w = losses.wasserstein_critic_loss(critic, real, fake, 10.0)
    torch.manual_seed(0)
    w_two = critic(real).mean() - critic(fake).mean()
    expected = -w_two + 10.0 * losses.gradient_penalty(critic, real, fake)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-5) and torch.allclose(w, w_two.detach(), atol=1e-5)


def _image_trainer(options, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(name="flexae-sr", latent_dim=4), (3, 8, 8))
    data = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    return model, AdversarialTrainer(model, OptimConfig(), RandomBatches(data, 8), options)


def test_channels_last_changes_layout_not_results():
    grads, logs = [], []
    for channels_last in (False, True):
        model, trainer = _image_trainer(StepOptions(channels_last=channels_last))
        conv = model.encoder.conv[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.manual_seed(5)
        x, x_k = trainer.batches(), trainer.batches()
        # One backward of L_AE and of L_Reg without a step: same gradients in either layout.
        rec = losses.reconstruction_loss(trainer.ae_pass(model.reconstruct, x), x)
        x_inp = trainer.ae_pass(model.decode, losses.interpolate(trainer.ae_pass(model.encode, x), trainer.ae_pass(model.encode, x_k)))
        reg, _ = losses.wasserstein_critic_loss(model.smoothing_critic, x, x_inp.detach(), 10.0)
        (rec + reg).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        torch.manual_seed(6)
        logs.append(trainer.step())
    assert (grads[0] - grads[1]).norm() <= 1e-5 * grads[0].norm()  # float round-off only
    # A full step runs in both layouts; its losses agree closely (Adam's first steps amplify
    # round-off in near-zero gradients, so weights are compared through the gradients above).
    assert torch.allclose(logs[0]["loss_ae"], logs[1]["loss_ae"], rtol=1e-4)


def test_adam_is_fused_on_cpu():
    _, trainer = _image_trainer(StepOptions())
    assert all(opt.defaults["fused"] for opt in trainer.optimizers.values())


def _dtypes_seen(trainer, model, outer=contextlib.nullcontext()):
    """dtype of each network's output during one step."""
    seen = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda mod, inp, out, name=name: seen.setdefault(name, set()).add(out.dtype))
        for name in ("encoder", "decoder", "latent_critic", "smoothing_critic")]
    hooks.append(model.prior.generator.register_forward_hook(
        lambda mod, inp, out: seen.setdefault("prior", set()).add(out.dtype)))
    with outer:
        trainer.step()
    for h in hooks:
        h.remove()
    return seen


def test_bf16_policy_low_precision_only_in_the_autoencoder_passes():
    model, trainer = _image_trainer(StepOptions(precision="bf16"))
    # Even inside a caller's bf16 autocast (the training loop's), critics and prior stay fp32.
    seen = _dtypes_seen(trainer, model, torch.autocast("cpu", dtype=torch.bfloat16))
    assert seen["encoder"] == {torch.bfloat16} and seen["decoder"] == {torch.bfloat16}
    for name in ("latent_critic", "smoothing_critic", "prior"):
        assert seen[name] == {torch.float32}, name
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_emulated_bf16_rounds_where_autocast_would():
    lin = torch.nn.Linear(16, 16)
    x = torch.randn(4, 16)
    with EmulatedBF16():
        y = torch.relu(lin(x))        # bf16 flow: linear, then an op on its output
        z = y.float() + x             # explicit cast and an fp32 input: back to fp32
    assert torch.equal(y, y.bfloat16().float())
    assert not torch.equal(z, z.bfloat16().float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_real = torch.relu(lin(x)).float()
    assert torch.allclose(y, y_real, atol=2e-2)


def test_fp16_needs_cuda():
    cfg = RunConfig(ModelConfig(name="flexae"), train=TrainConfig(precision="fp16", device="cpu"))
    validate_config(cfg, check_device=False)  # a valid config, e.g. read back on another machine
    with pytest.raises(UserError, match="needs a CUDA device"):
        validate_config(cfg)                  # but not for training on this CPU
    with pytest.raises(UserError, match="needs a CUDA device"):
        step_options(cfg.train, torch.device("cpu"))
    # One fp16 rule for every model: the baselines' trainers scale their updates too.
    validate_config(RunConfig(ModelConfig(name="wae-mmd"), train=TrainConfig(precision="fp16")), check_device=False)
    with pytest.raises(UserError, match="channels_last"):
        validate_config(RunConfig(train=TrainConfig(channels_last="sometimes")))


def test_bench_reports_time_and_breakdown():
    cfg = RunConfig(ModelConfig(name="flexae", latent_dim=4), train=TrainConfig(dataset="synthetic-5d", batch_size=8))
    result = bench_train_step(cfg, steps=2, warmup=1, profile=True, n_train=64)
    assert result["ms_per_iter"] > 0 and result["samples_per_s"] > 0 and result["precision"] == "fp32"
    assert set(result["profile_ms"]) == {"ae", "critic", "gen", "enc", "other"}
    assert random_dataset("mnist", 5).train.shape == (5, 1, 28, 28)


def test_bench_command_prints_one_json_object():
    proc = subprocess.run([sys.executable, "-m", "flexae", "bench", "train-step", "--model", "flexae", "--dataset",
                           "synthetic-5d", "--latent-dim", "4", "--batch-size", "8", "--steps", "1", "--warmup", "0",
                           "--profile"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ms_per_iter"] > 0 and "profile_ms" in result and result["model"] == "flexae"


def test_fp16_gradient_scaler_path():
    """The fp16 path (CUDA in use; CPU autocast has fp16 too, so it runs here): scaled updates
    skip steps with overflowing gradients and lower their scale, the others train as usual."""
    model, trainer = _image_trainer(StepOptions(precision="fp16"))
    before = {name: [p.detach().clone() for p in getattr(model, name).parameters()]
              for name in ("encoder", "latent_critic", "smoothing_critic")}
    for _ in range(3):
        logs = trainer.step()
    assert all(torch.isfinite(v) for v in logs.values())
    assert all(s is not None and s.get_scale() <= 65536.0 for s in trainer.scalers.values())
    for name, params in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(params, getattr(model, name).parameters())), name


BASELINE_SHAPE = (1, 12, 12)


def _baseline(name, options):
    from flexae.registry import make_trainer, set_options
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, latent_dim=4)
    set_options(cfg, vamp_pseudo_inputs=6, vq_codebook_size=16, vq_embedding_dim=3, iaf_hidden=16)
    model = build_model(cfg, BASELINE_SHAPE)
    data = torch.randint(0, 256, (64, *BASELINE_SHAPE), dtype=torch.uint8)
    return model, make_trainer(model, OptimConfig(critic_steps=1), RandomBatches(data, 8), options)


@pytest.mark.parametrize("name", ["wae-mmd", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae"])
def test_baselines_follow_the_one_precision_policy(name):
    """bf16 only in the encoder/decoder passes (even inside a caller's autocast), channels-last
    applied, fp16 scaled: the rule of the paper's trainers holds for every baseline."""
    model, trainer = _baseline(name, StepOptions(precision="bf16", channels_last=True))
    assert model.encoder.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    seen = {}
    nets = {"encoder": model.encoder, "decoder": model.decoder}
    if name == "mask-aae":
        nets["latent_critic"] = model.latent_critic
    hooks = [net.register_forward_hook(lambda mod, inp, out, key=key: seen.setdefault(key, set()).add(out.dtype))
             for key, net in nets.items()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logs = trainer.step()
    for h in hooks:
        h.remove()
    assert all(torch.isfinite(v) for v in logs.values())
    assert seen["decoder"] == {torch.bfloat16}
    if name != "vamp-vae":  # VampPrior's prior pass over the pseudo-inputs is fp32, the data pass bf16
        assert seen["encoder"] == {torch.bfloat16}
    else:
        assert seen["encoder"] == {torch.bfloat16, torch.float32}
    if name == "mask-aae":
        assert seen["latent_critic"] == {torch.float32}  # WGAN-GP critic and penalty in fp32
    _, fp16 = _baseline(name, StepOptions(precision="fp16"))
    assert all(torch.isfinite(v) for v in fp16.step().values())
