"""The one device resolver: names like "auto", "cpu", "cuda:1" or "mps" to a torch.device."""

from __future__ import annotations

import torch

from flexae.errors import UserError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None) prefers CUDA, then Apple MPS, then the CPU; a named accelerator that this
    machine lacks is a one-line UserError."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                     and torch.backends.mps.is_available()):
        raise UserError(f"device {name!r} requested but Apple MPS is not available; use --device cpu")
    return device


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that file does not exist."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16_units() -> bool:
    """True on x86 CPUs with bf16 arithmetic (AVX512-BF16 or AMX-BF16). oneDNN also "supports" bf16
    on plain AVX-512 by conversion, and PyTorch runs it on AVX2 through slow generic loops."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
