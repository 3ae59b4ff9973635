"""A model with settings of its own, defined outside flexae in one module, as a user would write
it: `flexae train --model tests_pkg.my_model:MyModel --set model.options.width=16` trains it; the
run's config.json records the reference, so resume and sample rebuild it in a fresh process."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from flexae import losses
from flexae.models import AutoEncoder
from flexae.priors import StandardNormalPrior
from flexae.ranges import Range
from flexae.registry import ModelSpec
from flexae.training.steps import Trainer, make_adam, update


@dataclass
class Options:
    width: int = field(default=8, metadata={"range": Range(1, 4096)})  # hidden units of encoder and decoder
    code_weight: float = 0.0  # weight of mean ||z||^2 added to L_AE


class MyModel(AutoEncoder):
    """x (B, d) -> z (B, m) -> x (B, d) through one hidden layer of `width` units each way."""

    spec: ModelSpec  # set below: how flexae builds and trains this model

    def __init__(self, data_size: int, latent_dim: int, options: Options):
        hidden = options.width
        super().__init__(nn.Sequential(nn.Linear(data_size, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)),
                         nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_size)),
                         StandardNormalPrior(latent_dim))


def build(cfg, data_shape: tuple[int, ...]) -> MyModel:
    return MyModel(data_shape[0], cfg.latent_dim, cfg.options)


class MyTrainer(Trainer):
    def __init__(self, model: MyModel, cfg, batches, options=None):
        self.set_step_options(model, batches, options)
        self.model, self.code_weight = model, model.options.code_weight
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            x = self.batches()
            z = self.ae_pass(self.model.encode, x)
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
            update(self.optimizers["ae"], rec + self.code_weight * z.pow(2).sum(1).mean())
            return {"loss_ae": rec.detach()}


MyModel.spec = ModelSpec(build, MyTrainer, options=Options)
