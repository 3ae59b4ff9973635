"""VQ-VAE with an autoregressive prior over its discrete codes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flexae import losses
from flexae.baselines import losses as bl
from flexae.baselines.common import encoder_decoder
from flexae.baselines.samplers import CodePrior
from flexae.config import BaselineConfig, ModelConfig, OptimConfig
from flexae.models import AutoEncoder
from flexae.training.trainers import BatchSource, Trainer, _update, make_adam


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

    def __init__(self, encoder, decoder, length: int, hp: BaselineConfig):
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


class VQVAETrainer(Trainer):
    """One update of E, D and the codebook per iteration."""

    def __init__(self, model: VQVAE, cfg: OptimConfig, batches: BatchSource, hp: BaselineConfig):
        self.model, self.batches, self.beta = model, batches, hp.vq_commitment
        first_stage = [p for name, p in model.named_parameters() if not name.startswith("prior.")]
        self.optimizers = {"ae": make_adam(first_stage, cfg.ae)}

    def step(self) -> dict[str, Tensor]:
        x = self.batches()
        z_e = self.model.encode_continuous(x)                                  # (B, L, D)
        z_q = self.model.quantizer.lookup(self.model.quantizer.nearest(z_e.detach()))
        z_st = z_e + (z_q - z_e).detach()                                      # straight-through
        rec = losses.reconstruction_loss(self.model.decode(z_st.flatten(1)), x)
        codebook, commitment = bl.vq_losses(z_e, z_q)
        _update(self.optimizers["ae"], rec + codebook + self.beta * commitment)
        return {"loss_ae": rec.detach(), "vq_codebook": codebook.detach(), "vq_commit": commitment.detach()}


def build_vqvae(cfg: ModelConfig, data_shape: tuple[int, ...]) -> VQVAE:
    width = cfg.latent_dim * cfg.baseline.vq_embedding_dim  # L * D values in and out of the bottleneck
    encoder, decoder = encoder_decoder(data_shape, cfg, width, width)
    return VQVAE(encoder, decoder, cfg.latent_dim, cfg.baseline)
