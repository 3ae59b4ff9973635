"""Networks for image data: paper Tables 7 (encoder, decoder) and 8 (prior generator, critics).

The same five networks serve MNIST / Fashion-MNIST (1x28x28), CIFAR-10 (3x32x32) and CelebA
(3x64x64); only the side `s` and the channel count `c` change. Images are NCHW floats in [0, 1].

Padding follows TensorFlow's "same" (the authors' code):
- Conv2d(k=4, s=2, p=1) and ConvTranspose2d(k=4, s=2, p=1) are exactly TF "same" for even sides
  (TF pads 1 on each side for these), so the spatial path is s -> s/2 -> s/4 in the encoder and
  s/4 -> s/2 -> s in the decoder (28: 7->14->28, 32: 8->16->32, 64: 16->32->64).
- A stride-1 "same" conv with an even kernel is padded asymmetrically: TF puts the smaller half
  first, i.e. (k-1)//2 on the left/top and the rest on the right/bottom (1 and 2 for k=4).

Where the paper and the authors' code differ, the paper is the default:
- Decoder output layer: paper Conv(c, k4, s1) after BN -> ELU (`variant="paper"`); authors' code
  Conv(c, k3, s1) after BN -> ReLU (`variant="authors"`).
- BatchNorm parameters: the paper gives none, so the default is the authors' code, i.e. TF's
  defaults (decay 0.99, epsilon 1e-3), which in PyTorch terms is `momentum=0.01, eps=1e-3`.
  PyTorch's own defaults are `bn_momentum=0.1, bn_eps=1e-5`.
- Initialisation: the paper is silent; the code uses Glorot with zero biases. Default
  `init="glorot-uniform"` (Glorot-uniform everywhere); `init="authors"` reproduces the authors' code exactly:
  Glorot truncated-normal (TF variance_scaling fan_avg) for the decoder, prior generator and latent
  critic, Glorot-uniform for the encoder and smoothing critic. Both have weight variance
  2 / (fan_in + fan_out); only the shape of the distribution differs.

Memory format: no `.view` on activations (reshape/flatten only), so modules converted with
`.to(memory_format=torch.channels_last)` accept channels-last inputs and give the same results.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from flexae.errors import UserError
from flexae.nets.common import glorot_init_, mlp

# Latent dimension m of the paper (Tables 7, 8); the authors' code used 32 and 128.

# Decoder output layer: (kernel size, activation before it).
DECODER_VARIANTS = {"paper": (4, "elu"), "authors": (3, "relu")}

TF_BN_MOMENTUM = 0.01  # TF decay 0.99 == PyTorch momentum 0.01 (weight of the new batch).
TF_BN_EPS = 1e-3

HIDDEN = 1024  # Width of every fully connected hidden layer in Tables 7 and 8.


def check_image_shape(image_shape: tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    """Validate (C, H, W): square, side divisible by 4 (two stride-2 stages). Returns a tuple."""
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"image shape must be (channels, height, width), got {tuple(image_shape)}")
    c, h, w = shape
    if h != w:
        raise UserError(f"image shape {shape}: the networks need square images (height == width)")
    if h % 4 != 0:
        raise UserError(f"image shape {shape}: the side must be divisible by 4 "
                        f"(two stride-2 stages), e.g. 28, 32 or 64")
    return c, h, w


def _check_dim(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value}")
    return int(value)


def tf_same_padding(kernel: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of TF "same" for a stride-1 conv of size `kernel`."""
    before = (kernel - 1) // 2
    after = kernel - 1 - before
    return before, after, before, after


def _activation(name: str) -> nn.Module:
    if name == "elu":
        return nn.ELU()
    if name == "relu":
        return nn.ReLU()
    raise UserError(f"unknown decoder activation {name!r}; choose 'elu' (paper) or 'relu' (code)")


def glorot_truncated_normal_(module: nn.Module) -> nn.Module:
    """TF `variance_scaling(1, "fan_avg", "truncated_normal")` weights, zero biases.

    TF truncates at 2 std and rescales so the variance after truncation is 2/(fan_in + fan_out).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class ImageEncoder(nn.Module):
    """E_phi (Table 7): x (N, c, s, s) -> z (N, out_features), out_features = m by default.

    Conv64 k4 s2 -> ReLU -> Conv128 k4 s2 -> BN -> ReLU -> Flatten -> FC1024 -> BN -> ReLU -> FC.
    `out_features` lets a VAE ask for 2m outputs (mean and log-variance).
    """

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int,
                 out_features: int | None = None, bn_momentum: float = TF_BN_MOMENTUM,
                 bn_eps: float = TF_BN_EPS) -> None:
        super().__init__()
        c, s, _ = check_image_shape(image_shape)
        self.image_shape = (c, s, s)
        self.latent_dim = _check_dim("latent_dim", latent_dim)
        self.out_features = _check_dim("out_features", out_features or latent_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(c, 64, 4, stride=2, padding=1),      # (N, 64, s/2, s/2)
            nn.ReLU(),                                      # no BN on the first layer
            nn.Conv2d(64, 128, 4, stride=2, padding=1),     # (N, 128, s/4, s/4)
            nn.BatchNorm2d(128, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * (s // 4) ** 2, HIDDEN),
            nn.BatchNorm1d(HIDDEN, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
            nn.Linear(HIDDEN, self.out_features),           # linear code
        )
        glorot_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)                       # (N, 128, s/4, s/4), any memory format
        return self.fc(torch.flatten(h, 1))    # flatten copies if channels-last: (N, out_features)


class ImageDecoder(nn.Module):
    """D_theta (Table 7): z (N, m) -> x (N, c, s, s) in (0, 1).

    FC1024 -> BN -> ReLU -> FC 128*(s/4)^2 -> BN -> ReLU -> reshape (N, 128, s/4, s/4)
    -> ConvT128 k4 s2 -> BN -> ReLU (N, 128, s/2, s/2) -> ConvT64 k4 s2 -> BN -> act (N, 64, s, s)
    -> Conv c, k=last_kernel, s1, TF "same" -> Sigmoid (N, c, s, s).
    Paper: last_kernel=4, act ELU; authors' code: last_kernel=3, act ReLU.
    """

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, last_kernel: int = 4,
                 last_activation: str = "elu", bn_momentum: float = TF_BN_MOMENTUM,
                 bn_eps: float = TF_BN_EPS) -> None:
        super().__init__()
        c, s, _ = check_image_shape(image_shape)
        self.image_shape = (c, s, s)
        self.latent_dim = _check_dim("latent_dim", latent_dim)
        last_kernel = _check_dim("last_kernel", last_kernel)
        self.base = s // 4
        self.fc = nn.Sequential(
            nn.Linear(self.latent_dim, HIDDEN),
            nn.BatchNorm1d(HIDDEN, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
            nn.Linear(HIDDEN, 128 * self.base ** 2),
            nn.BatchNorm1d(128 * self.base ** 2, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),   # (N, 128, s/2, s/2)
            nn.BatchNorm2d(128, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),    # (N, 64, s, s)
            nn.BatchNorm2d(64, eps=bn_eps, momentum=bn_momentum),
            _activation(last_activation),
            nn.ZeroPad2d(tf_same_padding(last_kernel)),             # (N, 64, s+k-1, s+k-1)
            nn.Conv2d(64, c, last_kernel, stride=1),                # (N, c, s, s)
            nn.Sigmoid(),
        )
        glorot_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z)                                              # (N, 128 * (s/4)^2)
        h = h.reshape(h.shape[0], 128, self.base, self.base)        # (N, 128, s/4, s/4)
        return self.deconv(h)                                       # (N, c, s, s)


class PriorGenerator(nn.Module):
    """G_psi (Table 8): noise n (N, m') -> latent sample (N, m). 4 x [FC1024 -> ReLU] -> FC m."""

    def __init__(self, noise_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.noise_dim = _check_dim("noise_dim", noise_dim)
        self.latent_dim = _check_dim("latent_dim", latent_dim)
        self.net = glorot_init_(mlp(self.noise_dim, HIDDEN, 4, self.latent_dim))

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        return self.net(n)


class LatentCritic(nn.Module):
    """C_kappa (Table 8): code z (N, m) -> score (N, 1). 4 x [FC1024 -> ReLU] -> FC1, no norm.

    No normalisation layers, so the WGAN-GP per-sample gradient penalty is well defined.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = _check_dim("latent_dim", latent_dim)
        self.net = glorot_init_(mlp(self.latent_dim, HIDDEN, 4, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class SmoothingCritic(nn.Module):
    """C_zeta (Table 8): image x (N, c, s, s) -> score (N, 1). No normalisation.

    Conv64 k4 s2 -> ReLU -> Conv128 k4 s2 -> ReLU -> Flatten -> FC1024 -> ReLU -> FC1.
    """

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, s, _ = check_image_shape(image_shape)
        self.image_shape = (c, s, s)
        self.conv = nn.Sequential(
            nn.Conv2d(c, 64, 4, stride=2, padding=1),      # (N, 64, s/2, s/2)
            nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2, padding=1),    # (N, 128, s/4, s/4)
            nn.ReLU(),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * (s // 4) ** 2, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, 1),
        )
        glorot_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv(x), 1))


def image_networks(image_shape: tuple[int, int, int], latent_dim: int,
                   noise_dim: int | None = None, *,
                   variant: str = "paper",                  # Decoder output layer: "paper" or "authors".
                   bn_momentum: float = TF_BN_MOMENTUM,     # TF default of the authors' code.
                   bn_eps: float = TF_BN_EPS,               # TF default of the authors' code.
                   init: str = "glorot-uniform",            # Or "authors": TF init per network.
                   encoder_out_features: int | None = None  # 2m for a VAE; m by default.
                   ) -> dict[str, nn.Module]:
    """Build and initialise the five networks of Tables 7 and 8 for one image shape (C, H, W).

    Returns {"encoder", "decoder", "prior_generator", "latent_critic", "smoothing_critic"}, each in
    train mode on the CPU, Glorot-initialised with zero biases (BN: weight 1, bias 0).
    The prior noise has `noise_dim` dimensions (default: m, as in the paper).
    """
    if variant not in DECODER_VARIANTS:
        raise UserError(f"unknown decoder variant {variant!r}; choose one of {sorted(DECODER_VARIANTS)}")
    if init not in ("glorot-uniform", "authors"):
        raise UserError(f"unknown init {init!r}; choose 'glorot-uniform' or 'authors'")
    image_shape = check_image_shape(image_shape)
    last_kernel, last_activation = DECODER_VARIANTS[variant]
    bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
    nets: dict[str, nn.Module] = {
        "encoder": ImageEncoder(image_shape, latent_dim, encoder_out_features, **bn),
        "decoder": ImageDecoder(image_shape, latent_dim, last_kernel, last_activation, **bn),
        "prior_generator": PriorGenerator(noise_dim or latent_dim, latent_dim),
        "latent_critic": LatentCritic(latent_dim),
        "smoothing_critic": SmoothingCritic(image_shape),
    }
    if init == "authors":  # Each network is Glorot-uniform already; the authors' code differs for D, G, C_kappa.
        for key in ("decoder", "prior_generator", "latent_critic"):
            glorot_truncated_normal_(nets[key])
    return nets


__all__ = [
    "DECODER_VARIANTS", "TF_BN_MOMENTUM", "TF_BN_EPS", "check_image_shape",
    "tf_same_padding", "glorot_truncated_normal_", "ImageEncoder", "ImageDecoder", "PriorGenerator",
    "LatentCritic", "SmoothingCritic", "image_networks",
]
