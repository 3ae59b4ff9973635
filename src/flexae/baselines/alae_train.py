"""Training side of flexae.baselines.alae: the equalised-learning-rate Adam and the ALAE trainer. Kept
apart from the model so that loading a trained model imports no training code."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flexae.baselines import losses as bl
from flexae.baselines.alae import ALAE, HE_GAIN
from flexae.config import Adam, OptimConfig
from flexae.training.distributed import average_gradients
from flexae.training.precision import StepOptions
from flexae.training.steps import BatchSource, Trainer, frozen, make_adam, update


def equalized_lr_groups(parts: tuple[tuple[nn.Module, float], ...], lr: float) -> list[dict]:
    """Adam parameter groups that give ordinary layers the per-tensor step sizes of ALAE's LREQAdam
    (`custom_adam.py`: the step of a parameter is multiplied by its `lr_equalization_coef`, set in
    `lreq.py`): weights of Linear / Conv layers lr * sqrt(2) / sqrt(fan_in) * lrmul, their biases
    lr * lrmul; other parameters (BatchNorm, which ALAE's layers do not have) lr * lrmul.
    `parts`: (module, lrmul) pairs."""
    groups: list[dict] = []
    for module, lrmul in parts:
        seen: set[int] = set()
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = layer.weight.shape[1] if isinstance(layer, nn.Linear) else \
                    (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
                groups.append({"params": [layer.weight], "lr": lr * HE_GAIN / math.sqrt(fan_in) * lrmul})
                seen.add(id(layer.weight))
                if layer.bias is not None:
                    groups.append({"params": [layer.bias], "lr": lr * lrmul})
                    seen.add(id(layer.bias))
        rest = [p for p in module.parameters() if id(p) not in seen]
        if rest:
            groups.append({"params": rest, "lr": lr * lrmul})
    return groups


def alae_adam(parts: tuple[tuple[nn.Module, float], ...], cfg: Adam, equalized: bool) -> torch.optim.Adam:
    """One of ALAE's two optimizers over `parts` ((module, lrmul) pairs): Adam with the original's
    per-layer step sizes (`equalized_lr_groups`), or one learning rate for all (`equalized` False)."""
    if not equalized:
        return make_adam([p for module, _ in parts for p in module.parameters()], cfg)
    groups = equalized_lr_groups(parts, cfg.lr)
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8,  # as make_adam
                            fused=fused, foreach=None if fused else True)


def update_together(optimizers: tuple[torch.optim.Optimizer, ...], loss: Tensor,
                    scaler: torch.amp.GradScaler | None = None) -> Tensor:
    """`flexae.training.steps.update` for one loss stepped by several optimizers (ALAE's latent
    reconstruction steps its encoder and decoder optimizers): zero all, one backward, step each."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    for optimizer in optimizers:
        average_gradients(optimizer)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
    if scaler is not None:
        scaler.update()
    return loss.detach()


class ALAETrainer(Trainer):
    """One iteration = the original's three updates: discriminator, generator, latent
    reconstruction (`train_alae.py`); only the first sees real data (one fresh batch)."""

    def __init__(self, model: ALAE, cfg: OptimConfig, batches: BatchSource, options: StepOptions | None = None):
        self.set_step_options(model, batches, options)
        self.model, self.hp = model, model.options
        hp = self.hp
        adam = Adam(hp.alae_lr, hp.alae_beta1, hp.alae_beta2)
        # The original's two optimizers: "encoder" (E + D head) and "decoder" (G + F); E and G at
        # lrmul 1, F and the head at 0.1 (`net.py`), which only matters with `alae_equalized_lr`.
        self.optimizers = {"encoder": alae_adam(((model.encoder, 1.0), (model.discriminator_head, 0.1)), adam,
                                                hp.alae_equalized_lr),
                           "decoder": alae_adam(((model.decoder, 1.0), (model.prior, 0.1)), adam,
                                                hp.alae_equalized_lr)}
        self.scalers = {name: self.grad_scaler() for name in ("d", "g", "latent")}  # fp16 only
        # ALAE feeds images in [-1, 1]; flexae's are in [0, 1] (synthetic data already in [-1, 1]).
        self.input_scale = 2.0 if len(model.data_shape) == 3 else 1.0

    def step(self) -> dict[str, Tensor]:
        with self.full_precision():  # E and G passes in the step's precision, F, the head and losses in fp32
            x = self.batches()
            loss_d, r1 = self.update_discriminator(x)
            return {"loss_d": loss_d, "r1": r1, "loss_g": self.update_generator(x.shape[0]),
                    "loss_latent": self.update_latent(x.shape[0])}

    def _generated(self, n: int) -> Tensor:
        """G(F(z)) (n, ...), z ~ N(0, I)."""
        return self.ae_pass(self.model.decode, self.model.sample_latent(n))

    def update_discriminator(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """softplus(D(G(F(z)))) + softplus(-D(x)) + R1 on x; updates E and the head."""
        m = self.model
        with torch.no_grad():
            fake = self._generated(x.shape[0])
        x = x.detach().requires_grad_(True)  # R1 differentiates D(x) with respect to x
        d_real = m.score(self.ae_pass(m.encoder, x))  # real first, then fake: the original's order
        d_fake = m.score(self.ae_pass(m.encoder, fake))
        r1 = bl.r1_penalty(d_real, x, self.hp.alae_r1_gamma, self.input_scale)
        loss = bl.alae_discriminator_loss(d_fake, d_real) + r1
        return update(self.optimizers["encoder"], loss, self.scalers["d"]), r1.detach()

    def update_generator(self, n: int) -> Tensor:
        """softplus(-D(G(F(z)))); updates G and F (E and the head frozen, as the original)."""
        m = self.model
        with frozen(m.encoder), frozen(m.discriminator_head):
            loss = bl.alae_generator_loss(m.score(self.ae_pass(m.encoder, self._generated(n))))
        return update(self.optimizers["decoder"], loss, self.scalers["g"])

    def update_latent(self, n: int) -> Tensor:
        """||E(G(w)) - sg[w]||^2, w = F(z); updates E, G and F (both optimizers step)."""
        m = self.model
        w = m.sample_latent(n)  # (n, m), differentiable with respect to F
        w_rec = self.ae_pass(m.encoder, self.ae_pass(m.decode, w))
        loss = bl.latent_reconstruction_loss(w_rec, w)
        return update_together((self.optimizers["encoder"], self.optimizers["decoder"]), loss, self.scalers["latent"])
