"""Training side of flexae.baselines.variational: the 2-stage VAE, VampPrior and IAF trainers and the
second-stage fit. Kept apart from the models so that loading a trained model imports no training code."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.variational import IAFVAE, SecondStageVAE, TwoStageOptions, TwoStageVAE, VampVAE
from flexae.config import OptimConfig
from flexae.eta import Notice, synchronizer, timed
from flexae.models import reparameterise
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, make_adam, update


# How to shorten a sampler fit (the end of training runs it too).
SHORTEN_FIT = "pass fit-sampler's --steps N for fewer (model.options.sampler_steps)"


def fit_second_stage(sampler: SecondStageVAE, targets: tuple[Tensor, Tensor], cfg: TwoStageOptions,
                     generator: torch.Generator, seed: int, progress: bool) -> dict[str, float]:
    """Train the second stage on z = mu + sd * eps, a fresh draw from the first stage's posterior
    for every minibatch (the authors' code); Adam, `cfg.sampler_steps` iterations. `targets` are
    the first stage's (mu, log sd), each (N, m)."""
    mu, log_sd = targets
    optimizer = torch.optim.Adam(sampler.parameters(), lr=cfg.second_stage_lr)
    sampler.train()
    loss = nll = kl = torch.zeros(())
    device = sampler.log_gamma.device
    notice = Notice(f"{cfg.sampler_steps} iterations of the 2nd-stage VAE", cfg.sampler_steps, SHORTEN_FIT,
                    str(device), enabled=progress, sync=synchronizer(device))
    bar = tqdm(range(cfg.sampler_steps), desc="2nd-stage VAE", disable=not progress, dynamic_ncols=True)
    for _ in timed(bar, notice):
        idx = torch.randint(0, mu.shape[0], (cfg.sampler_batch_size,), generator=generator)
        eps = torch.randn(len(idx), mu.shape[1], generator=generator)
        z = (mu[idx] + eps * log_sd[idx].exp()).to(device)
        noise = torch.randn(len(idx), mu.shape[1], generator=generator).to(device)  # the 2nd stage's own eps
        loss, nll, kl = sampler.loss(z, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sampler.fitted.fill_(True)
    return {"stage2_loss": float(loss.detach()), "stage2_nll": float(nll.detach()), "stage2_kl": float(kl.detach()),
            "stage2_gamma": float(sampler.log_gamma.detach().exp())}


class TwoStageTrainer(Trainer):
    """Stage 1: one update of E, D and gamma_x per iteration on the negative ELBO."""

    def __init__(self, model: TwoStageVAE, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.scaler = model, self.grad_scaler()
        stage1 = [p for name, p in model.named_parameters() if not name.startswith("prior.")]
        self.optimizers = {"ae": make_adam(stage1, cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            x = self.batches()
            mu, logvar = self.ae_pass_tuple(self.model.posterior, x)
            x_rec = self.ae_pass(self.model.decode, reparameterise(mu, logvar))
            nll = bl.gaussian_nll_learned_scale(x, x_rec, self.model.log_gamma_x)
            kl = losses.kl_standard_normal(mu, logvar)
            update(self.optimizers["ae"], nll + kl, self.scaler)
        return {"loss_ae": losses.reconstruction_loss(x_rec, x).detach(), "nll": nll.detach(),
                "loss_kl": kl.detach(), "gamma_x": self.model.log_gamma_x.detach().exp()}


class VampTrainer(Trainer):
    """One update of E, D and the pseudo-inputs per iteration on L_AE + single-sample KL."""

    def __init__(self, model: VampVAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.scaler = model, self.grad_scaler()
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # the prior's pass over the pseudo-inputs stays fp32
            x = self.batches()
            mu, logvar = self.ae_pass_tuple(self.model.posterior, x)
            z = reparameterise(mu, logvar)
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
            kl = (bl.gaussian_log_density(z, mu, logvar) - self.model.prior.log_prob(z)).mean()
            update(self.optimizers["ae"], rec + kl, self.scaler)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach()}


class IAFTrainer(Trainer):
    """One update of E, D and the flows per iteration on L_AE + log q(z_T|x) - log p(z_T)."""

    def __init__(self, model: IAFVAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.scaler = model, self.grad_scaler()
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # the encoder and decoder in the step's precision, the flow in fp32
            x = self.batches()
            z, log_q = self.model.posterior_from_features(self.ae_pass(self.model.encoder, x))
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
            kl = (log_q - bl.standard_normal_log_density(z)).mean()
            update(self.optimizers["ae"], rec + kl, self.scaler)
        return {"loss_ae": rec.detach(), "loss_kl": kl.detach()}
