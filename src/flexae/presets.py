"""Per-data-set defaults of the paper (latent dimension m)."""

from __future__ import annotations

# Paper: m = 50 (Fig 2), 2 (Fig 3), 20 (MNIST, Fashion-MNIST), 64 (CIFAR-10, CelebA).
# The authors' code used 32 and 128 for the image sets; pass --latent-dim to use those.
DEFAULT_LATENT_DIM = {"synthetic-5d": 50, "synthetic-2d": 2, "mnist": 20, "fashion-mnist": 20,
                      "cifar10": 64, "celeba": 64}
