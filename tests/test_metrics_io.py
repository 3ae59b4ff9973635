"""Loading image arrays: accepted layouts, and one-line UserErrors for everything else."""

import numpy as np
import pytest
import torch

from flexae.errors import UserError
from flexae.metrics.io import images_to_tensor, load_image_file


def test_uint8_grayscale_becomes_float_nchw(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
    np.save(tmp_path / "a.npy", array)
    images = load_image_file(tmp_path / "a.npy")
    assert images.shape == (2, 1, 3, 4) and images.dtype == torch.float32
    np.testing.assert_allclose(images[:, 0].numpy(), array / 255.0, rtol=1e-6)


def test_float_rgb_channels_last_becomes_nchw(tmp_path):
    array = np.random.default_rng(0).random((3, 5, 6, 3)).astype(np.float64)
    np.savez(tmp_path / "b.npz", images=array, labels=np.arange(3))
    images = load_image_file(tmp_path / "b.npz")
    assert images.shape == (3, 3, 5, 6)
    np.testing.assert_allclose(images.permute(0, 2, 3, 1).numpy(), array, rtol=1e-6)
    np.savez(tmp_path / "c.npz", anything=array)
    assert load_image_file(tmp_path / "c.npz").shape == (3, 3, 5, 6)


GOOD = np.zeros((4, 8, 8), dtype=np.uint8)


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 64), dtype=np.uint8), "shape"),
    (np.zeros((4, 8, 8, 4), dtype=np.uint8), "shape"),
    (np.zeros((4, 3, 8, 8), dtype=np.uint8), "channels-first"),
    (GOOD.astype(np.int64), "dtype int64"),
    (GOOD.astype(bool), "dtype bool"),
    (np.full((4, 8, 8), np.nan, dtype=np.float32), "NaN"),
    (np.full((4, 8, 8), 255.0, dtype=np.float32), r"\[0, 1\]"),
    (np.full((4, 8, 8), -0.5, dtype=np.float32), r"\[0, 1\]"),
    (GOOD[:1], "at least 2"),
])
def test_bad_arrays_give_one_line_user_errors(array, message):
    with pytest.raises(UserError, match=message) as info:
        images_to_tensor(array, name="x.npy")
    assert "\n" not in str(info.value) and str(info.value).startswith("x.npy")


def test_bad_files_give_one_line_user_errors(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    np.savez(tmp_path / "two.npz", x=GOOD, y=GOOD)
    (tmp_path / "images.png").write_bytes(b"\x89PNG")
    (tmp_path / "broken.npy").write_bytes(b"garbage")
    cases = [(tmp_path / "absent.npy", "not found"), (tmp_path / "objects.npy", "not a readable"),
             (tmp_path / "two.npz", "name the images"), (tmp_path / "images.png", "use .npy or .npz"),
             (tmp_path / "broken.npy", "not a readable")]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as info:
            load_image_file(path)
        assert "\n" not in str(info.value)
