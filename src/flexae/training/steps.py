"""The building blocks every trainer is made of (core trainers in flexae.training.trainers, the
baselines in flexae.baselines): the `Trainer` interface, `update` (zero, backward, step),
`make_adam`, `frozen`, and the step's precision and memory format.

The precision rule is one for every trainer (flexae.training.precision): auto-encoder passes go
through `Trainer.ae_pass` (the only place a low precision may apply) and everything else, critics,
penalties, priors, losses, runs in fp32 inside `Trainer.full_precision()`.
"""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from flexae.config import Adam
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


def update(optimizer: torch.optim.Optimizer, loss: Tensor, scaler: torch.amp.GradScaler | None = None) -> Tensor:
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
    """Common interface: `optimizers` (name -> optimizer, saved in checkpoints) and `step()`, one
    training iteration returning detached loss tensors (converted to floats only when logged)."""

    optimizers: dict[str, torch.optim.Optimizer]
    batches: BatchSource
    amp: MixedPrecision

    def step(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def set_step_options(self, model: nn.Module, batches: BatchSource, options: StepOptions | None) -> None:
        """Memory format and precision of the step; call before the optimizers see the parameters."""
        options = options or StepOptions()
        to_channels_last(model, options.channels_last)
        self.batches = lambda: channels_last_batch(batches(), options.channels_last)
        self.amp = MixedPrecision(options)

    def full_precision(self) -> contextlib.AbstractContextManager:
        """fp32 for everything inside, even within a caller's autocast (wrap the whole step)."""
        return self.amp.full()

    def ae_pass(self, net: Callable[..., Tensor], x: Tensor) -> Tensor:
        """An auto-encoder pass (E, D or D(E(.))) in the step's precision; the result in fp32."""
        with self.amp.low():
            return net(x).float()

    def ae_pass_tuple(self, net: Callable[..., tuple[Tensor, ...]], x: Tensor) -> tuple[Tensor, ...]:
        """`ae_pass` for networks that return several tensors (a Gaussian encoder's mean, log-variance)."""
        with self.amp.low():
            return tuple(t.float() for t in net(x))

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh fp16 scaler for an update whose backward runs through `ae_pass` outputs; None otherwise."""
        return self.amp.grad_scaler()
