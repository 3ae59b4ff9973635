"""A toy model defined outside flexae, as a user would add one: a linear auto-encoder with a fixed
N(0, I) prior and a plain reconstruction trainer. tests/test_architecture.py registers it with one
line and trains, saves, loads and resumes it through the library."""

import os
import signal
import time

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.models import AutoEncoder
from flexae.priors import ExPostSampler, StandardNormalPrior
from flexae.training.steps import Trainer, make_adam, update


def build_toy(cfg, data_shape: tuple[int, ...]) -> AutoEncoder:
    d, m = data_shape[0], cfg.latent_dim
    return AutoEncoder(nn.Linear(d, m), nn.Linear(m, d), StandardNormalPrior(m))


class ToyTrainer(Trainer):
    def __init__(self, model: AutoEncoder, cfg, batches, options=None):
        self.set_step_options(model, batches, options)
        self.model = model
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            x = self.batches()
            loss = losses.reconstruction_loss(self.ae_pass(self.model.reconstruct, x), x)
            return {"loss_ae": update(self.optimizers["ae"], loss)}


# -- a toy ex-post model whose sampler fit sends its own process a stop signal --------------------

class SelfStoppingSampler(ExPostSampler):
    """N(0, I) once fitted; its fit (below) signals SIGTERM to its own process, then keeps working."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def _sample(self, n, generator):
        return torch.randn(n, self.dim, generator=generator)


def build_self_stopping(cfg, data_shape: tuple[int, ...]) -> AutoEncoder:
    d, m = data_shape[0], cfg.latent_dim
    model = AutoEncoder(nn.Linear(d, m), nn.Linear(m, d), SelfStoppingSampler(m))
    model.sampler_targets = model.encode
    return model


def fit_self_stopping(sampler, targets, hp, generator, seed, progress) -> dict[str, float]:
    os.kill(os.getpid(), signal.SIGTERM)  # as a user pressing Ctrl-C during a long fit
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a long fit: the stop must come from the signal
        time.sleep(0.01)
    sampler.fitted.fill_(True)
    return {}
