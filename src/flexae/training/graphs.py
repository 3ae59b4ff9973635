"""CUDA-graph training: one whole training iteration captured once, then replayed.

Why. On a GPU the networks of the paper are small next to the chip: one FlexAE-SR iteration on
MNIST is ~1,500 kernel launches (14 optimizer steps, five critic rounds with double backward)
of which most run for microseconds, so eager PyTorch is bound by the host (Python, dispatch,
launches), not by the GPU. A CUDA graph records the launches of one iteration once and replays
them with one call: the host cost disappears and what is computed stays exactly the same.

How (`GraphedTrainer`):

1. Every optimizer is made capturable (`make_capturable`): Adam's step counters live on the
   device, so a replayed `step()` advances them without the host.
2. `warmup` eager iterations on a side stream, as PyTorch's CUDA-graph notes ask (lazy cuBLAS /
   cuDNN handles, autograd state, the allocator). They are real training iterations.
3. The next iteration is captured (recorded, not run) and replayed at once; its loss tensors are
   the graph's static outputs, overwritten by every replay and read by the loop only when it logs.
4. Every later iteration is one `graph.replay()`. Batch indices, prior noise, penalty and
   interpolation weights are drawn by captured RNG kernels on the device; PyTorch advances the
   generator's offset at each replay, so every replay draws fresh batches and noise, as eager does.

Between replays the loop may read anything (losses, weights, optimizer states: the divergence
monitor, previews, evaluation, checkpoints) and may overwrite weights *in place* (a model's
`load_state_dict` copies into the existing tensors). What it must not do is replace a tensor the
graph holds (an optimizer's `load_state_dict` does): `invalidate()` then, and the next iteration
is captured again.

What cannot be captured: work that needs the host inside an iteration (a value read back, a
learning rate or weight that follows the iteration count on the host). A trainer declares it in
`Trainer.graph_unsafe` (MaskAAE does) and trains eagerly with one warning line; a capture that
fails anyway falls back the same way.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from flexae.config import CUDA_GRAPHS
from flexae.errors import UserError
from flexae.training import distributed
from flexae.training.steps import Trainer, place_step_counters

WARMUP_STEPS = 3  # eager iterations before the capture


def cuda_graphs_reason(setting: str, device: torch.device, trainer: Trainer) -> str | None:
    """None if `trainer` is to be graphed on `device`, else why not (for the warning line); raises
    UserError for `on` off CUDA. `auto` is on for CUDA and off elsewhere, silently."""
    if setting not in CUDA_GRAPHS:
        raise UserError(f"unknown train.cuda_graphs {setting!r}; choose from {', '.join(CUDA_GRAPHS)}")
    if setting == "off":
        return "off"
    if device.type != "cuda":
        if setting == "on":
            raise UserError(f"train.cuda_graphs=on needs a CUDA device, this run is on {device.type}; "
                            f"use train.cuda_graphs=auto or off")
        return "off"
    if trainer.graph_unsafe:
        return trainer.graph_unsafe
    if distributed.world_size() > 1:
        return ("multi-process runs are not captured yet (the gradient all-reduce inside a graph is "
                "untested)")
    return None


def maybe_graphed(trainer: Trainer, setting: str, device: torch.device, model_name: str) -> Trainer:
    """`trainer` wrapped in a GraphedTrainer where `setting` and the trainer allow it, else itself
    (with one warning when graphs would have been used on this device)."""
    reason = cuda_graphs_reason(setting, device, trainer)
    if reason is None:
        return GraphedTrainer(trainer, device)
    if reason != "off":
        warnings.warn(f"CUDA graphs off for {model_name}: {reason}; training eagerly", stacklevel=2)
    return trainer


def make_capturable(optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Set `capturable` on every param group and keep each step counter where such an optimizer
    expects it (a float32 0-d tensor on its parameter's device). Idempotent."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            if "capturable" in group:
                group["capturable"] = True
        place_step_counters(optimizer)


class GraphedTrainer(Trainer):
    """A trainer whose `step()` is replayed from a CUDA graph (see the module docstring). It owns
    no optimizers of its own: `optimizers` are the wrapped trainer's, saved in checkpoints as usual."""

    def __init__(self, trainer: Trainer, device: torch.device, warmup: int = WARMUP_STEPS):
        self.inner, self.device, self.warmup = trainer, device, warmup
        self.optimizers = trainer.optimizers
        self.batches = trainer.batches
        self.amp = trainer.amp
        self.fallback: str | None = None       # why the capture failed, once it has
        self.eager_steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._outputs: dict[str, Tensor] = {}  # the graph's static loss tensors
        self._stream = torch.cuda.Stream(device)

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def invalidate(self) -> None:
        """Forget the graph (after tensors it holds were replaced); the next step captures again."""
        self._graph, self._outputs = None, {}

    def step(self) -> dict[str, Tensor]:
        if self.fallback is not None:
            return self.inner.step()
        if self._graph is None:
            if self.eager_steps < self.warmup:
                return self._warmup_step()
            if not self._capture():
                return self.inner.step()
        self._graph.replay()
        return self._outputs

    def _warmup_step(self) -> dict[str, Tensor]:
        make_capturable(self.optimizers)  # before the first step that sees a capturable flag
        main = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(main)
        with torch.cuda.stream(self._stream):
            logs = self.inner.step()
        main.wait_stream(self._stream)
        self.eager_steps += 1
        return logs

    def _capture(self) -> bool:
        make_capturable(self.optimizers)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)  # gradients are then allocated in the graph's pool
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self.inner.step()
        except Exception as exc:  # noqa: BLE001 - any capture failure means: train eagerly
            torch.cuda.synchronize(self.device)
            self.fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            warnings.warn(f"CUDA graph capture failed ({self.fallback}); training eagerly from here "
                          f"(set train.cuda_graphs=off to skip the attempt)", stacklevel=3)
            return False
        self._graph, self._outputs = graph, outputs
        return True

    def __getattr__(self, name: str) -> Any:
        # update_* methods and attributes of the wrapped trainer (bench's profiler, tests)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
