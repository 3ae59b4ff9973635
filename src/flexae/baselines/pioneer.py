"""Pioneer networks (Heljakka, Solin, Kannala, ACCV 2018) at a fixed resolution, on the paper's
networks: AGE's adversarial encoder-decoder game (Ulyanov, Vedaldi, Lempitsky, CVPR 2018) with
codes and prior samples on the unit sphere.

Per iteration, as the original's `train.py`: one encoder update on
  w_real KL(e(x)) + w_x |g(e(x)) - x|_1 - w_fake KL(e(g(z)))
(the encoder pulls real codes to N(0, I) and pushes codes of generated images away), then
`pioneer_generator_steps` decoder updates on
  w_fake KL(e(g(z))) + w_z cos-mismatch(e(g(z)), z),
KL being AGE's estimate from the batch's per-dimension Gaussian fit. z is uniform on the unit
sphere, e(x) is projected on it. Generation: g(z); reconstruction: g(e(x)). The progressive
growing is left out (docs/baselines.md says why).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flexae.baselines import losses as bl
from flexae.config import Adam, ModelConfig, OptimConfig
from flexae.models import AutoEncoder
from flexae.nets.factory import encoder_decoder
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


def on_sphere(v: Tensor) -> Tensor:
    """Rows of v (B, m) divided by their Euclidean norm (the original's `utils.normalize`)."""
    return v / v.norm(dim=1, keepdim=True)


class SpherePrior(nn.Module):
    """The uniform distribution on the unit sphere of R^m: normalised N(0, I_m) draws (AGE, Pioneer)."""

    trained_by_gen = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return on_sphere(torch.randn(n, self.latent_dim, device=self._anchor.device, generator=generator))


class Pioneer(AutoEncoder):
    """Encoder e with its codes on the unit sphere, decoder g, prior uniform on the sphere."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int):
        super().__init__(encoder, decoder, SpherePrior(latent_dim))

    def encode(self, x: Tensor) -> Tensor:
        return on_sphere(self.encoder(x))


class PioneerTrainer(Trainer):
    """One encoder update, then `pioneer_generator_steps` decoder updates (their n_critic = 1,
    n_generator = 2), each on a fresh real batch / fresh prior samples."""

    def __init__(self, model: Pioneer, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.baseline_config
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


def build_pioneer(cfg: ModelConfig, data_shape: tuple[int, ...]) -> Pioneer:
    m = cfg.latent_dim
    encoder, decoder = encoder_decoder(data_shape, cfg, m, m)
    return Pioneer(encoder, decoder, m)
