"""Training steps. A trainer owns the optimizers of one model and performs one iteration per
`step()` call; each update is a small method that makes its own forward pass, zeroes one named
optimizer, back-propagates and steps, so `AdversarialTrainer.step` reads like Algorithm 1.

Loss values are returned as detached tensors: converting them to floats (a host-device sync) is
left to the logger, which does it only every `log_every` iterations.

How a step runs (precision, memory format) is set by `StepOptions` (flexae.training.precision)
and never changes what it computes: auto-encoder passes go through `_ae` (the only place a low
precision may apply), everything else runs in fp32. docs/performance.md has the measurements.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.config import Adam, OptimConfig
from flexae.models import VAE, AdversarialAE, AutoEncoder, reparameterise
from flexae.nets.common import requires_grad
from flexae.training.distributed import average_gradients
from flexae.training.precision import MixedPrecision, StepOptions, channels_last_batch, to_channels_last

BatchSource = Callable[[], Tensor]  # returns a fresh real batch (B, ...) on the model's device


def make_adam(params, cfg: Adam) -> torch.optim.Adam:
    """Adam with eps 1e-8. On CPU and CUDA the fused kernel: one pass over parameter, gradient
    and both moments per tensor (foreach needs ~6 passes; Adam is memory-bound, and the 13 Adam
    steps of a FlexAE-SR iteration touch ~90M parameters). It also lets a GradScaler skip a step
    without a host-device sync."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8,
                            fused=fused, foreach=None if fused else True)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Let gradients flow *through* `module` without computing gradients for its parameters."""
    requires_grad(module, False)
    try:
        yield
    finally:
        requires_grad(module, True)


def _update(optimizer: torch.optim.Optimizer, loss: Tensor, scaler: torch.amp.GradScaler | None = None) -> Tensor:
    """Zero, backpropagate, step. In a multi-process run the gradients are averaged over the
    processes between backward and step (flexae.training.distributed); with an fp16 `scaler`
    the loss is scaled and a step with non-finite gradients is skipped."""
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    average_gradients(optimizer)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return loss.detach()


class Trainer:
    """Common interface: `optimizers` (name -> optimizer, saved in checkpoints) and `step()`."""

    optimizers: dict[str, torch.optim.Optimizer]

    def step(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def _set_step_options(self, model: nn.Module, batches: BatchSource, options: StepOptions | None) -> None:
        """Memory format and precision of the step; before the optimizers see the parameters."""
        options = options or StepOptions()
        to_channels_last(model, options.channels_last)
        self.batches = lambda: channels_last_batch(batches(), options.channels_last)
        self.amp = MixedPrecision(options)


class AdversarialTrainer(Trainer):
    """Algorithm 1 of the paper for FlexAE-SR, and its sub-cases:

    - FlexAE: no smoothing critic, so no L_Reg / L_AE_Reg updates.
    - WAE, WAE-GMM: the prior is fixed, so no L_Gen update; everything else is identical, which
      keeps the comparison with FlexAE at equal networks, optimisers and budget.
    """

    def __init__(self, model: AdversarialAE, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None):
        self._set_step_options(model, batches, options)
        self.model, self.cfg = model, cfg
        # fp16 only: one scaler per update whose backward runs through fp16 activations.
        self.scalers = {name: self.amp.grad_scaler() for name in ("ae", "ae_reg", "enc")}
        autoencoder = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.optimizers = {"ae": make_adam(autoencoder, cfg.ae),
                           "critic": make_adam(model.latent_critic.parameters(), cfg.critic),
                           "enc": make_adam(model.encoder.parameters(), cfg.enc)}
        if model.prior.learnable:
            self.optimizers["gen"] = make_adam(model.prior.parameters(), cfg.gen)
        if model.smoothing_critic is not None:
            self.optimizers["reg"] = make_adam(model.smoothing_critic.parameters(), cfg.reg)
            self.optimizers["ae_reg"] = make_adam(autoencoder, cfg.ae_reg)

    # -- one iteration -------------------------------------------------------------------------
    def step(self) -> dict[str, Tensor]:
        with self.amp.full():  # fp32 outside `_ae`, even inside a caller's autocast
            return self._algorithm1()

    def _algorithm1(self) -> dict[str, Tensor]:
        m, logs = self.model, {}
        logs["loss_ae"] = self.update_ae(self.batches())                      # line 3
        for _ in range(self.cfg.critic_steps):                                # line 4
            x = self.batches()
            logs["loss_critic"], logs["w_critic"] = self.update_critic(x)     # line 5
            if m.smoothing_critic is not None:
                x_reg = x if self.cfg.feed == "code" else self.batches()
                logs["loss_reg"] = self.update_reg(x_reg, self.batches())     # line 6
        feed = (lambda: x) if self.cfg.feed == "code" else self.batches
        if m.smoothing_critic is not None:
            logs["loss_ae_reg"] = self.update_ae_reg(feed(), self.batches())  # line 8
        if m.prior.learnable:
            logs["loss_gen"] = self.update_gen(x.shape[0])                    # line 9
        logs["loss_enc"] = self.update_enc(feed())                            # line 10
        return logs

    def _ae(self, net: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """An auto-encoder pass (E, D or D(E(.))) in the step's precision; the result in fp32."""
        with self.amp.low():
            return net(x).float()

    # -- the updates ---------------------------------------------------------------------------
    def update_ae(self, x: Tensor) -> Tensor:
        """Minimise L_AE, update E and D."""
        loss = losses.reconstruction_loss(self._ae(self.model.reconstruct, x), x)
        return _update(self.optimizers["ae"], loss, self.scalers["ae"])

    def update_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Minimise L_Critic, update C_kappa. Codes are "real", prior samples "fake"."""
        with torch.no_grad():
            z, z_hat = self._ae(self.model.encode, x), self.model.sample_latent(x.shape[0])
        loss, w = losses.wasserstein_critic_loss(self.model.latent_critic, z, z_hat, self.cfg.gp_weight)
        return _update(self.optimizers["critic"], loss), w

    def update_reg(self, x: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_Reg, update C_zeta: real images vs decoded interpolations of two batches' codes."""
        with torch.no_grad():
            z_inp = losses.interpolate(self._ae(self.model.encode, x), self._ae(self.model.encode, x_k))
            x_inp = self._ae(self.model.decode, z_inp)
        loss, _ = losses.wasserstein_critic_loss(self.model.smoothing_critic, x, x_inp, self.cfg.gp_weight)
        return _update(self.optimizers["reg"], loss)

    def update_ae_reg(self, x_j: Tensor, x_k: Tensor) -> Tensor:
        """Minimise L_AE_Reg, update E and D so decoded interpolations look real to C_zeta."""
        z_inp = losses.interpolate(self._ae(self.model.encode, x_j), self._ae(self.model.encode, x_k))
        with frozen(self.model.smoothing_critic):
            loss = losses.generator_loss(self.model.smoothing_critic, self._ae(self.model.decode, z_inp))
        return _update(self.optimizers["ae_reg"], loss, self.scalers["ae_reg"])

    def update_gen(self, n: int) -> Tensor:
        """Minimise L_Gen, update G_psi: prior samples move toward the encoder codes."""
        with frozen(self.model.latent_critic):
            loss = losses.generator_loss(self.model.latent_critic, self.model.sample_latent(n))
        return _update(self.optimizers["gen"], loss)

    def update_enc(self, x: Tensor) -> Tensor:
        """Minimise L_Enc, update E: encoder codes move toward the prior (tiny learning rate)."""
        with frozen(self.model.latent_critic):
            loss = losses.encoder_pull_loss(self.model.latent_critic, self._ae(self.model.encode, x))
        return _update(self.optimizers["enc"], loss, self.scalers["enc"])


class VAETrainer(Trainer):
    """One update per iteration: reconstruction (the same summed squared error as L_AE) + KL."""

    def __init__(self, model: VAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self._set_step_options(model, batches, options)
        self.model, self.cfg = model, cfg
        self.scaler = self.amp.grad_scaler()
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.amp.full():  # networks in the step's precision, the losses in fp32
            x = self.batches()
            with self.amp.low():
                mu, logvar = (t.float() for t in self.model.posterior(x))
            z = reparameterise(mu, logvar)
            with self.amp.low():
                x_rec = self.model.decode(z).float()
            rec = losses.reconstruction_loss(x_rec, x)
            kl = losses.kl_standard_normal(mu, logvar)
            _update(self.optimizers["ae"], rec + kl, self.scaler)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach()}


def make_trainer(model: AutoEncoder, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None) -> Trainer:
    """The trainer of `model`; `options` (precision, memory format) apply to the trainers of this
    module, baselines (flexae.baselines) run as the training loop's autocast sets them."""
    from flexae.baselines.registry import baseline_trainer  # imported here: it imports this module
    if (trainer := baseline_trainer(model, cfg, batches)) is not None:
        return trainer
    if isinstance(model, VAE):
        return VAETrainer(model, cfg, batches, options)
    if isinstance(model, AdversarialAE):
        return AdversarialTrainer(model, cfg, batches, options)
    raise TypeError(f"no trainer for {type(model).__name__}")
