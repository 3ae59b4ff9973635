"""Shared pieces of the baselines: the paper's encoder/decoder (and critic) for a data shape, and
small module helpers."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from flexae.config import ModelConfig
from flexae.errors import UserError


def data_size(data_shape: tuple[int, ...]) -> int:
    """d, the number of values per data point (784 for MNIST, 128 for the synthetic data)."""
    return math.prod(data_shape)


def encoder_decoder(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int,
                    code_dim: int) -> tuple[nn.Module, nn.Module]:
    """The encoder (data -> encoder_out) and decoder (code_dim -> data) every model shares.

    Images: Table 7 (conv encoder with BN, deconv decoder with a sigmoid output); synthetic data:
    Table 6 (one hidden layer each, tanh output), Glorot-initialised as in `flexae.models`.
    """
    if len(data_shape) == 1:
        from flexae.nets import synthetic as nets
        from flexae.nets.common import glorot_init_
        return (glorot_init_(nets.synthetic_encoder(data_shape[0], encoder_out)),
                glorot_init_(nets.synthetic_decoder(code_dim, data_shape[0])))
    from flexae.nets.image import DECODER_VARIANTS, ImageDecoder, ImageEncoder
    if cfg.decoder_variant not in DECODER_VARIANTS:
        raise UserError(f"unknown decoder variant {cfg.decoder_variant!r}; choose from {sorted(DECODER_VARIANTS)}")
    kernel, activation = DECODER_VARIANTS[cfg.decoder_variant]
    bn = {"bn_momentum": cfg.bn_momentum, "bn_eps": cfg.bn_eps}
    encoder = ImageEncoder(data_shape, code_dim, encoder_out, **bn)  # type: ignore[arg-type]
    decoder = ImageDecoder(data_shape, code_dim, kernel, activation, **bn)  # type: ignore[arg-type]
    return encoder, decoder


def latent_critic(data_shape: tuple[int, ...], dim: int) -> nn.Module:
    """The WGAN-GP latent critic of Table 8 (images) or Table 6 (synthetic data) on codes of size dim."""
    if len(data_shape) == 1:
        from flexae.nets.common import glorot_init_
        from flexae.nets.synthetic import synthetic_latent_critic
        return glorot_init_(synthetic_latent_critic(dim))
    from flexae.nets.image import LatentCritic
    return LatentCritic(dim)


def decoder_weights(decoder: nn.Module) -> list[Tensor]:
    """Weight tensors of the decoder's Linear / Conv layers (no biases, no BatchNorm): what a Keras
    `kernel_regularizer` penalises, as in the RAE authors' code."""
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    return [m.weight for m in decoder.modules() if isinstance(m, layers)]


@contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Forward passes inside still normalise with batch statistics (train mode) but leave the
    BatchNorm running statistics untouched (momentum 0), so an auxiliary batch (e.g. VampPrior
    pseudo-inputs) does not shift the statistics used at evaluation time."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def device_of(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")
