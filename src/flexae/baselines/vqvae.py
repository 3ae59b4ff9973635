"""VQ-VAE with an autoregressive prior over its discrete codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from flexae.baselines.common import SamplerFitOptions
from flexae.nets.factory import encoder_decoder
from flexae.config import ModelConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.priors import ExPostSampler
from flexae.ranges import LR, MAX_DIM, WEIGHT, Range, ranged


@dataclass
class VQVAEOptions(SamplerFitOptions):
    """vq-vae's settings (model.options): the codebook, the code prior and its ex-post fit."""
    vq_codebook_size: int = ranged(512, Range(1, 1_000_000))  # vq-vae: K, entries of the codebook.
    vq_embedding_dim: int = ranged(64, Range(1, MAX_DIM))      # vq-vae: D; the code is m vectors of size D, each one codebook entry.
    vq_commitment: float = ranged(0.25, WEIGHT)                # vq-vae: beta on the commitment loss.
    vq_prior_width: int = ranged(128, Range(1, MAX_DIM))       # vq-vae: width of the causal transformer over code indices.
    vq_prior_layers: int = ranged(2, Range(1, 1000))           # vq-vae: its layers (4 attention heads each).
    vq_prior_lr: float = ranged(3e-4, LR)                      # vq-vae: Adam learning rate of the code prior.

    def check(self) -> None:
        if self.vq_prior_width % 4:
            raise UserError(f"model.options.vq_prior_width must be divisible by its 4 attention heads, "
                            f"got {self.vq_prior_width}")


class VectorQuantizer(nn.Module):
    """A codebook of K vectors of size D; each code vector is replaced by its nearest entry."""

    def __init__(self, codebook_size: int, dim: int):
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim))
        nn.init.uniform_(self.codebook, -1.0 / codebook_size, 1.0 / codebook_size)

    def nearest(self, z_e: Tensor) -> Tensor:
        """z_e (B, L, D) -> indices (B, L) of the nearest codebook entries (Euclidean)."""
        flat = z_e.reshape(-1, z_e.shape[-1])                               # (B L, D)
        distances = torch.cdist(flat, self.codebook)                        # (B L, K)
        return distances.argmin(dim=1).reshape(z_e.shape[:-1])

    def lookup(self, indices: Tensor) -> Tensor:
        """indices (B, L) -> entries (B, L, D)."""
        return self.codebook[indices]

    def embed(self, indices: Tensor) -> Tensor:
        """indices (B, L) -> the decoder's input (B, L * D)."""
        return self.lookup(indices).flatten(1)


class CodePrior(ExPostSampler):
    """p(k_1..k_L) = prod_i p(k_i | k_<i): a small causal transformer over the L code indices.

    Tokens are shifted right behind a start token, so logits[:, i] predict k_i from k_<i.
    `sample` returns codes: `embed` maps drawn indices (n, L) to latent vectors (n, L * D) (the
    VQ-VAE's codebook lookup; kept as a plain callable so the codebook stays the VQ-VAE's own).
    """

    def __init__(self, length: int, codebook_size: int, embed: Callable[[Tensor], Tensor],
                 width: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.length, self.codebook_size, self.embed = length, codebook_size, embed
        self.token = nn.Embedding(codebook_size + 1, width)    # index K is the start token
        self.position = nn.Parameter(torch.zeros(length, width))
        nn.init.normal_(self.position, std=0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codebook_size))
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def logits(self, indices: Tensor) -> Tensor:
        """indices (B, t) with t <= L -> logits (B, t, K) of k_1..k_t given the preceding indices."""
        b, t = indices.shape
        start = torch.full((b, 1), self.codebook_size, dtype=torch.long, device=indices.device)
        tokens = torch.cat([start, indices[:, :-1]], dim=1)                    # (B, t)
        h = self.token(tokens) + self.position[:t]                             # (B, t, width)
        h = self.blocks(h, mask=self.causal_mask[:t, :t], is_causal=True)
        return self.head(h)

    def nll(self, indices: Tensor) -> Tensor:
        """Mean negative log-likelihood per code index (nats)."""
        logits = self.logits(indices)
        return nn.functional.cross_entropy(logits.reshape(-1, self.codebook_size), indices.reshape(-1))

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.embed(self.sample_indices(n, generator))

    @torch.no_grad()
    def sample_indices(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, L) code indices, drawn one position at a time."""
        device = self.position.device
        out = torch.zeros(n, self.length, dtype=torch.long, device=device)
        for i in range(self.length):
            # Feeding the first i+1 positions: position i only sees the start token and out[:, :i].
            probs = self.logits(out[:, :i + 1])[:, i].softmax(dim=-1)           # (n, K)
            out[:, i] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return out


class VQVAE(AutoEncoder):
    """VQ-VAE (van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning",
    NeurIPS 2017).

    The encoder's output is read as L = m code vectors of size D (`vq_embedding_dim`), each
    replaced by its nearest entry of a K-entry codebook (`vq_codebook_size`); the decoder sees the
    L*D quantised values. Loss L_AE + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 with the
    straight-through gradient. Generation: code indices from an autoregressive prior fitted to the
    training images' indices after training (`CodePrior`, a causal transformer with
    `vq_prior_layers` = 2 layers of width `vq_prior_width` = 128; the ex-post step), then decode.

    Hyper-parameters: K = 512, D = 64, beta = 0.25 (paper's values), codebook initialised
    U(-1/K, 1/K). Differences: the latent is a 1-D sequence of m = 20 / 64 code vectors produced by
    the Table 7 encoder's last FC layer (the paper uses a conv feature map, e.g. 8x8 for CIFAR);
    the prior is a small transformer instead of a PixelCNN; L_AE instead of the log-likelihood.
    Adam lr 2e-4 with batch 128 is the paper's setting too (it trains 250k steps).
    """

    def __init__(self, encoder, decoder, length: int, hp: VQVAEOptions):
        quantizer = VectorQuantizer(hp.vq_codebook_size, hp.vq_embedding_dim)
        super().__init__(encoder, decoder, CodePrior(length, hp.vq_codebook_size, quantizer.embed,
                                                     hp.vq_prior_width, hp.vq_prior_layers))
        self.length, self.dim = length, hp.vq_embedding_dim
        self.quantizer = quantizer

    def encode_continuous(self, x: Tensor) -> Tensor:
        """z_e: (B, ...) -> (B, L, D), before quantisation."""
        return self.encoder(x).reshape(x.shape[0], self.length, self.dim)

    def encode_indices(self, x: Tensor) -> Tensor:
        """(B, ...) -> (B, L) code indices."""
        return self.quantizer.nearest(self.encode_continuous(x))

    def encode(self, x: Tensor) -> Tensor:
        """The quantised code used for reconstruction, flattened to (B, L * D)."""
        return self.quantizer.embed(self.encode_indices(x))

    def sampler_targets(self, x: Tensor) -> Tensor:
        """What the code prior is fitted on: the indices (B, L)."""
        return self.encode_indices(x)


def build_vqvae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> VQVAE:
    width = cfg.latent_dim * cfg.options.vq_embedding_dim  # L * D values in and out of the bottleneck
    encoder, decoder = encoder_decoder(data_shape, cfg, width, width)
    return VQVAE(encoder, decoder, cfg.latent_dim, cfg.options)
