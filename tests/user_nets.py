"""Networks of a user's own, importable as "user_nets:Class" (tests/ is on sys.path under pytest)."""

import math

from torch import nn


class TinyEncoder(nn.Module):
    """data (N, *data_shape) -> (N, out_features): one linear layer on the flattened data."""

    def __init__(self, data_shape, out_features):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), 16), nn.ReLU(),
                                 nn.Linear(16, out_features))

    def forward(self, x):
        return self.net(x)


class TinyImageDecoder(nn.Module):
    """(N, latent_dim) -> images (N, C, H, W) in [0, 1]."""

    def __init__(self, data_shape, latent_dim):
        super().__init__()
        self.shape = tuple(data_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, math.prod(data_shape)), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).reshape(z.shape[0], *self.shape)
