"""Training side of flexae.baselines.deterministic: the WAE-MMD and (R)AE trainers and the ex-post
GMM fit. Kept apart from the models so that loading a trained model imports no training code."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import add_input_noise, data_size, decoder_weights
from flexae.baselines.deterministic import WAEMMD, ExPostGMMAE, ExPostGMMOptions, GaussianMixtureSampler, check_gmm
from flexae.config import OptimConfig
from flexae.errors import UserError
from flexae.files import first_line
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, make_adam, update


def fit_gmm(sampler: GaussianMixtureSampler, codes: Tensor, hp: ExPostGMMOptions, generator: torch.Generator,
            seed: int, progress: bool) -> dict[str, float]:
    """Fit the GMM to codes (N, m) with scikit-learn's EM (full covariances); store it as tensors."""
    from sklearn.mixture import GaussianMixture

    components, dim = sampler.means.shape
    if codes.shape[0] < components:
        raise UserError(f"cannot fit a {components}-component GMM to {codes.shape[0]} codes")
    data = codes.double().cpu().numpy()
    if not np.isfinite(data).all():
        raise UserError("cannot fit the GMM: the model's codes hold NaN or infinity")
    try:
        gmm = GaussianMixture(n_components=components, covariance_type="full", max_iter=500,
                              random_state=seed).fit(data)
    except (ValueError, np.linalg.LinAlgError) as exc:  # sklearn: ill-defined empirical covariance
        raise UserError(f"the GMM fit degenerated ({first_line(exc)}); use fewer "
                        f"model.options.expost_gmm_components or more codes") from None
    params = [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (gmm.weights_, gmm.means_, gmm.covariances_)]
    check_gmm(*params)
    sampler.set_parameters(*params)
    return {"gmm_avg_log_likelihood": float(gmm.score(data)), "gmm_converged": float(gmm.converged_)}


class WAEMMDTrainer(Trainer):
    """One update of E, D per iteration on c + lambda * MMD(codes, prior samples), c the authors'
    scaled cost `wae_cost_scale` * L_AE, the codes those of noisy inputs (`wae_input_noise`)."""

    def __init__(self, model: WAEMMD, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.options
        self.scaler = self.grad_scaler()
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            x = self.batches()
            z = self.ae_pass(self.model.encode, add_input_noise(x, self.hp.wae_input_noise))
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
            mmd = bl.mmd_imq(z, self.model.sample_latent(x.shape[0]), self.model.prior.std ** 2)
            # The authors' objective (wae.py lines 88-89): scaled cost + lambda * MMD.
            update(self.optimizers["ae"], bl.scaled_cost(rec, self.hp.wae_cost_scale) + self.hp.mmd_weight * mmd,
                   self.scaler)
        return {"loss_ae": rec.detach(), "mmd": mmd.detach()}


class RAETrainer(Trainer):
    """One update of E, D per iteration on the (R)AE loss; ae-gmm has beta = lambda = 0."""

    def __init__(self, model: ExPostGMMAE, cfg: OptimConfig, batches: BatchSource,
                 options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.scaler, hp = model, self.grad_scaler(), model.options
        regularised = model.name == "rae-gmm"
        self.code_weight = hp.rae_code_weight if regularised else 0.0
        self.decay = hp.rae_decoder_decay if regularised else 0.0
        self.optimizers = {"ae": make_adam(model.parameters(), cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():
            x = self.batches()
            z = self.ae_pass(self.model.encode, x)
            rec = losses.reconstruction_loss(self.ae_pass(self.model.decode, z), x)
            logs = {"loss_ae": rec.detach()}
            loss = rec
            if self.code_weight or self.decay:
                d = data_size(tuple(x.shape[1:]))
                code = bl.code_l2_penalty(z)
                decay = bl.squared_weight_sum(decoder_weights(self.model.decoder))
                loss = rec + d * (self.code_weight * code + self.decay * decay)
                logs |= {"code_l2": code.detach(), "decoder_l2": decay.detach()}
            update(self.optimizers["ae"], loss, self.scaler)
        return logs
