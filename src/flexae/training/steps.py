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
from flexae.errors import UserError
from flexae.nets.common import requires_grad
from flexae.training.distributed import average_gradients
from flexae.training.precision import MixedPrecision, StepOptions, channels_last_batch, to_channels_last

BatchSource = Callable[[], Tensor]  # returns a fresh real batch (B, ...) on the model's device


def make_adam(params, cfg: Adam) -> torch.optim.Adam:
    """Adam with eps 1e-8. On CPU and CUDA the fused kernel: one pass over parameter, gradient
    and both moments per tensor (foreach needs ~6 passes; Adam is memory-bound, and the 14 Adam
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


# Param-group flags that say how *this* process runs an optimizer, not what it computes. A state
# dict carries the saving process's flags; loading keeps the loading optimizer's own, so a
# checkpoint of a CUDA-graphed run (capturable, fused on CUDA) resumes eagerly on a CPU and back.
RUNTIME_FLAGS = ("capturable", "fused", "foreach", "differentiable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping `optimizer`'s runtime flags and putting the step
    counters where those flags want them (the device for capturable or fused groups)."""
    flags = [{k: g[k] for k in RUNTIME_FLAGS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, flags):
        group.update(own)
    place_step_counters(optimizer)


def place_step_counters(optimizer: torch.optim.Optimizer) -> None:
    """Each step counter (a 0-d float32 tensor) where its group's flags want it: on the parameter's
    device for capturable or fused groups (no host sync per step), else on the CPU. Needed after a
    state dict is loaded or a group's flags change (PyTorch places them only when it loads)."""
    for group in optimizer.param_groups:
        on_device = group.get("capturable", False) or group.get("fused", False)
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if isinstance(step, Tensor):
                device = param.device if on_device else torch.device("cpu")
                optimizer.state[param]["step"] = step.to(device=device, dtype=torch.float32)


class Trainer:
    """Common interface: `optimizers` (name -> optimizer, saved in checkpoints) and `step()`, one
    training iteration returning detached loss tensors (converted to floats only when logged)."""

    optimizers: dict[str, torch.optim.Optimizer]
    batches: BatchSource
    amp: MixedPrecision
    # Why one iteration cannot be captured in a CUDA graph (it needs the host mid-iteration), or
    # None if it can (flexae.training.graphs; such a trainer trains eagerly, with a warning).
    graph_unsafe: str | None = None
    # The train.batchnorm_stats values the trainer implements (flexae.training.batchnorm).
    batchnorm_stats_choices: tuple[str, ...] = ("own",)

    def step(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def set_step_options(self, model: nn.Module, batches: BatchSource, options: StepOptions | None) -> None:
        """Memory format and precision of the step; call before the optimizers see the parameters."""
        options = options or StepOptions()
        to_channels_last(model, options.channels_last)
        self.batches = lambda: channels_last_batch(batches(), options.channels_last)
        # A batch drawn with a private generator (source: RandomBatches), off the training stream.
        self.draw_batch = lambda generator: channels_last_batch(batches(generator), options.channels_last)
        self.amp = MixedPrecision(options)

    def use_batchnorm_stats(self, mode: str, seed: int) -> None:
        """`train.batchnorm_stats` (flexae.training.batchnorm): "own" unless a trainer overrides this."""
        if mode not in self.batchnorm_stats_choices:
            raise UserError(f"train.batchnorm_stats={mode!r} exists for the models of Algorithm 1 (flexae, "
                            f"flexae-sr, wae, wae-gmm); {type(self).__name__} keeps 'own'")

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
