"""FlexAE-SR on images: one Algorithm-1 iteration with the paper's networks, preview grids,
TensorBoard, and exact resume, on real MNIST files where data matter.

The paper's MNIST networks are large (about 25M parameters), so every run here is a few
iterations at batch 4 and, where the test is about the loop rather than Algorithm 1, one critic
update per iteration (`optim.critic_steps=1`: the same code path, a third of the time).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.errors import UserError
from flexae.registry import build_model
from flexae.app.previews import GRID_SIDE, Previews
from flexae.training.trainers import AdversarialTrainer

MNIST = (1, 28, 28)
PARTS = ("encoder", "decoder", "prior", "latent_critic", "smoothing_critic")
GRID_PIXELS = GRID_SIDE * (28 + 2) + 2  # 8 tiles of 28 px, 2 px lines around each


def _fake_mnist(n: int = 64) -> torch.Tensor:
    return (torch.rand(n, *MNIST) * 255).to(torch.uint8)  # (n, 1, 28, 28) uint8


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed_parts(model, before: dict[str, torch.Tensor]) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}


def test_flexae_sr_iteration_follows_algorithm_1():
    """One iteration with the MNIST networks of Tables 7/8: the optimizers step in the order of
    Algorithm 1, each moves exactly its own networks, BatchNorm is in train mode in every forward
    pass, and every update draws fresh real batches (paper feed)."""
    model = build_model(ModelConfig(name="flexae-sr", latent_dim=20), MNIST)
    model.train()
    source = RandomBatches(_fake_mnist(), 4)
    drawn: list[torch.Tensor] = []
    trainer = AdversarialTrainer(model, OptimConfig(), lambda: drawn.append(source()) or drawn[-1])

    steps: list[tuple[str, set[str]]] = []
    for name, opt in trainer.optimizers.items():
        snap: dict[str, dict] = {}
        opt.register_step_pre_hook(lambda o, a, k, snap=snap: snap.update(before=_snapshot(model)))
        opt.register_step_post_hook(
            lambda o, a, k, name=name, snap=snap: steps.append((name, _changed_parts(model, snap["before"]))))
    bn_modes: list[bool] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda m, inputs: bn_modes.append(m.training))

    logs = trainer.step()

    ae, critic, reg = ("ae", {"encoder", "decoder"}), ("critic", {"latent_critic"}), ("reg", {"smoothing_critic"})
    expected = [ae, *[critic, reg] * 5, ("ae_reg", {"encoder", "decoder"}), ("gen", {"prior"}), ("enc", {"encoder"})]
    assert steps == expected
    assert bn_modes and all(bn_modes)
    # Fresh batches: 1 (L_AE) + 5 x (1 critic + 2 smoothing) + 2 (L_AE_Reg) + 1 (L_Enc).
    assert len(drawn) == 19
    assert set(logs) == {"loss_ae", "loss_critic", "w_critic", "loss_reg", "loss_ae_reg", "loss_gen", "loss_enc"}
    assert all(torch.isfinite(v) for v in logs.values())
    # Frozen critics get their gradients back; no update leaves gradients on a critic it did not own.
    assert all(p.requires_grad for p in model.parameters())


def test_flexae_sr_optimizers_hold_the_intended_parameters():
    model = build_model(ModelConfig(name="flexae-sr", latent_dim=20), MNIST)
    trainer = AdversarialTrainer(model, OptimConfig(), RandomBatches(_fake_mnist(8), 4))
    ids = lambda *modules: {id(p) for m in modules for p in m.parameters()}  # noqa: E731
    owned = {"ae": ids(model.encoder, model.decoder), "ae_reg": ids(model.encoder, model.decoder),
             "critic": ids(model.latent_critic), "reg": ids(model.smoothing_critic),
             "gen": ids(model.prior), "enc": ids(model.encoder)}
    paper = {"ae": (2e-4, (0.9, 0.999)), "critic": (1e-4, (0.0, 0.9)), "reg": (2e-4, (0.5, 0.9)),
             "ae_reg": (2e-4, (0.5, 0.9)), "gen": (1e-4, (0.0, 0.9)), "enc": (1e-5, (0.0, 0.9))}
    assert set(trainer.optimizers) == set(paper)
    for name, opt in trainer.optimizers.items():
        group = opt.param_groups[0]
        assert {id(p) for p in group["params"]} == owned[name], name
        assert (group["lr"], group["betas"], group["eps"]) == (*paper[name], 1e-8), name
    # ae and ae_reg update the same networks with separate Adam states.
    assert trainer.optimizers["ae"] is not trainer.optimizers["ae_reg"]


def test_previews_use_fixed_noise_eval_mode_and_no_training_rng(tmp_path):
    model = build_model(ModelConfig(name="flexae-sr", latent_dim=20), MNIST).train()
    previews = Previews(tmp_path, _fake_mnist(40), seed=3)
    rng = torch.get_rng_state()
    modes: list[bool] = []
    hook = model.decoder.register_forward_pre_hook(lambda m, i: modes.append(m.training))
    first = previews.render(model)
    hook.remove()
    again = previews.render(model)
    assert torch.equal(torch.get_rng_state(), rng)          # the training stream is untouched
    assert modes and not any(modes) and model.training      # eval mode inside, train mode restored
    for name in ("samples", "reconstructions"):
        assert first[name].shape == (64, *MNIST) and 0 <= first[name].min() <= first[name].max() <= 1
        assert torch.equal(first[name], again[name])
    # Rows 0, 2, 4, 6 of the reconstruction grid are the first 32 test images themselves.
    assert torch.equal(first["reconstructions"][:8], previews.test[:8].float() / 255)
    assert torch.equal(first["reconstructions"][16:24], previews.test[8:16].float() / 255)
    # Another seed, other noise.
    assert not torch.equal(Previews(tmp_path, _fake_mnist(40), seed=4).render(model)["samples"], first["samples"])


def _flexae(*args):
    proc = subprocess.run([sys.executable, "-m", "flexae", *map(str, args)], capture_output=True, text=True)
    return proc


def test_mnist_training_run_writes_grids_and_tensorboard(tmp_path, shared_data):
    """`flexae train --model flexae-sr --dataset mnist` end to end on the real files."""
    out = tmp_path / "run"
    proc = _flexae("train", "--model", "flexae-sr", "--dataset", "mnist", "--steps", "2", "--batch-size", "4",
                   "--data-dir", shared_data, "--out", out, "--quiet", "--tensorboard",
                   "--set", "train.grid_every=1", "--set", "optim.critic_steps=1")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["latent_dim"] == 20 and config["train"]["tensorboard"] is True
    assert config["train"]["data_dir"] == str(shared_data.resolve())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"loss_ae", "loss_reg", "loss_ae_reg", "loss_gen"} <= set(log[-1])
    for step in (1, 2):
        for name in ("samples", "reconstructions"):
            with Image.open(out / "grids" / f"{name}-{step:07d}.png") as image:
                assert image.format == "PNG" and image.mode == "L"
                assert image.size == (GRID_PIXELS, GRID_PIXELS)
                assert np.asarray(image).std() > 0  # not a blank picture (at least the grid lines)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "checkpoint.pt").is_file() and json.loads((out / "metrics.json").read_text())["step"] == 2
    # A second run into the same folder is refused; with --overwrite the old previews go too.
    from flexae.runs.folder import clear_run_dir
    from flexae.app.train import train
    with pytest.raises(UserError, match="pass --overwrite"):
        train(RunConfig(train=TrainConfig(dataset="mnist", steps=1)), out)
    assert (out / "grids" / "samples-0000002.png").exists()
    clear_run_dir(out)  # what --overwrite does once the new run is ready
    assert not (out / "grids").exists() and not (out / "tensorboard").exists()


def test_resume_on_images_is_exact(tmp_path, shared_data):
    """FlexAE-SR, MNIST nets, batch 4: 1 step + resume to 2 == 2 uninterrupted steps, bit for bit
    (weights, BN statistics, optimizer states, RNG), and the previews of step 2 are identical."""
    from flexae.app.train import resume, train

    def config() -> RunConfig:
        return RunConfig(ModelConfig(name="flexae-sr", latent_dim=20), OptimConfig(critic_steps=1),
                         TrainConfig(dataset="mnist", steps=2, batch_size=4, seed=5, device="cpu",
                                     log_every=1, grid_every=1, data_dir=str(shared_data)))

    train(config(), tmp_path / "full", progress=False)
    part = config()
    part.train.steps = 1
    train(part, tmp_path / "part", progress=False)
    resume(tmp_path / "part", 2, progress=False)

    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert full["step"] == resumed["step"] == 2
    for name, tensor in full["model"].items():  # includes BN running means/vars and counters
        assert torch.equal(tensor, resumed["model"][name]), name
    for name, opt in full["optimizers"].items():
        for index, slots in opt["state"].items():
            for key, value in slots.items():
                assert torch.equal(value, resumed["optimizers"][name]["state"][index][key]), (name, index, key)
    assert torch.equal(full["rng"]["torch"], resumed["rng"]["torch"])
    for name in ("samples", "reconstructions"):
        grid = f"grids/{name}-0000002.png"
        assert (tmp_path / "full" / grid).read_bytes() == (tmp_path / "part" / grid).read_bytes()
