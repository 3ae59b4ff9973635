"""Precision and memory-format plumbing of the training step, kept out of the trainer's updates.

Mixed-precision policy (why it is not "autocast the whole step"). Under plain
`torch.autocast(bfloat16)` around a whole FlexAE-SR iteration the prior generator explodes within
a few hundred iterations (docs/performance.md). What needs full precision is the adversarial part:
the WGAN-GP penalty is a function of the critic's *input gradient* (a double backward), the
critic's score difference is a small difference of large numbers, and the prior generator is
trained only through that critic. So only the auto-encoder passes, E(x) and D(z) (the
convolution- and FC-heavy part: ~60% of an iteration's FLOPs with the MNIST networks), run in
the low precision; their outputs are cast back to fp32 before any loss or critic sees them. The
critics, the gradient penalty, the prior generator, the losses, the optimizers and the BatchNorm
running statistics stay fp32 (BN's statistics are accumulated in fp32 by PyTorch's kernels even for
bf16 inputs; its parameters and running buffers are fp32 tensors).

- "bf16": CPU (fast only with AVX-512-BF16 / AMX units; on AVX2-only CPUs bf16 kernels are
  emulated and several times *slower* than fp32) and CUDA. No loss scaling needed: bf16 has
  fp32's exponent range.
- "fp16": CUDA only, with a `torch.amp.GradScaler` on the three updates whose backward pass runs
  through fp16 activations (AE, AE_Reg, Enc). The critic, Reg and Gen updates have no fp16 tensor
  on their gradient path (E and D run under no_grad there, or not at all), so they need no scaling.
- "fp32": no autocast anywhere.

`emulate_bf16=True` rounds the inputs, weights and outputs of every convolution and matrix
product (and, through the casts' backward, their gradients) to bf16 while computing in fp32: the
same numerics as bf16 autocast at fp32 speed. It exists to check bf16 training behaviour on CPUs
whose real bf16 kernels are too slow to train with (benchmarks/precision_check.py).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from flexae.config import PRECISIONS
from flexae.errors import UserError

__all__ = ["PRECISIONS", "LOW_DTYPES", "StepOptions", "step_options", "resolve_channels_last", "set_tf32", "MixedPrecision",
           "to_channels_last", "channels_last_batch", "EmulatedBF16"]
LOW_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StepOptions:
    """How the training step runs (never what it computes); built from TrainConfig by `step_options`."""

    device_type: str = "cpu"       # "cpu", "cuda" or "mps": where autocast applies.
    precision: str = "fp32"        # "fp32", "bf16" or "fp16" (see the module docstring).
    channels_last: bool = False    # Convolutional nets and image batches in NHWC memory format.
    emulate_bf16: bool = False     # Numerics check only: bf16 rounding with fp32 kernels.


def step_options(train_cfg, device: torch.device) -> StepOptions:
    """StepOptions of a TrainConfig on `device`; refuses fp16 off CUDA (no GradScaler support there)."""
    precision = train_cfg.precision
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision fp16 needs a CUDA device (it trains with a gradient scaler); "
                        "use bf16 or fp32")
    return StepOptions(device_type=device.type, precision=precision,
                       channels_last=resolve_channels_last(getattr(train_cfg, "channels_last", "auto"), device))


def set_tf32(enabled: bool, device: torch.device) -> None:
    """TF32 tensor cores for fp32 matrix products and convolutions on CUDA, or IEEE fp32. These are
    process-wide switches in PyTorch, so a run sets both ways explicitly (PyTorch's own default
    allows TF32 in cuDNN convolutions but not in matmuls). Nothing changes on other devices."""
    if device.type != "cuda":
        return
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        value = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = value
        torch.backends.cudnn.conv.fp32_precision = value
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def resolve_channels_last(setting: str | bool, device: torch.device) -> bool:
    """"auto": NHWC on CPU (oneDNN's native layout; the transposed convolutions of the decoder gain
    most) and CUDA (tensor-core friendly); NCHW elsewhere."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return device.type in ("cpu", "cuda")
    return setting == "on"


class MixedPrecision:
    """The two regions of a training step: `low()` around auto-encoder passes, `full()` around
    everything else (it also switches off an autocast opened by the caller)."""

    def __init__(self, options: StepOptions):
        self.options = options
        self.dtype = LOW_DTYPES.get(options.precision)  # None for fp32

    def low(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        if self.options.emulate_bf16:
            return EmulatedBF16()
        # No cast cache: each weight is used once per pass anyway, and cached casts must not outlive
        # a CUDA-graph capture (PyTorch's note on autocast with graphs).
        return torch.autocast(self.options.device_type, dtype=self.dtype, cache_enabled=False)

    def full(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.options.device_type, enabled=False)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh scaler for one fp16 update; None when no scaling is needed."""
        if self.options.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.options.device_type)


def to_channels_last(model: nn.Module, enabled: bool) -> None:
    """Store every 4-D weight (convolutions) in NHWC order; other tensors are unaffected."""
    if enabled:
        model.to(memory_format=torch.channels_last)


def channels_last_batch(x: Tensor, enabled: bool) -> Tensor:
    """(B, C, H, W) batch in NHWC strides when enabled; other shapes pass through."""
    return x.contiguous(memory_format=torch.channels_last) if enabled and x.dim() == 4 else x


# -- bf16 numerics on fp32 kernels ---------------------------------------------------------------

def _round_bf16(t):
    # A cast down and up: the forward rounds to bf16, and so does the backward (a cast's gradient
    # is the cast back), which reproduces autocast's bf16 gradients through the op as well.
    if isinstance(t, Tensor) and t.is_floating_point() and t.dtype == torch.float32:
        return t.to(torch.bfloat16).to(torch.float32)
    return t


# The ops torch.autocast runs in bf16 on the CPU that these networks use.
_AUTOCAST_OPS = {F.linear, torch.conv2d, torch.conv_transpose2d, F.conv2d, F.conv_transpose2d,
                 torch.matmul, torch.mm, torch.addmm, torch.bmm}


class EmulatedBF16(TorchFunctionMode):
    """bf16 autocast numerics on fp32 kernels (see the module docstring).

    Follows autocast's dtype flow: a convolution or matrix product rounds its inputs and weights
    to bf16 and returns a (rounded) "bf16" tensor; any other op whose floating-point tensor
    inputs are all "bf16" (0-dim tensors aside) returns "bf16", as PyTorch's type promotion
    would; batch norm returns its input's kind whatever its fp32 parameters; `.float()` and mixed
    bf16/fp32 inputs give fp32. "bf16" tensors hold fp32 values exactly representable in bf16,
    and the casts that round them also round the gradients flowing back through them.
    """

    def __init__(self):
        super().__init__()
        # Tensors autocast would hold in bf16, by id (entries vanish with their tensors).
        self._bf16: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def _mark(self, t):
        if isinstance(t, Tensor) and t.dtype == torch.float32:
            t = _round_bf16(t)
            self._bf16[id(t)] = t
        return t

    def _is_bf16(self, t: Tensor) -> bool:
        return self._bf16.get(id(t)) is t

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _AUTOCAST_OPS:
            args = tuple(_round_bf16(a) for a in args)
            kwargs = {k: _round_bf16(v) for k, v in kwargs.items()}
            return self._mark(func(*args, **kwargs))
        out = func(*args, **kwargs)
        if getattr(func, "__name__", "") in _TO_FP32 or not isinstance(out, Tensor):
            return out
        if func is F.batch_norm:
            inputs = [args[0]]  # output dtype follows the input, not the fp32 weight / statistics
        else:
            inputs = [a for a in (*args, *kwargs.values())
                      if isinstance(a, Tensor) and a.is_floating_point() and a.dim() > 0]
        if inputs and all(self._is_bf16(a) for a in inputs):
            if getattr(func, "__name__", "") in _VIEW_NAMES:
                self._bf16[id(out)] = out  # same values, already representable: no copy
                return out
            return self._mark(out)
        return out


_TO_FP32 = {"float", "to", "type_as", "double"}  # explicit casts leave the bf16 flow
_VIEW_NAMES = {"view", "reshape", "flatten", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze",
               "__getitem__", "contiguous", "detach", "view_as", "narrow", "select", "as_strided"}
