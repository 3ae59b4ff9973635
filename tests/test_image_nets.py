"""Networks of paper Tables 7 and 8: shapes, padding, ranges, parameter counts, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flexae.errors import UserError
from flexae.nets.common import count_parameters
from flexae.data import DEFAULT_LATENT_DIM as PAPER_LATENT_DIMS
from flexae.nets.image import (ImageDecoder, ImageEncoder, image_networks,
                               tf_same_padding)

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "celeba": (3, 64, 64)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("variant", ["paper", "authors"])
@pytest.mark.parametrize("dataset", sorted(SHAPES))
def test_shapes_and_ranges(dataset: str, variant: str) -> None:
    shape, m = SHAPES[dataset], PAPER_LATENT_DIMS[dataset]
    nets = image_networks(shape, m, variant=variant)
    x = torch.rand(4, *shape)
    z = nets["encoder"](x)
    assert z.shape == (4, m)
    x_hat = nets["decoder"](3 * torch.randn(4, m))
    assert x_hat.shape == (4, *shape)
    assert (x_hat > 0).all() and (x_hat < 1).all()
    assert nets["prior_generator"](torch.randn(4, m)).shape == (4, m)
    assert nets["latent_critic"](z).shape == (4, 1)
    assert nets["smoothing_critic"](x).shape == (4, 1)


@pytest.mark.parametrize("side,path", [(28, [14, 7]), (32, [16, 8]), (64, [32, 16])])
def test_spatial_path(side: int, path: list[int]) -> None:
    enc = ImageEncoder((3, side, side), 8)
    dec = ImageDecoder((3, side, side), 8)
    h = torch.rand(2, 3, side, side)
    sides = []
    for layer in enc.conv:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            sides.append(h.shape[-1])
    assert sides == path
    h = dec.fc(torch.randn(2, 8)).reshape(2, 128, path[-1], path[-1])
    sides = []
    for layer in dec.deconv:
        h = layer(h)
        if isinstance(layer, (nn.ConvTranspose2d, nn.Conv2d)):
            sides.append(h.shape[-1])
    assert sides == [path[0], side, side]


def test_tf_same_padding_values() -> None:
    assert tf_same_padding(4) == (1, 2, 1, 2)  # TF: smaller half before, larger after
    assert tf_same_padding(3) == (1, 1, 1, 1)
    assert tf_same_padding(1) == (0, 0, 0, 0)


def test_last_conv_is_tf_same_k4_s1() -> None:
    """TF "same", stride 1: out[i, j] = sum_{a,b} in[i + a - 1, j + b - 1] w[a, b] (zero outside)."""
    dec = ImageDecoder((1, 28, 28), 4, last_kernel=4)
    pad, conv = dec.deconv[-3], dec.deconv[-2]
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (4, 4)
    w = torch.arange(1.0, 17.0).reshape(4, 4)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = w
        conv.bias.zero_()
    x = torch.zeros(1, 64, 28, 28)
    for r, c in [(5, 9), (0, 0), (27, 27)]:  # interior and both corners
        x.zero_()
        x[0, 0, r, c] = 1.0
        out = conv(pad(x))[0, 0]
        assert out.shape == (28, 28)
        expected = torch.zeros(28, 28)
        for a in range(4):
            for b in range(4):
                i, j = r - a + 1, c - b + 1
                if 0 <= i < 28 and 0 <= j < 28:
                    expected[i, j] = w[a, b]
        torch.testing.assert_close(out, expected)


def test_variants_differ_as_documented() -> None:
    paper = image_networks((1, 28, 28), 20, variant="paper")["decoder"]
    code = image_networks((1, 28, 28), 20, variant="authors")["decoder"]
    assert isinstance(paper.deconv[5], nn.ELU) and paper.deconv[7].kernel_size == (4, 4)
    assert isinstance(code.deconv[5], nn.ReLU) and code.deconv[7].kernel_size == (3, 3)


def _encoder_params(c: int, s: int, m: int) -> int:
    q = (s // 4) ** 2
    return ((c * 64 * 16 + 64) + (64 * 128 * 16 + 128) + 2 * 128
            + (128 * q * 1024 + 1024) + 2 * 1024 + (1024 * m + m))


def _decoder_params(c: int, s: int, m: int, k: int) -> int:
    q = (s // 4) ** 2
    return ((m * 1024 + 1024) + 2 * 1024 + (1024 * 128 * q + 128 * q) + 2 * 128 * q
            + (128 * 128 * 16 + 128) + 2 * 128 + (128 * 64 * 16 + 64) + 2 * 64
            + (64 * c * k * k + c))


@pytest.mark.parametrize("dataset", sorted(SHAPES))
def test_parameter_counts(dataset: str) -> None:
    (c, s, _), m = SHAPES[dataset], PAPER_LATENT_DIMS[dataset]
    nets = image_networks((c, s, s), m)
    mlp_params = lambda i, o: i * 1024 + 1024 + 3 * (1024 * 1024 + 1024) + 1024 * o + o  # noqa: E731
    assert count_parameters(nets["encoder"]) == _encoder_params(c, s, m)
    assert count_parameters(nets["decoder"]) == _decoder_params(c, s, m, 4)
    code_decoder = ImageDecoder((c, s, s), m, last_kernel=3, last_activation="relu")
    assert count_parameters(code_decoder) == _decoder_params(c, s, m, 3)
    assert count_parameters(nets["prior_generator"]) == mlp_params(m, m)
    assert count_parameters(nets["latent_critic"]) == mlp_params(m, 1)
    assert count_parameters(nets["smoothing_critic"]) == (
        (c * 64 * 16 + 64) + (64 * 128 * 16 + 128) + (128 * (s // 4) ** 2 * 1024 + 1024) + 1025)
    if dataset == "mnist":  # an absolute anchor: ~6.6M encoder parameters for MNIST
        assert count_parameters(nets["encoder"]) == 6_578_644


def test_noise_dim_and_encoder_out_features() -> None:
    nets = image_networks((1, 28, 28), 20, noise_dim=7, encoder_out_features=40)
    assert nets["prior_generator"](torch.randn(3, 7)).shape == (3, 20)
    assert nets["encoder"](torch.rand(3, 1, 28, 28)).shape == (3, 40)
    assert nets["decoder"].latent_dim == 20


def test_batchnorm_options() -> None:
    def bns(nets: dict[str, nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
        return [mod for net in nets.values() for mod in net.modules()
                if isinstance(mod, nn.modules.batchnorm._BatchNorm)]

    default = bns(image_networks((1, 28, 28), 20))
    assert len(default) == 2 + 4  # encoder 2, decoder 4; critics and generator have none
    assert all(bn.momentum == 0.01 and bn.eps == 1e-3 for bn in default)
    torch_like = bns(image_networks((1, 28, 28), 20, bn_momentum=0.1, bn_eps=1e-5))
    assert all(bn.momentum == 0.1 and bn.eps == 1e-5 for bn in torch_like)


def test_critics_have_no_normalisation() -> None:
    nets = image_networks((3, 32, 32), 64)
    for key in ("prior_generator", "latent_critic", "smoothing_critic"):
        assert not any(isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm))
                       for mod in nets[key].modules()), key


@pytest.mark.parametrize("init", ["glorot-uniform", "authors"])
def test_glorot_init(init: str) -> None:
    nets = image_networks((1, 28, 28), 20, init=init)
    weight = nets["latent_critic"].net[2].weight  # Linear 1024 -> 1024
    sigma = (2 / 2048) ** 0.5  # Glorot: variance 2 / (fan_in + fan_out) for both shapes
    assert nets["latent_critic"].net[2].bias.abs().max() == 0
    assert abs(weight.std().item() - sigma) < 0.02 * sigma
    if init == "glorot-uniform":  # uniform on [-sqrt(3) sigma, sqrt(3) sigma]
        assert weight.abs().max() <= 3 ** 0.5 * sigma
    else:  # TF truncated normal: cut at 2 std of the untruncated normal = 2.27 sigma
        assert 3 ** 0.5 * sigma < weight.abs().max() <= 2 / 0.87962566103423978 * sigma


def test_channels_last_gives_same_outputs() -> None:
    nets = image_networks((3, 32, 32), 16)
    x = torch.rand(4, 3, 32, 32)
    z = torch.randn(4, 16)
    for net in nets.values():
        net.eval()
    with torch.no_grad():
        ref = (nets["encoder"](x), nets["decoder"](z), nets["smoothing_critic"](x))
        for key in ("encoder", "decoder", "smoothing_critic"):
            nets[key].to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        out = (nets["encoder"](x_cl), nets["decoder"](z), nets["smoothing_critic"](x_cl))
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_backward_through_channels_last_encoder() -> None:
    enc = ImageEncoder((1, 28, 28), 8).to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    enc(x).square().sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


@pytest.mark.parametrize("shape", [(1, 28, 30), (3, 30, 30), (3, 32), (0, 32, 32)])
def test_bad_image_shape_is_user_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(UserError, match="image shape"):
        image_networks(shape, 8)


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="variant"):
        image_networks((1, 28, 28), 8, variant="tf")
    with pytest.raises(UserError, match="init"):
        image_networks((1, 28, 28), 8, init="he")
    with pytest.raises(UserError, match="latent_dim"):
        image_networks((1, 28, 28), 0)
