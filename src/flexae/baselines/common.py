"""Shared pieces of the baselines: module helpers, the generic ex-post fit step (encode the
training data, fit the model's sampler with the fit function its registry entry names) and the
groups of settings several baselines share (each baseline's options dataclass, `model.options`,
inherits the groups it reads). The networks themselves come from `flexae.nets.factory`."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from flexae.data import as_float
from flexae.ranges import COUNT, MAX_BATCH, MAX_WEIGHT, POSITIVE_SCALE, Range, ranged

# Settings of the baselines (model.options), relative to L_AE, the per-image *sum* of squared
# errors where they are weights; docs/baselines.md compares each with its paper.


@dataclass
class FitPointsOptions:
    """The data of an ex-post fit (ae-gmm, rae-gmm, 2s-vae, vq-vae)."""
    sampler_fit_points: int = ranged(0, Range(0, 10**12))  # Training images encoded for the ex-post fit; 0 = all of them.


@dataclass
class SamplerFitOptions(FitPointsOptions):
    """An ex-post sampler fitted by minibatch steps (2s-vae stage 2, VQ prior)."""
    sampler_steps: int = ranged(5000, COUNT)             # Iterations of an ex-post sampler fit (2s-vae stage 2, VQ prior).
    sampler_batch_size: int = ranged(128, Range(1, MAX_BATCH))  # Minibatch size of that fit.


@dataclass
class WAEOptions:
    """The WAE authors' prior, cost and encoder input (wae-mmd, wae-gan)."""
    prior_std: float = ranged(1.0, POSITIVE_SCALE)  # wae-mmd, wae-gan: sigma_z of the prior N(0, sigma_z^2 I); IMQ base scale 2 m sigma_z^2.
    wae_cost_scale: float = ranged(0.05, Range(0, MAX_WEIGHT, low_open=True))
    # wae-mmd, wae-gan: c(x, D(E(x))) = this * L_AE (authors' l2sq: 0.05 * sum
    # of squares; 0.2 on RGB sets, whose [-1, 1] range they use).
    wae_input_noise: float = ranged(0.01, Range(0, 1e3))
    # wae-mmd, wae-gan: std of the truncated-normal noise added to encoder inputs
    # in training (authors' e_noise = "add_noise"); 0: none.


# (sampler, targets, options with the fit's settings, generator, seed, progress) -> fit statistics
ExPostFit = Callable[[nn.Module, Any, Any, torch.Generator, int, bool], dict[str, float]]


def fit_options(model: nn.Module) -> Any:
    """The settings of the model's ex-post fit: its options, or for a model of your own without
    settings of its own the defaults of a fit (the values the flat model.baseline section gave it)."""
    options = getattr(model, "options", None)
    return options if options is not None else SamplerFitOptions()


def data_size(data_shape: tuple[int, ...]) -> int:
    """d, the number of values per data point (784 for MNIST, 128 for the synthetic data)."""
    return math.prod(data_shape)


def decoder_weights(decoder: nn.Module) -> list[Tensor]:
    """Weight tensors of the decoder's Linear / Conv layers (no biases, no BatchNorm): what a Keras
    `kernel_regularizer` penalises, as in the RAE authors' code."""
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    return [m.weight for m in decoder.modules() if isinstance(m, layers)]


def add_input_noise(x: Tensor, std: float) -> Tensor:
    """x + truncated normal noise (mean 0, `std`, cut at 2 std as TF's truncated_normal): the
    WAE authors' "add_noise" encoder input in training (tolstikhin/wae, models.py lines 8-16);
    x itself if std is 0."""
    if std == 0:
        return x
    noise = torch.empty_like(x)
    nn.init.trunc_normal_(noise, 0.0, std, -2 * std, 2 * std)
    return x + noise


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


@torch.no_grad()
def encode_all(encode: Callable[[Tensor], Any], images: Tensor, device: torch.device,
                batch: int = 500) -> Any:
    """Apply `encode` (eval mode) to data (N, ...) in chunks; concatenates tensors or tuples."""
    parts = [encode(as_float(images[i:i + batch]).to(device)) for i in range(0, images.shape[0], batch)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[j] for p in parts]).cpu() for j in range(len(parts[0])))
    return torch.cat(parts).cpu()


def fit_expost_sampler(model: nn.Module, fit: ExPostFit, train_data: Tensor, hp: FitPointsOptions, seed: int = 0,
                       progress: bool = False) -> dict[str, float]:
    """Fit the model's ex-post sampler (`model.prior`) on (up to `hp.sampler_fit_points`) training
    data with `fit`, the function of its registry entry; returns fit statistics.

    The first stage is used in eval mode (the BatchNorm statistics generation will use) and
    `model.sampler_targets` says what the sampler is fitted on (codes, posteriors, code indices).
    """
    sampler = model.prior
    generator = torch.Generator().manual_seed(seed)
    if 0 < hp.sampler_fit_points < train_data.shape[0]:
        train_data = train_data[torch.randperm(train_data.shape[0], generator=generator)[:hp.sampler_fit_points]]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        targets = encode_all(model.sampler_targets, train_data, device)  # type: ignore[operator]
        return fit(sampler, targets, hp, generator, seed, progress)
    finally:
        model.train(was_training)
