"""Training side of flexae.baselines.vqvae: the VQ-VAE trainer and the fit of its code prior. Kept
apart from the model so that loading a trained model imports no training code."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.vqvae import VQVAE, CodePrior, VQVAEOptions
from flexae.config import OptimConfig
from flexae.eta import Notice, synchronizer, timed
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, make_adam, update


# How to shorten a sampler fit (the end of training runs it too).
SHORTEN_FIT = "pass fit-sampler's --steps N for fewer (model.options.sampler_steps)"


def fit_code_prior(prior: CodePrior, indices: Tensor, cfg: VQVAEOptions, generator: torch.Generator,
                   seed: int, progress: bool) -> dict[str, float]:
    """Maximum likelihood on the code indices (N, L) of training images; Adam, `cfg.sampler_steps`."""
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.vq_prior_lr)
    prior.train()
    device = prior.position.device
    loss = torch.zeros(())
    notice = Notice(f"{cfg.sampler_steps} iterations of the VQ code prior", cfg.sampler_steps, SHORTEN_FIT,
                    str(device), enabled=progress, sync=synchronizer(device))
    bar = tqdm(range(cfg.sampler_steps), desc="VQ code prior", disable=not progress, dynamic_ncols=True)
    for _ in timed(bar, notice):
        idx = torch.randint(0, indices.shape[0], (cfg.sampler_batch_size,), generator=generator)
        loss = prior.nll(indices[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    prior.eval()
    prior.fitted.fill_(True)
    used = int(indices.unique().numel())
    return {"prior_nll_per_index": float(loss.detach()), "codes_used": float(used),
            "uniform_nll": math.log(prior.codebook_size)}


class VQVAETrainer(Trainer):
    """One update of E, D and the codebook per iteration."""

    def __init__(self, model: VQVAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.beta, self.scaler = model, model.options.vq_commitment, self.grad_scaler()
        first_stage = [p for name, p in model.named_parameters() if not name.startswith("prior.")]
        self.optimizers = {"ae": make_adam(first_stage, cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # E and D in the step's precision; the codebook search in fp32
            x = self.batches()
            z_e = self.ae_pass(self.model.encode_continuous, x)                   # (B, L, D)
            z_q = self.model.quantizer.lookup(self.model.quantizer.nearest(z_e.detach()))
            z_st = z_e + (z_q - z_e).detach()                                      # straight-through
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z_st.flatten(1)), x)
            codebook, commitment = bl.vq_losses(z_e, z_q)
            update(self.optimizers["ae"], rec + codebook + self.beta * commitment, self.scaler)
        return {"loss_ae": rec.detach(), "vq_codebook": codebook.detach(), "vq_commit": commitment.detach()}
