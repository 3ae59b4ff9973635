"""Training side of flexae.baselines.pioneer: the Pioneer (AGE) trainer. Kept apart from the model so
that loading a trained model imports no training code."""

from __future__ import annotations

import torch
from torch import Tensor

from flexae.baselines import losses as bl
from flexae.baselines.pioneer import Pioneer, on_sphere
from flexae.config import Adam, OptimConfig
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


class PioneerTrainer(Trainer):
    """One encoder update, then `pioneer_generator_steps` decoder updates (their n_critic = 1,
    n_generator = 2), each on a fresh real batch / fresh prior samples."""

    def __init__(self, model: Pioneer, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.options
        hp = self.hp
        adam = Adam(hp.pioneer_lr, hp.pioneer_beta1, hp.pioneer_beta2)
        self.optimizers = {"encoder": make_adam(model.encoder.parameters(), adam),
                           "decoder": make_adam(model.decoder.parameters(), adam)}
        self.scalers = {name: self.grad_scaler() for name in ("encoder", "decoder")}  # fp16 only
        # Pioneer feeds images in [-1, 1]; flexae's are in [0, 1] (synthetic data already in [-1, 1]).
        self.input_scale = 2.0 if len(model.data_shape) == 3 else 1.0

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # e and g passes in the step's precision, projections and losses in fp32
            x = self.batches()
            logs = self.update_encoder(x)
            for _ in range(self.hp.pioneer_generator_steps):
                logs.update(self.update_decoder(x.shape[0]))
            return logs

    def _codes(self, x: Tensor) -> Tensor:
        """e(x) on the unit sphere (B, m); the encoder pass in the step's precision."""
        return on_sphere(self.ae_pass(self.model.encoder, x))

    def update_encoder(self, x: Tensor) -> dict[str, Tensor]:
        """The encoder's loss (decoder frozen): real codes towards N(0, I), reconstructions of x
        close to x, codes of generated images away from N(0, I)."""
        m, hp = self.model, self.hp
        with frozen(m.decoder):
            real = self._codes(x)
            kl_real = bl.age_kl(real)
            rec = bl.pioneer_image_loss(self.ae_pass(m.decode, real), x, self.input_scale)
            with torch.no_grad():  # the original detaches g(z)
                fake = self.ae_pass(m.decode, m.sample_latent(x.shape[0]))
            kl_fake = bl.age_kl(self._codes(fake))
            loss = hp.pioneer_real_kl_weight * kl_real + hp.pioneer_image_weight * rec - hp.pioneer_fake_kl_weight * kl_fake
        update(self.optimizers["encoder"], loss, self.scalers["encoder"])
        return {"loss_encoder": loss.detach(), "kl_real": kl_real.detach(), "kl_fake": kl_fake.detach(),
                "rec_x": rec.detach()}

    def update_decoder(self, n: int) -> dict[str, Tensor]:
        """The decoder's loss (encoder frozen): KL of the codes of g(z) to N(0, I) and the cosine
        mismatch of those codes to z."""
        m, hp = self.model, self.hp
        with frozen(m.encoder):
            z = m.sample_latent(n)
            codes = self._codes(self.ae_pass(m.decode, z))
            kl = bl.age_kl(codes)
            rec_z = bl.pioneer_code_loss(codes, z)
            loss = hp.pioneer_fake_kl_weight * kl + hp.pioneer_code_weight * rec_z
        update(self.optimizers["decoder"], loss, self.scalers["decoder"])
        return {"loss_decoder": loss.detach(), "kl_generated": kl.detach(), "rec_z": rec_z.detach()}
