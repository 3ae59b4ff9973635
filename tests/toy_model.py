"""A toy model defined outside flexae, as a user would add one: a linear auto-encoder with a fixed
N(0, I) prior and a plain reconstruction trainer. tests/test_architecture.py registers it with one
line and trains, saves, loads and resumes it through the library."""

from torch import Tensor, nn

from flexae import losses
from flexae.models import AutoEncoder
from flexae.priors import StandardNormalPrior
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
